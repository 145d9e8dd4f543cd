/*
 * spool — implementation.  The contract and the durability argument are in
 * spool.h; this comment is about how the file is driven.
 *
 * Statements.  Every statement is prepared once at open from the table
 * `sql[]` (indexed by enum stmt) and reset after each use; values are always
 * bound, never formatted into SQL.  Schema DDL lives in `migrations[]` and
 * runs through sqlite3_exec, one transaction per step, each ending by
 * setting user_version to its own number, so a crash mid-migration leaves
 * the previous version intact and the step is simply run again.
 *
 * Transactions.  tx_begin(sp, durable) switches the connection to
 * synchronous=FULL for a durable transaction (NORMAL otherwise) and starts
 * BEGIN IMMEDIATE, which takes the write lock up front so a transaction
 * never fails half-way for lock reasons.  tx_end() commits or, after any
 * failure, rolls back if SQLite has not already done so: a failed call
 * leaves no partial state behind.  sq_fail() turns the SQLite result into
 * the project's codes with a sentence naming the operation and the file.
 *
 * Callbacks.  Readers copy the rows they return into one heap block per
 * call (strings included), finish the statement and the transaction,
 * release the mutex, then call the callback, so callbacks may re-enter.
 */
#include "spool.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SPOOL_MAX_JSON   (4u << 20)  /* one event or verdict */
#define SPOOL_MAX_ID     1024u
#define SPOOL_MAX_ERROR  512u
#define RETAIN_CHUNK     64

/* ------------------------------------------------------------- schema --- */

/* migrations[i] brings user_version from i to i+1. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE events ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  source TEXT NOT NULL,"
    "  event_id TEXT NOT NULL,"
    "  received_at INTEGER NOT NULL,"
    "  event_json TEXT NOT NULL,"
    "  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending','judged')),"
    "  UNIQUE (source, event_id));"
    "CREATE INDEX events_pending ON events(seq) WHERE state = 'pending';"
    "CREATE TABLE verdicts ("
    "  seq INTEGER PRIMARY KEY REFERENCES events(seq) ON DELETE CASCADE,"
    "  verdict_json TEXT NOT NULL,"
    "  judged_at INTEGER NOT NULL);"
    "CREATE INDEX verdicts_judged_at ON verdicts(judged_at);"
    "CREATE TABLE deliveries ("
    "  sink TEXT NOT NULL,"
    "  seq INTEGER NOT NULL REFERENCES events(seq) ON DELETE CASCADE,"
    "  state TEXT NOT NULL DEFAULT 'pending'"
    "    CHECK (state IN ('pending','delivered','failed')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  delivered_at INTEGER,"
    "  inflight INTEGER NOT NULL DEFAULT 0,"
    "  redelivery INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (sink, seq));"
    "CREATE INDEX deliveries_by_seq ON deliveries(seq);"
    "CREATE INDEX deliveries_pending ON deliveries(sink, seq) WHERE state = 'pending';"
    "CREATE TABLE sources ("
    "  name TEXT PRIMARY KEY,"
    "  dev INTEGER NOT NULL, ino INTEGER NOT NULL, off INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
};
static_assert(NJ_ARRAY_LEN(migrations) == SPOOL_SCHEMA_VERSION,
              "one migration per schema version");

enum stmt {
    S_BEGIN, S_COMMIT, S_ROLLBACK, S_SYNC_FULL, S_SYNC_NORMAL,
    S_EV_INSERT, S_EV_FIND, S_EV_PENDING, S_EV_GET, S_EV_EXISTS, S_EV_JUDGED,
    S_OFF_PUT, S_OFF_GET,
    S_VD_EXISTS, S_VD_INSERT, S_DL_CREATE,
    S_DL_DUE, S_DL_CLAIM, S_DL_DELIVERED, S_DL_GET, S_DL_FAILED, S_DL_REQUEUE,
    S_DL_NEXT_DUE, S_DL_FIXUP, S_DL_RELEASE,
    S_RT_AGE, S_RT_DONE, S_RT_ANY, S_USED_BYTES, S_INCR_VACUUM, S_EV_COUNT,
    S_META_ADD, S_META_GET,
    S_ST_EVENTS, S_ST_DELIV, S_ST_SINKS, S_INTEGRITY, S_CFG_ADD, S_ORPHANS,
    S_COUNT
};

/* "done": judged, and no delivery of a configured sink is still owed. */
#define DONE_COND                                                            \
    " EXISTS (SELECT 1 FROM verdicts v WHERE v.seq = e.seq)"                 \
    " AND NOT EXISTS (SELECT 1 FROM deliveries d JOIN cfg_sinks c"           \
    "   ON c.name = d.sink WHERE d.seq = e.seq AND d.state <> 'delivered')"

static const char *const sql[S_COUNT] = {
    [S_BEGIN]       = "BEGIN IMMEDIATE",
    [S_COMMIT]      = "COMMIT",
    [S_ROLLBACK]    = "ROLLBACK",
    [S_SYNC_FULL]   = "PRAGMA synchronous = FULL",
    [S_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
    [S_EV_INSERT]   = "INSERT INTO events(source, event_id, received_at, event_json, state)"
                      " VALUES (?1, ?2, ?3, ?4, 'pending')"
                      " ON CONFLICT(source, event_id) DO NOTHING",
    [S_EV_FIND]     = "SELECT seq FROM events WHERE source = ?1 AND event_id = ?2",
    [S_EV_PENDING]  = "SELECT seq, event_id, source, event_json, received_at FROM events"
                      " WHERE state = 'pending' AND seq > ?1 ORDER BY seq LIMIT ?2",
    [S_EV_GET]      = "SELECT seq, event_id, source, event_json, received_at FROM events"
                      " WHERE seq = ?1",
    [S_EV_EXISTS]   = "SELECT 1 FROM events WHERE seq = ?1",
    [S_EV_JUDGED]   = "UPDATE events SET state = 'judged' WHERE seq = ?1",
    [S_OFF_PUT]     = "INSERT INTO sources(name, dev, ino, off, updated_at)"
                      " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(name) DO UPDATE SET"
                      " dev = excluded.dev, ino = excluded.ino, off = excluded.off,"
                      " updated_at = excluded.updated_at",
    [S_OFF_GET]     = "SELECT dev, ino, off FROM sources WHERE name = ?1",
    [S_VD_EXISTS]   = "SELECT 1 FROM verdicts WHERE seq = ?1",
    [S_VD_INSERT]   = "INSERT INTO verdicts(seq, verdict_json, judged_at) VALUES (?1, ?2, ?3)",
    [S_DL_CREATE]   = "INSERT INTO deliveries(sink, seq, state, attempts, next_attempt_at)"
                      " SELECT name, ?1, 'pending', 0, ?2 FROM cfg_sinks",
    [S_DL_DUE]      = "SELECT d.seq, d.attempts, d.redelivery, e.event_id, e.source,"
                      " v.verdict_json, v.judged_at"
                      " FROM deliveries d JOIN events e ON e.seq = d.seq"
                      " JOIN verdicts v ON v.seq = d.seq"
                      " WHERE d.sink = ?1 AND d.state = 'pending' AND d.inflight = 0"
                      " AND d.next_attempt_at <= ?2 ORDER BY d.seq LIMIT ?3",
    [S_DL_CLAIM]    = "UPDATE deliveries SET attempts = attempts + 1, inflight = 1"
                      " WHERE sink = ?1 AND seq = ?2",
    [S_DL_DELIVERED]= "UPDATE deliveries SET state = 'delivered', inflight = 0,"
                      " delivered_at = ?3, last_error = NULL WHERE sink = ?1 AND seq = ?2",
    [S_DL_GET]      = "SELECT attempts FROM deliveries WHERE sink = ?1 AND seq = ?2",
    [S_DL_FAILED]   = "UPDATE deliveries SET state = ?3, inflight = 0, next_attempt_at = ?4,"
                      " last_error = ?5, redelivery = (redelivery OR ?6)"
                      " WHERE sink = ?1 AND seq = ?2",
    [S_DL_REQUEUE]  = "UPDATE deliveries SET state = 'pending', attempts = 0,"
                      " next_attempt_at = 0, inflight = 0 WHERE sink = ?1 AND state = 'failed'",
    [S_DL_NEXT_DUE] = "SELECT MIN(next_attempt_at) FROM deliveries"
                      " WHERE sink = ?1 AND state = 'pending' AND inflight = 0",
    [S_DL_FIXUP]    = "UPDATE deliveries SET inflight = 0, redelivery = 1 WHERE inflight = 1",
    [S_DL_RELEASE]  = "UPDATE deliveries SET inflight = 0, redelivery = 1"
                      " WHERE sink = ?1 AND inflight = 1",
    [S_RT_AGE]      = "DELETE FROM events WHERE seq IN (SELECT e.seq FROM events e"
                      " JOIN verdicts v0 ON v0.seq = e.seq WHERE v0.judged_at < ?1 AND"
                      DONE_COND " ORDER BY e.seq LIMIT ?2)",
    [S_RT_DONE]     = "DELETE FROM events WHERE seq IN (SELECT e.seq FROM events e WHERE"
                      DONE_COND " ORDER BY e.seq LIMIT ?1)",
    [S_RT_ANY]      = "DELETE FROM events WHERE seq IN"
                      " (SELECT seq FROM events ORDER BY seq LIMIT ?1)",
    [S_USED_BYTES]  = "SELECT (p.page_count - f.freelist_count) * s.page_size"
                      " FROM pragma_page_count() p, pragma_freelist_count() f,"
                      " pragma_page_size() s",
    [S_INCR_VACUUM] = "PRAGMA incremental_vacuum",
    [S_EV_COUNT]    = "SELECT COUNT(*) FROM events",
    [S_META_ADD]    = "INSERT INTO meta(key, value) VALUES (?1, ?2)"
                      " ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
    [S_META_GET]    = "SELECT value FROM meta WHERE key = ?1",
    [S_ST_EVENTS]   = "SELECT state, COUNT(*) FROM events GROUP BY state",
    [S_ST_DELIV]    = "SELECT state, inflight, redelivery, COUNT(*) FROM deliveries"
                      " GROUP BY state, inflight, redelivery",
    [S_ST_SINKS]    = "SELECT sink, SUM(state = 'pending'), SUM(state = 'delivered'),"
                      " SUM(state = 'failed') FROM deliveries GROUP BY sink ORDER BY sink",
    [S_INTEGRITY]   = "PRAGMA integrity_check",
    [S_CFG_ADD]     = "INSERT OR IGNORE INTO cfg_sinks(name) VALUES (?1)",
    [S_ORPHANS]     = "SELECT sink, COUNT(*) FROM deliveries WHERE state <> 'delivered'"
                      " AND sink NOT IN (SELECT name FROM cfg_sinks) GROUP BY sink",
};

struct spool {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    pthread_mutex_t mu;          /* serializes every call */
    char *path;
    int lock_fd;
    spool_opts o;                /* sinks not kept (they live in cfg_sinks) */
    uint64_t rng;                /* backoff jitter, under mu */
    int64_t dups;                /* duplicates ignored since open */
};

/* ------------------------------------------------------------ helpers --- */

int64_t spool_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Map a SQLite result to a project code, with a sentence naming what was
 * being done.  Never returns 0. */
static const char *ioerr_name(int rc) {
    switch (rc) {
    case SQLITE_IOERR_READ:     return "read failed";
    case SQLITE_IOERR_SHORT_READ: return "short read";
    case SQLITE_IOERR_WRITE:    return "write failed";
    case SQLITE_IOERR_FSYNC:    return "fsync failed";
    case SQLITE_IOERR_DIR_FSYNC: return "directory fsync failed";
    case SQLITE_IOERR_TRUNCATE: return "truncate failed";
    case SQLITE_IOERR_FSTAT:    return "fstat failed";
    case SQLITE_IOERR_SHMSIZE:  return "growing the -shm file failed";
    case SQLITE_IOERR_SHMMAP:   return "mapping the -shm file failed";
    case SQLITE_IOERR_DELETE:   return "delete failed";
    default:                    return "I/O error";
    }
}

static int sq_fail(spool *sp, int rc, const char *what) {
    int saved_errno = errno;
    const char *msg = sp && sp->db ? sqlite3_errmsg(sp->db) : sqlite3_errstr(rc);
    const char *path = sp && sp->path ? sp->path : "?";
    int sys = sp && sp->db ? sqlite3_system_errno(sp->db) : 0;
    /* SQLite records the OS error only on some paths; the errno of the
     * failed write is usually still there (EFBIG, EDQUOT, ENOSPC). */
    if (!sys && (saved_errno == EFBIG || saved_errno == EDQUOT || saved_errno == ENOSPC))
        sys = saved_errno;
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return nj_fail(-ENOSPC, "spool %s: %s: disk full (%s); the transaction was rolled "
                       "back, committed data is intact", path, what, msg);
    case SQLITE_IOERR:
        return nj_fail(-EIO, "spool %s: %s: %s (SQLite %d: %s; os: %s); the transaction "
                       "was rolled back, committed data is intact", path, what, ioerr_name(rc),
                       rc, msg, sys ? strerror(sys) : "not reported");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return nj_fail(NJ_EFORMAT, "spool %s: %s: database is corrupt or not a spool (%s); "
                       "move the file aside to start a new one", path, what, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return nj_fail(-EBUSY, "spool %s: %s: database is locked (%s)", path, what, msg);
    case SQLITE_NOMEM:
        return nj_fail(-ENOMEM, "spool %s: %s: out of memory", path, what);
    case SQLITE_READONLY:
        return nj_fail(-EROFS, "spool %s: %s: read-only (%s)", path, what, msg);
    case SQLITE_CANTOPEN:
        return nj_fail(sys ? -sys : -EACCES, "spool %s: %s: cannot open (%s; os: %s)", path,
                       what, msg, sys ? strerror(sys) : "-");
    case SQLITE_CONSTRAINT:
        return nj_fail(-EEXIST, "spool %s: %s: constraint failed (%s)", path, what, msg);
    case SQLITE_TOOBIG:
        return nj_fail(NJ_ETOOBIG, "spool %s: %s: value too big", path, what);
    default:
        return nj_fail(-EIO, "spool %s: %s: SQLite error %d (%s)", path, what, rc, msg);
    }
}

/* Step a statement that returns no rows we need, then reset it. */
static int run(spool *sp, enum stmt s, const char *what) {
    sqlite3_stmt *st = sp->st[s];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {}
    int code = rc == SQLITE_DONE ? 0 : sq_fail(sp, rc, what);
    sqlite3_reset(st);
    return code;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
    if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

static int tx_begin(spool *sp, bool durable) {
    int rc = run(sp, durable ? S_SYNC_FULL : S_SYNC_NORMAL, "set synchronous");
    if (rc == 0) rc = run(sp, S_BEGIN, "begin transaction");
    return rc;
}

/* Commit if rc == 0, else roll back; returns rc or the commit's error.
 * On a failed COMMIT SQLite may have rolled back already (FULL, IOERR);
 * whatever is left is rolled back here, so no call leaves a transaction. */
static int tx_end(spool *sp, int rc) {
    if (rc == 0) rc = run(sp, S_COMMIT, "commit");
    if (rc != 0 && !sqlite3_get_autocommit(sp->db)) {
        char keep[256];
        snprintf(keep, sizeof keep, "%s", nj_last_error());
        sqlite3_stmt *st = sp->st[S_ROLLBACK];
        sqlite3_step(st);
        sqlite3_reset(st);
        nj_set_error("%s", keep);
    }
    if (rc == -ENOSPC || rc == -EIO) {
        /* The WAL only grows until a checkpoint; copying its live pages
         * into the main file and truncating it usually frees more than it
         * takes, so the next attempt has a better chance.  Best effort. */
        char keep[256];
        snprintf(keep, sizeof keep, "%s", nj_last_error());
        sqlite3_wal_checkpoint_v2(sp->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        nj_set_error("%s", keep);
    }
    return rc;
}

static char *col_dup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    return nj_strndup(t ? (const char *)t : "", t ? (size_t)n : 0);
}

static int check_text(const char *what, const char *s, size_t max, bool empty_ok) {
    if (!s) return nj_fail(-EINVAL, "spool: %s is missing", what);
    size_t n = strnlen(s, (size_t)max + 1);
    if (!empty_ok && n == 0) return nj_fail(-EINVAL, "spool: %s is empty", what);
    if (n > max) return nj_fail(NJ_ETOOBIG, "spool: %s longer than %zu bytes", what, max);
    return 0;
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* mkdir -p of path's parent directories; new ones get mode 0700. */
static int make_parents(const char *path) {
    char *p = nj_strdup(path);
    if (!p) return nj_fail(-ENOMEM, "spool: out of memory");
    int rc = 0;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            rc = nj_fail(-errno, "spool: cannot create directory %s: %s", p, strerror(errno));
            break;
        }
        *s = '/';
    }
    nj_free(p);
    return rc;
}

static void fsync_parent(const char *path) {
    char *p = nj_strdup(path);
    if (!p) return;
    char *slash = strrchr(p, '/');
    const char *dir = ".";
    if (slash == p) dir = "/";
    else if (slash) { *slash = 0; dir = p; }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) { fsync(fd); close(fd); }
    nj_free(p);
}

/* Create the file 0600 if missing; tighten an existing one that others can
 * read.  Also the -wal and -shm companions when they exist. */
static int prepare_file(const char *path) {
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return nj_fail(-errno, "spool: cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0) rc = nj_fail(-errno, "spool: stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode)) rc = nj_fail(-EINVAL, "spool: %s is not a regular file", path);
    else if (sb.st_mode & 077) {
        NJ_WARN("spool %s had mode %03o; tightened to 0600", path, (unsigned)(sb.st_mode & 0777));
        if (fchmod(fd, 0600) != 0)
            rc = nj_fail(-errno, "spool: chmod %s: %s", path, strerror(errno));
    }
    close(fd);
    static const char *const suffix[] = {"-wal", "-shm"};
    for (size_t i = 0; rc == 0 && i < NJ_ARRAY_LEN(suffix); i++) {
        char side[PATH_MAX];
        if (snprintf(side, sizeof side, "%s%s", path, suffix[i]) >= (int)sizeof side) continue;
        if (stat(side, &sb) == 0 && (sb.st_mode & 077)) chmod(side, 0600);
    }
    return rc;
}

/* ---------------------------------------------------------- open/close --- */

static int migrate(spool *sp) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sp->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK) return sq_fail(sp, rc, "read schema version");
    rc = sqlite3_step(st);
    int version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (version < 0) return sq_fail(sp, rc, "read schema version");
    if (version > SPOOL_SCHEMA_VERSION)
        return nj_fail(NJ_EUNSUPPORTED, "spool %s: schema version %d is newer than this "
                       "build's %d; use a newer nightjar or another spool_path", sp->path,
                       version, SPOOL_SCHEMA_VERSION);
    for (int v = version; v < SPOOL_SCHEMA_VERSION; v++) {
        char tail[64];
        snprintf(tail, sizeof tail, "PRAGMA user_version = %d;", v + 1);
        char *err = NULL;
        rc = sqlite3_exec(sp->db, "PRAGMA synchronous = FULL; BEGIN IMMEDIATE;", NULL, NULL, &err);
        if (rc == SQLITE_OK) rc = sqlite3_exec(sp->db, migrations[v], NULL, NULL, &err);
        if (rc == SQLITE_OK) rc = sqlite3_exec(sp->db, tail, NULL, NULL, &err);
        if (rc == SQLITE_OK) rc = sqlite3_exec(sp->db, "COMMIT", NULL, NULL, &err);
        if (rc != SQLITE_OK) {
            int code = sq_fail(sp, rc, "migrate schema");
            nj_set_error("spool %s: migration to schema %d failed: %s", sp->path, v + 1,
                         err ? err : sqlite3_errstr(rc));
            sqlite3_free(err);
            if (!sqlite3_get_autocommit(sp->db)) sqlite3_exec(sp->db, "ROLLBACK", NULL, NULL, NULL);
            return code;
        }
        NJ_INFO("spool %s: schema migrated to version %d", sp->path, v + 1);
    }
    return 0;
}

/* Single-value PRAGMA, returning its text in buf. */
static int pragma_text(spool *sp, const char *q, char *buf, size_t cap) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sp->db, q, -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(buf, cap, "%s", t ? (const char *)t : "");
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        buf[0] = 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : sq_fail(sp, rc, q);
}

static int configure(spool *sp) {
    char v[64];
    int rc;
    /* auto_vacuum only takes effect on a database without tables (new). */
    if ((rc = pragma_text(sp, "PRAGMA auto_vacuum = INCREMENTAL", v, sizeof v))) return rc;
    if ((rc = pragma_text(sp, "PRAGMA journal_mode = WAL", v, sizeof v))) return rc;
    if (strcmp(v, "wal") != 0)
        return nj_fail(-EIO, "spool %s: cannot switch to WAL journal (got \"%s\"); "
                       "is the file system local?", sp->path, v);
    static const char *const pragmas[] = {
        "PRAGMA foreign_keys = ON",
        "PRAGMA synchronous = FULL",
        "PRAGMA temp_store = MEMORY",
        "PRAGMA cache_size = -2048",          /* 2 MiB page cache */
        "PRAGMA journal_size_limit = 4194304", /* WAL truncated back to 4 MiB */
    };
    for (size_t i = 0; i < NJ_ARRAY_LEN(pragmas); i++)
        if ((rc = pragma_text(sp, pragmas[i], v, sizeof v))) return rc;
    return 0;
}

void spool_close(spool *sp) {
    if (!sp) return;
    for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(sp->st[i]);
    if (sp->db) {
        int rc = sqlite3_close(sp->db);
        if (rc != SQLITE_OK) NJ_WARN("spool %s: close: %s", sp->path, sqlite3_errstr(rc));
    }
    if (sp->lock_fd >= 0) close(sp->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&sp->mu);
    nj_free(sp->path);
    nj_free(sp);
}

spool *spool_open(const char *path, const spool_opts *opts, int *err) {
    int rc = 0;
    spool *sp = NULL;
    if (!path || !*path) { rc = nj_fail(-EINVAL, "spool: empty path"); goto err; }
    sp = nj_calloc(1, sizeof *sp);
    if (!sp) { rc = nj_fail(-ENOMEM, "spool: out of memory"); goto err; }
    sp->lock_fd = -1;
    pthread_mutex_init(&sp->mu, NULL);
    if (opts) sp->o = *opts;
    sp->o.sinks = NULL;
    sp->o.n_sinks = 0;
    if (sp->o.backoff_base_ms <= 0) sp->o.backoff_base_ms = 1000;
    if (sp->o.backoff_cap_ms <= 0) sp->o.backoff_cap_ms = 300000;
    if (sp->o.backoff_cap_ms < sp->o.backoff_base_ms) sp->o.backoff_cap_ms = sp->o.backoff_base_ms;
    if (sp->o.busy_timeout_ms <= 0) sp->o.busy_timeout_ms = 5000;
    if (sp->o.hard_cap_bytes <= 0 && sp->o.max_bytes > 0) sp->o.hard_cap_bytes = 4 * sp->o.max_bytes;
    sp->rng = sp->o.seed ? sp->o.seed : ((uint64_t)spool_now_ms() << 20) ^ (uint64_t)getpid();
    sp->path = nj_strdup(path);
    if (!sp->path) { rc = nj_fail(-ENOMEM, "spool: out of memory"); goto err; }

    if ((rc = make_parents(path))) goto err;
    char lock[PATH_MAX];
    if (snprintf(lock, sizeof lock, "%s.lock", path) >= (int)sizeof lock) {
        rc = nj_fail(-ENAMETOOLONG, "spool: path too long: %s", path);
        goto err;
    }
    sp->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (sp->lock_fd < 0) {
        rc = nj_fail(-errno, "spool: cannot open lock file %s: %s", lock, strerror(errno));
        goto err;
    }
    if (flock(sp->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK
                 ? nj_fail(-EBUSY, "spool %s is in use by another process (lock %s)", path, lock)
                 : nj_fail(-errno, "spool: lock %s: %s", lock, strerror(errno));
        goto err;
    }
    if ((rc = prepare_file(path))) goto err;

    int src = sqlite3_open_v2(path, &sp->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) { rc = sq_fail(sp, src, "open"); goto err; }
    sqlite3_extended_result_codes(sp->db, 1);
    sqlite3_busy_timeout(sp->db, sp->o.busy_timeout_ms);
    if ((rc = configure(sp))) goto err;
    if ((rc = migrate(sp))) goto err;
    char *emsg = NULL;
    src = sqlite3_exec(sp->db, "CREATE TEMP TABLE cfg_sinks (name TEXT PRIMARY KEY)",
                       NULL, NULL, &emsg);
    sqlite3_free(emsg);
    if (src != SQLITE_OK) { rc = sq_fail(sp, src, "create sink table"); goto err; }
    for (int i = 0; i < S_COUNT; i++) {
        src = sqlite3_prepare_v3(sp->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &sp->st[i], NULL);
        if (src != SQLITE_OK) { rc = sq_fail(sp, src, "prepare"); goto err; }
    }
    if (opts) {
        for (size_t i = 0; i < opts->n_sinks; i++) {
            if ((rc = check_text("sink name", opts->sinks[i], 1024, false))) goto err;
            bind_text(sp->st[S_CFG_ADD], 1, opts->sinks[i]);
            if ((rc = run(sp, S_CFG_ADD, "register sink"))) goto err;
        }
    }
    /* Rows a previous process claimed and never marked: maybe sent. */
    if ((rc = tx_begin(sp, true)) == 0) {
        rc = run(sp, S_DL_FIXUP, "recover in-flight deliveries");
        int n = rc == 0 ? sqlite3_changes(sp->db) : 0;
        rc = tx_end(sp, rc);
        if (rc == 0 && n > 0)
            NJ_WARN("spool %s: %d deliveries were in flight when the last process stopped; "
                    "they will be re-sent marked as redeliveries", path, n);
    }
    if (rc) goto err;
    sqlite3_stmt *st = sp->st[S_ORPHANS];
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        NJ_WARN("spool %s: %lld undelivered verdicts for sink \"%s\", which is not configured; "
                "they are kept (and do not block retention)", path,
                (long long)sqlite3_column_int64(st, 1), (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    if (src != SQLITE_DONE) { rc = sq_fail(sp, src, "list sinks"); goto err; }
    fsync_parent(path);
    return sp;

err:
    if (err) *err = rc ? rc : -EIO;
    if (sp) {
        char keep[256];
        snprintf(keep, sizeof keep, "%s", nj_last_error());
        spool_close(sp);
        nj_set_error("%s", keep);
    }
    return NULL;
}

const char *spool_path(const spool *sp) { return sp->path; }

/* ------------------------------------------------------------- events --- */

/* One event inside an open transaction: its seq (> 0) or a negative code;
 * *fresh tells whether it was newly stored. */
static int64_t put_one(spool *sp, const spool_event_in *ev, int64_t now, bool *fresh) {
    int rc;
    if ((rc = check_text("event id", ev->id, SPOOL_MAX_ID, false)) ||
        (rc = check_text("event source", ev->source, SPOOL_MAX_ID, false)) ||
        (rc = check_text("event json", ev->json, SPOOL_MAX_JSON, false)))
        return rc;
    sqlite3_stmt *st = sp->st[S_EV_INSERT];
    bind_text(st, 1, ev->source);
    bind_text(st, 2, ev->id);
    sqlite3_bind_int64(st, 3, now);
    bind_text(st, 4, ev->json);
    if ((rc = run(sp, S_EV_INSERT, "store event"))) return rc;
    if (sqlite3_changes(sp->db) == 1) {
        *fresh = true;
        return sqlite3_last_insert_rowid(sp->db);
    }
    *fresh = false;
    st = sp->st[S_EV_FIND];
    bind_text(st, 1, ev->source);
    bind_text(st, 2, ev->id);
    int src = sqlite3_step(st);
    int64_t seq = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (src != SQLITE_ROW) return src == SQLITE_DONE ? nj_fail(-EIO, "spool: duplicate vanished")
                                                     : sq_fail(sp, src, "find event");
    return seq;
}

int spool_put_events(spool *sp, const spool_event_in *evs, size_t n,
                     const spool_offset *off, int64_t *seqs) {
    if (!sp || (n && !evs)) return nj_fail(-EINVAL, "spool_put_events: bad arguments");
    if (off) {
        int rc = check_text("source name", off->name, SPOOL_MAX_ID, false);
        if (rc) return rc;
        if (off->off > INT64_MAX || off->ino > INT64_MAX || off->dev > INT64_MAX)
            return nj_fail(-ERANGE, "spool: source offset out of range");
    }
    pthread_mutex_lock(&sp->mu);
    int64_t now = spool_now_ms();
    int fresh_count = 0, dups = 0;
    int rc = tx_begin(sp, true);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool fresh = false;
        int64_t seq = put_one(sp, &evs[i], now, &fresh);
        if (seq < 0) { rc = (int)seq; break; }
        if (seqs) seqs[i] = seq;
        if (fresh) fresh_count++;
        else dups++;
    }
    if (rc == 0 && off) {
        sqlite3_stmt *st = sp->st[S_OFF_PUT];
        bind_text(st, 1, off->name);
        sqlite3_bind_int64(st, 2, (int64_t)off->dev);
        sqlite3_bind_int64(st, 3, (int64_t)off->ino);
        sqlite3_bind_int64(st, 4, (int64_t)off->off);
        sqlite3_bind_int64(st, 5, now);
        rc = run(sp, S_OFF_PUT, "store source offset");
    }
    rc = tx_end(sp, rc);
    if (rc == 0) sp->dups += dups;
    pthread_mutex_unlock(&sp->mu);
    return rc ? rc : fresh_count;
}

int64_t spool_put_event(spool *sp, const char *id, const char *source, const char *json) {
    spool_event_in ev = {.id = id, .source = source, .json = json};
    int64_t seq = 0;
    int rc = spool_put_events(sp, &ev, 1, NULL, &seq);
    return rc < 0 ? rc : seq;
}

int spool_get_offset(spool *sp, const char *name, spool_offset *out) {
    if (!sp || !name || !out) return nj_fail(-EINVAL, "spool_get_offset: bad arguments");
    pthread_mutex_lock(&sp->mu);
    sqlite3_stmt *st = sp->st[S_OFF_GET];
    bind_text(st, 1, name);
    int src = sqlite3_step(st), rc = 0;
    if (src == SQLITE_ROW) {
        out->name = name;
        out->dev = (uint64_t)sqlite3_column_int64(st, 0);
        out->ino = (uint64_t)sqlite3_column_int64(st, 1);
        out->off = (uint64_t)sqlite3_column_int64(st, 2);
    } else if (src == SQLITE_DONE) {
        rc = nj_fail(-ENOENT, "spool: no offset stored for source %s", name);
    } else {
        rc = sq_fail(sp, src, "read source offset");
    }
    sqlite3_reset(st);
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

/* Rows copied out of a statement, each with its own string block. */
typedef struct ev_copy { spool_event ev; char *id, *source, *json; } ev_copy;

static void ev_copies_free(ev_copy *c, size_t n) {
    for (size_t i = 0; c && i < n; i++) { nj_free(c[i].id); nj_free(c[i].source); nj_free(c[i].json); }
    nj_free(c);
}

/* Step st (already bound) and copy up to max event rows. */
static int copy_events(spool *sp, sqlite3_stmt *st, size_t max, ev_copy **out, size_t *n_out) {
    ev_copy *c = NULL;
    size_t n = 0, cap = 0;
    int src, rc = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW && n < max) {
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            ev_copy *g = nj_realloc(c, ncap * sizeof *g);
            if (!g) { rc = nj_fail(-ENOMEM, "spool: out of memory"); break; }
            c = g;
            cap = ncap;
        }
        ev_copy *e = &c[n];
        memset(e, 0, sizeof *e);
        n++;
        e->ev.seq = sqlite3_column_int64(st, 0);
        e->id = col_dup(st, 1);
        e->source = col_dup(st, 2);
        e->json = col_dup(st, 3);
        e->ev.received_at = sqlite3_column_int64(st, 4);
        if (!e->id || !e->source || !e->json) { rc = nj_fail(-ENOMEM, "spool: out of memory"); break; }
        e->ev.id = e->id;
        e->ev.source = e->source;
        e->ev.json = e->json;
    }
    if (rc == 0 && src != SQLITE_ROW && src != SQLITE_DONE) rc = sq_fail(sp, src, "read events");
    sqlite3_reset(st);
    if (rc) { ev_copies_free(c, n); return rc; }
    *out = c;
    *n_out = n;
    return 0;
}

int spool_next_pending(spool *sp, int64_t after_seq, size_t max,
                       int (*cb)(const spool_event *ev, void *ud), void *ud) {
    if (!sp || !cb) return nj_fail(-EINVAL, "spool_next_pending: bad arguments");
    if (max == 0) return 0;
    pthread_mutex_lock(&sp->mu);
    sqlite3_stmt *st = sp->st[S_EV_PENDING];
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, (int64_t)NJ_MIN(max, (size_t)INT64_MAX));
    ev_copy *c = NULL;
    size_t n = 0;
    int rc = copy_events(sp, st, max, &c, &n);
    pthread_mutex_unlock(&sp->mu);
    if (rc) return rc;
    size_t i = 0;
    for (; i < n; i++) {
        int r = cb(&c[i].ev, ud);
        if (r) { rc = r; break; }
    }
    ev_copies_free(c, n);
    return rc ? rc : (int)n;
}

int spool_get_event(spool *sp, int64_t seq, int (*cb)(const spool_event *ev, void *ud), void *ud) {
    if (!sp || !cb) return nj_fail(-EINVAL, "spool_get_event: bad arguments");
    pthread_mutex_lock(&sp->mu);
    sqlite3_stmt *st = sp->st[S_EV_GET];
    sqlite3_bind_int64(st, 1, seq);
    ev_copy *c = NULL;
    size_t n = 0;
    int rc = copy_events(sp, st, 1, &c, &n);
    pthread_mutex_unlock(&sp->mu);
    if (rc) return rc;
    if (n == 0) rc = nj_fail(-ENOENT, "spool: no event with seq %lld", (long long)seq);
    else rc = cb(&c[0].ev, ud);
    ev_copies_free(c, n);
    return rc;
}

/* ----------------------------------------------------------- verdicts --- */

/* 1 if the single-row query s with seq bound finds a row, 0 if not, < 0. */
static int exists(spool *sp, enum stmt s, int64_t seq) {
    sqlite3_stmt *st = sp->st[s];
    sqlite3_bind_int64(st, 1, seq);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src == SQLITE_ROW) return 1;
    if (src == SQLITE_DONE) return 0;
    return sq_fail(sp, src, "look up event");
}

int spool_put_verdict(spool *sp, int64_t seq, const char *json) {
    if (!sp) return nj_fail(-EINVAL, "spool_put_verdict: no spool");
    int rc = check_text("verdict json", json, SPOOL_MAX_JSON, false);
    if (rc) return rc;
    pthread_mutex_lock(&sp->mu);
    int64_t now = spool_now_ms();
    rc = tx_begin(sp, true);
    if (rc == 0) {
        int e = exists(sp, S_EV_EXISTS, seq);
        if (e < 0) rc = e;
        else if (e == 0) rc = nj_fail(-ENOENT, "spool: no event with seq %lld", (long long)seq);
    }
    if (rc == 0) {
        int v = exists(sp, S_VD_EXISTS, seq);
        if (v < 0) rc = v;
        else if (v == 1)
            rc = nj_fail(-EEXIST, "spool: event %lld already has a verdict (exactly one per "
                         "event)", (long long)seq);
    }
    if (rc == 0) {
        sqlite3_stmt *st = sp->st[S_VD_INSERT];
        sqlite3_bind_int64(st, 1, seq);
        bind_text(st, 2, json);
        sqlite3_bind_int64(st, 3, now);
        rc = run(sp, S_VD_INSERT, "store verdict");
    }
    if (rc == 0) {
        sqlite3_bind_int64(sp->st[S_EV_JUDGED], 1, seq);
        rc = run(sp, S_EV_JUDGED, "mark event judged");
    }
    if (rc == 0) {
        sqlite3_bind_int64(sp->st[S_DL_CREATE], 1, seq);
        sqlite3_bind_int64(sp->st[S_DL_CREATE], 2, now);
        rc = run(sp, S_DL_CREATE, "create deliveries");
    }
    rc = tx_end(sp, rc);
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

/* --------------------------------------------------------- deliveries --- */

typedef struct dl_copy { spool_delivery d; char *event_id, *source, *verdict; } dl_copy;

static void dl_copies_free(dl_copy *c, size_t n) {
    for (size_t i = 0; c && i < n; i++) {
        nj_free(c[i].event_id);
        nj_free(c[i].source);
        nj_free(c[i].verdict);
    }
    nj_free(c);
}

int spool_next_delivery(spool *sp, const char *sink, int64_t now, size_t max,
                        int (*cb)(const spool_delivery *batch, size_t n, void *ud), void *ud) {
    if (!sp || !sink || !cb) return nj_fail(-EINVAL, "spool_next_delivery: bad arguments");
    if (max == 0) return 0;
    size_t cap = NJ_MIN(max, (size_t)4096);
    dl_copy *c = nj_calloc(cap, sizeof *c);
    if (!c) return nj_fail(-ENOMEM, "spool: out of memory");
    size_t n = 0;
    pthread_mutex_lock(&sp->mu);
    int rc = tx_begin(sp, true);
    if (rc == 0) {
        sqlite3_stmt *st = sp->st[S_DL_DUE];
        bind_text(st, 1, sink);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_int64(st, 3, (int64_t)cap);
        int src = SQLITE_DONE;
        while (rc == 0 && n < cap && (src = sqlite3_step(st)) == SQLITE_ROW) {
            dl_copy *e = &c[n++];
            e->d.seq = sqlite3_column_int64(st, 0);
            e->d.attempts = sqlite3_column_int(st, 1) + 1;
            e->d.redelivery = sqlite3_column_int(st, 2) != 0;
            e->event_id = col_dup(st, 3);
            e->source = col_dup(st, 4);
            e->verdict = col_dup(st, 5);
            e->d.judged_at = sqlite3_column_int64(st, 6);
            if (!e->event_id || !e->source || !e->verdict)
                rc = nj_fail(-ENOMEM, "spool: out of memory");
            e->d.sink = sink;
            e->d.event_id = e->event_id;
            e->d.source = e->source;
            e->d.verdict_json = e->verdict;
        }
        if (rc == 0 && n < cap && src != SQLITE_DONE) rc = sq_fail(sp, src, "read deliveries");
        sqlite3_reset(st);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_stmt *st = sp->st[S_DL_CLAIM];
        bind_text(st, 1, sink);
        sqlite3_bind_int64(st, 2, c[i].d.seq);
        rc = run(sp, S_DL_CLAIM, "claim delivery");
    }
    rc = tx_end(sp, rc);
    pthread_mutex_unlock(&sp->mu);
    if (rc) { dl_copies_free(c, n); return rc; }
    spool_delivery *batch = n ? nj_malloc(n * sizeof *batch) : NULL;
    if (n && !batch) {
        /* Claimed but cannot be handed out: give them back. */
        dl_copies_free(c, n);
        spool_release_inflight(sp, sink);
        return nj_fail(-ENOMEM, "spool: out of memory");
    }
    for (size_t i = 0; i < n; i++) batch[i] = c[i].d;
    if (n) rc = cb(batch, n, ud);
    nj_free(batch);
    dl_copies_free(c, n);
    return rc ? rc : (int)n;
}

int spool_mark_delivered(spool *sp, const char *sink, int64_t seq) {
    if (!sp || !sink) return nj_fail(-EINVAL, "spool_mark_delivered: bad arguments");
    pthread_mutex_lock(&sp->mu);
    int rc = tx_begin(sp, false);
    if (rc == 0) {
        sqlite3_stmt *st = sp->st[S_DL_DELIVERED];
        bind_text(st, 1, sink);
        sqlite3_bind_int64(st, 2, seq);
        sqlite3_bind_int64(st, 3, spool_now_ms());
        rc = run(sp, S_DL_DELIVERED, "mark delivered");
        if (rc == 0 && sqlite3_changes(sp->db) == 0)
            rc = nj_fail(-ENOENT, "spool: no delivery of seq %lld to %s", (long long)seq, sink);
    }
    rc = tx_end(sp, rc);
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

static int64_t backoff_locked(spool *sp, int attempts) {
    int64_t d = sp->o.backoff_base_ms;
    for (int i = 1; i < attempts && d < sp->o.backoff_cap_ms; i++) d *= 2;
    if (d > sp->o.backoff_cap_ms) d = sp->o.backoff_cap_ms;
    int64_t half = d / 2;
    return half + (int64_t)(rng_next(&sp->rng) % (uint64_t)(d - half + 1));
}

int64_t spool_backoff_ms(spool *sp, int attempts) {
    pthread_mutex_lock(&sp->mu);
    int64_t d = backoff_locked(sp, attempts < 1 ? 1 : attempts);
    pthread_mutex_unlock(&sp->mu);
    return d;
}

int spool_mark_failed(spool *sp, const char *sink, int64_t seq, int64_t now,
                      spool_fail how, const char *error) {
    if (!sp || !sink) return nj_fail(-EINVAL, "spool_mark_failed: bad arguments");
    char err[SPOOL_MAX_ERROR + 1];
    snprintf(err, sizeof err, "%s", error ? error : "unknown error");
    pthread_mutex_lock(&sp->mu);
    int rc = tx_begin(sp, false);
    int attempts = 0;
    if (rc == 0) {
        sqlite3_stmt *st = sp->st[S_DL_GET];
        bind_text(st, 1, sink);
        sqlite3_bind_int64(st, 2, seq);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) attempts = sqlite3_column_int(st, 0);
        else if (src == SQLITE_DONE)
            rc = nj_fail(-ENOENT, "spool: no delivery of seq %lld to %s", (long long)seq, sink);
        else rc = sq_fail(sp, src, "read delivery");
        sqlite3_reset(st);
    }
    if (rc == 0) {
        bool give_up = how == SPOOL_FAIL_PERMANENT ||
                       (sp->o.max_attempts > 0 && attempts >= sp->o.max_attempts);
        sqlite3_stmt *st = sp->st[S_DL_FAILED];
        bind_text(st, 1, sink);
        sqlite3_bind_int64(st, 2, seq);
        bind_text(st, 3, give_up ? "failed" : "pending");
        sqlite3_bind_int64(st, 4, give_up ? now : now + backoff_locked(sp, NJ_MAX(attempts, 1)));
        bind_text(st, 5, err);
        sqlite3_bind_int(st, 6, how == SPOOL_FAIL_MAYBE);
        rc = run(sp, S_DL_FAILED, "mark failed");
        if (rc == 0 && give_up)
            NJ_WARN("spool: delivery of seq %lld to %s failed for good after %d attempts: %s",
                    (long long)seq, sink, attempts, err);
    }
    rc = tx_end(sp, rc);
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

int spool_requeue_failed(spool *sp, const char *sink) {
    if (!sp || !sink) return nj_fail(-EINVAL, "spool_requeue_failed: bad arguments");
    pthread_mutex_lock(&sp->mu);
    int rc = tx_begin(sp, false), n = 0;
    if (rc == 0) {
        bind_text(sp->st[S_DL_REQUEUE], 1, sink);
        rc = run(sp, S_DL_REQUEUE, "requeue failed deliveries");
        n = sqlite3_changes(sp->db);
    }
    rc = tx_end(sp, rc);
    pthread_mutex_unlock(&sp->mu);
    return rc ? rc : n;
}

int spool_release_inflight(spool *sp, const char *sink) {
    if (!sp || !sink) return nj_fail(-EINVAL, "spool_release_inflight: bad arguments");
    pthread_mutex_lock(&sp->mu);
    int rc = tx_begin(sp, false), n = 0;
    if (rc == 0) {
        bind_text(sp->st[S_DL_RELEASE], 1, sink);
        rc = run(sp, S_DL_RELEASE, "release claimed deliveries");
        n = sqlite3_changes(sp->db);
    }
    rc = tx_end(sp, rc);
    pthread_mutex_unlock(&sp->mu);
    return rc ? rc : n;
}

int spool_next_due(spool *sp, const char *sink, int64_t *at) {
    if (!sp || !sink || !at) return nj_fail(-EINVAL, "spool_next_due: bad arguments");
    pthread_mutex_lock(&sp->mu);
    sqlite3_stmt *st = sp->st[S_DL_NEXT_DUE];
    bind_text(st, 1, sink);
    int src = sqlite3_step(st), rc = 0;
    if (src == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        *at = sqlite3_column_int64(st, 0);
    else if (src == SQLITE_ROW || src == SQLITE_DONE)
        rc = -ENOENT;
    else
        rc = sq_fail(sp, src, "read next due time");
    sqlite3_reset(st);
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

/* ---------------------------------------------------------- retention --- */

static int used_bytes(spool *sp, int64_t *out) {
    sqlite3_stmt *st = sp->st[S_USED_BYTES];
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return src == SQLITE_ROW ? 0 : sq_fail(sp, src, "measure size");
}

static int meta_add(spool *sp, const char *key, int64_t v) {
    sqlite3_stmt *st = sp->st[S_META_ADD];
    bind_text(st, 1, key);
    sqlite3_bind_int64(st, 2, v);
    return run(sp, S_META_ADD, "update counters");
}

/* How many of the oldest events to delete to bring `used` bytes down to
 * `limit`, from the average size of an event: a slight overestimate, so a
 * few steps suffice, but never far past the limit (dropping undelivered
 * events over the hard cap must take no more than it has to). */
static int retain_batch(spool *sp, int64_t used, int64_t limit) {
    sqlite3_stmt *st = sp->st[S_EV_COUNT];
    int64_t count = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (count <= 0 || used <= limit) return 1;
    int64_t per = used / count;
    int64_t n = per > 0 ? (used - limit + per - 1) / per : 1;
    return (int)NJ_MAX(1, NJ_MIN(n, RETAIN_CHUNK));
}

/* One retention step: statement s deleting at most `limit` of the oldest
 * candidates (judged before `cutoff` for S_RT_AGE), in its own non-durable
 * transaction, counted under key.  Returns rows deleted. */
static int retain_step(spool *sp, enum stmt s, int64_t cutoff, int limit, const char *key) {
    sqlite3_stmt *st = sp->st[s];
    if (s == S_RT_AGE) {
        sqlite3_bind_int64(st, 1, cutoff);
        sqlite3_bind_int(st, 2, limit);
    } else {
        sqlite3_bind_int(st, 1, limit);
    }
    int rc = tx_begin(sp, false), n = 0;
    if (rc == 0) rc = run(sp, s, "delete old events");
    if (rc == 0) n = sqlite3_changes(sp->db);
    if (rc == 0 && n > 0) rc = meta_add(sp, key, n);
    rc = tx_end(sp, rc);
    return rc ? rc : n;
}

int spool_retain(spool *sp, int64_t now) {
    if (!sp) return nj_fail(-EINVAL, "spool_retain: no spool");
    pthread_mutex_lock(&sp->mu);
    int rc = 0, total = 0, n;
    int64_t used = 0;
    if (sp->o.max_age_ms > 0) {
        while ((n = retain_step(sp, S_RT_AGE, now - sp->o.max_age_ms, RETAIN_CHUNK,
                                 "retained_deleted")) > 0)
            total += n;
        if (n < 0) rc = n;
    }
    int64_t soft = sp->o.max_bytes > 0 ? sp->o.max_bytes : sp->o.hard_cap_bytes;
    while (rc == 0 && soft > 0 && (rc = used_bytes(sp, &used)) == 0 && used > soft) {
        n = retain_step(sp, S_RT_DONE, 0, retain_batch(sp, used, soft), "retained_deleted");
        if (n <= 0) { rc = n < 0 ? n : 0; break; }
        total += n;
    }
    int dropped = 0;
    while (rc == 0 && sp->o.hard_cap_bytes > 0 && (rc = used_bytes(sp, &used)) == 0 &&
           used > sp->o.hard_cap_bytes) {
        n = retain_step(sp, S_RT_ANY, 0, retain_batch(sp, used, sp->o.hard_cap_bytes),
                        "dropped_undelivered");
        if (n <= 0) { rc = n < 0 ? n : 0; break; }
        dropped += n;
    }
    if (dropped > 0)
        NJ_ERR("spool %s: over its hard cap of %lld bytes: DROPPED %d events that were not "
               "yet judged or delivered (oldest first); raise retention_mb or fix the sinks",
               sp->path, (long long)sp->o.hard_cap_bytes, dropped);
    total += dropped;
    if (rc == 0 && total > 0) {
        sqlite3_stmt *st = sp->st[S_INCR_VACUUM];
        int src;
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {}
        sqlite3_reset(st);
        if (src != SQLITE_DONE) rc = sq_fail(sp, src, "return free pages");
        /* In WAL mode the file shrinks when the pages reach it. */
        if (rc == 0) {
            src = sqlite3_wal_checkpoint_v2(sp->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
            if (src != SQLITE_OK) rc = sq_fail(sp, src, "checkpoint");
        }
    }
    pthread_mutex_unlock(&sp->mu);
    return rc ? rc : total;
}

/* -------------------------------------------------------------- stats --- */

static int64_t meta_get(spool *sp, const char *key, int *rc) {
    sqlite3_stmt *st = sp->st[S_META_GET];
    bind_text(st, 1, key);
    int src = sqlite3_step(st);
    int64_t v = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE && *rc == 0) *rc = sq_fail(sp, src, "read counters");
    return v;
}

int spool_stats_get(spool *sp, spool_stats *s) {
    if (!sp || !s) return nj_fail(-EINVAL, "spool_stats_get: bad arguments");
    memset(s, 0, sizeof *s);
    pthread_mutex_lock(&sp->mu);
    int rc = 0, src;
    sqlite3_stmt *st = sp->st[S_ST_EVENTS];
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 0);
        int64_t n = sqlite3_column_int64(st, 1);
        if (state && !strcmp(state, "pending")) s->events_pending = n;
        else s->events_judged += n;
    }
    sqlite3_reset(st);
    if (src != SQLITE_DONE) rc = sq_fail(sp, src, "count events");
    st = sp->st[S_ST_DELIV];
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(st, 0);
        int inflight = sqlite3_column_int(st, 1), redel = sqlite3_column_int(st, 2);
        int64_t n = sqlite3_column_int64(st, 3);
        if (!state) continue;
        if (!strcmp(state, "pending")) {
            s->deliveries_pending += n;
            if (inflight) s->deliveries_inflight += n;
            if (redel) s->redeliveries_pending += n;
        } else if (!strcmp(state, "delivered")) {
            s->deliveries_delivered += n;
        } else {
            s->deliveries_failed += n;
        }
    }
    sqlite3_reset(st);
    if (rc == 0 && src != SQLITE_DONE) rc = sq_fail(sp, src, "count deliveries");
    s->dropped_undelivered = meta_get(sp, "dropped_undelivered", &rc);
    s->retained_deleted = meta_get(sp, "retained_deleted", &rc);
    s->duplicates_ignored = sp->dups;
    if (rc == 0) rc = used_bytes(sp, &s->db_bytes);
    struct stat sb;
    if (stat(sp->path, &sb) == 0) s->file_bytes = (int64_t)sb.st_size;
    char wal[PATH_MAX];
    if (snprintf(wal, sizeof wal, "%s-wal", sp->path) < (int)sizeof wal && stat(wal, &sb) == 0)
        s->file_bytes += (int64_t)sb.st_size;
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

int spool_sink_stats(spool *sp,
                     void (*cb)(const char *sink, int64_t pending, int64_t delivered,
                                int64_t failed, void *ud),
                     void *ud) {
    if (!sp || !cb) return nj_fail(-EINVAL, "spool_sink_stats: bad arguments");
    /* Few sinks: call back under the lock, with stable column pointers. */
    pthread_mutex_lock(&sp->mu);
    sqlite3_stmt *st = sp->st[S_ST_SINKS];
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        cb((const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1),
           sqlite3_column_int64(st, 2), sqlite3_column_int64(st, 3), ud);
    sqlite3_reset(st);
    int rc = src == SQLITE_DONE ? 0 : sq_fail(sp, src, "count sink deliveries");
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

int spool_check(spool *sp) {
    if (!sp) return nj_fail(-EINVAL, "spool_check: no spool");
    pthread_mutex_lock(&sp->mu);
    sqlite3_stmt *st = sp->st[S_INTEGRITY];
    int src = sqlite3_step(st), rc = 0;
    if (src == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (!t || strcmp(t, "ok") != 0)
            rc = nj_fail(NJ_EFORMAT, "spool %s: integrity check: %s", sp->path, t ? t : "?");
    } else {
        rc = sq_fail(sp, src, "integrity check");
    }
    sqlite3_reset(st);
    pthread_mutex_unlock(&sp->mu);
    return rc;
}
