/*
 * proctable — see proctable.h.  Entries live in one array; a power-of-two
 * bucket array chains them by pid (hnext), and a doubly linked list through
 * prev/next orders them by last use (head = most recent).  Free entries are
 * chained through hnext from `free_head`.  Index -1 is "none".
 */
#include "proctable.h"
#include "event.h"
#include "util.h"

#include <string.h>

typedef struct pt_entry {
    long pid, ppid;
    char *path, *cmdline;
    int64_t start, exited;        /* exited: -1 while running */
    int hnext, prev, next;
    bool used;
} pt_entry;

struct proctable {
    pt_entry *e;
    int *bucket;
    size_t cap, nbucket, n;
    int head, tail, free_head;
    int64_t grace;
};

static size_t hash_pid(long pid, size_t nb) {
    uint64_t h = (uint64_t)pid * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (nb - 1);
}

proctable *proctable_new(size_t capacity, int64_t grace, int *err) {
    int rc = -EINVAL;
    proctable *t = NULL;
    if (capacity < 1 || capacity > (1u << 24) || grace < 0) {
        nj_fail(rc, "proctable: capacity %zu or grace %lld out of range", capacity, (long long)grace);
        goto err;
    }
    rc = -ENOMEM;
    t = nj_calloc(1, sizeof *t);
    if (!t) goto err;
    t->cap = capacity;
    t->nbucket = 1;
    while (t->nbucket < capacity * 2) t->nbucket <<= 1;
    t->e = nj_calloc(capacity, sizeof *t->e);
    t->bucket = nj_malloc(t->nbucket * sizeof *t->bucket);
    if (!t->e || !t->bucket) goto err;
    for (size_t i = 0; i < t->nbucket; i++) t->bucket[i] = -1;
    for (size_t i = 0; i < capacity; i++) t->e[i].hnext = i + 1 < capacity ? (int)i + 1 : -1;
    t->free_head = 0;
    t->head = t->tail = -1;
    t->grace = grace;
    return t;
err:
    if (rc == -ENOMEM) nj_fail(rc, "proctable: out of memory");
    proctable_free(t);
    if (err) *err = rc;
    return NULL;
}

void proctable_free(proctable *t) {
    if (!t) return;
    if (t->e)
        for (size_t i = 0; i < t->cap; i++) { nj_free(t->e[i].path); nj_free(t->e[i].cmdline); }
    nj_free(t->e);
    nj_free(t->bucket);
    nj_free(t);
}

size_t proctable_size(const proctable *t) { return t ? t->n : 0; }

static void lru_unlink(proctable *t, int i) {
    pt_entry *x = &t->e[i];
    if (x->prev >= 0) t->e[x->prev].next = x->next; else t->head = x->next;
    if (x->next >= 0) t->e[x->next].prev = x->prev; else t->tail = x->prev;
    x->prev = x->next = -1;
}
static void lru_front(proctable *t, int i) {
    pt_entry *x = &t->e[i];
    x->prev = -1;
    x->next = t->head;
    if (t->head >= 0) t->e[t->head].prev = i;
    t->head = i;
    if (t->tail < 0) t->tail = i;
}

static int find(proctable *t, long pid) {
    for (int i = t->bucket[hash_pid(pid, t->nbucket)]; i >= 0; i = t->e[i].hnext)
        if (t->e[i].pid == pid) return i;
    return -1;
}

static void remove_entry(proctable *t, int i) {
    size_t b = hash_pid(t->e[i].pid, t->nbucket);
    int *pp = &t->bucket[b];
    while (*pp != i) pp = &t->e[*pp].hnext;
    *pp = t->e[i].hnext;
    lru_unlink(t, i);
    nj_free(t->e[i].path);
    nj_free(t->e[i].cmdline);
    memset(&t->e[i], 0, sizeof t->e[i]);
    t->e[i].hnext = t->free_head;
    t->free_head = i;
    t->n--;
}

/* Bounded copy (UTF-8 already valid in events; cut at a boundary). */
static char *bounded_dup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s);
    if (n > PT_STR_MAX) {
        n = PT_STR_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    }
    return nj_strndup(s, n);
}

/* Stores an entry for pid with owned copies of path/cmdline. */
static int put(proctable *t, long pid, long ppid, const char *path, const char *cmdline, int64_t ts) {
    char *p = NULL, *c = NULL;
    if ((path && !(p = bounded_dup(path))) || (cmdline && !(c = bounded_dup(cmdline)))) {
        nj_free(p);
        return nj_fail(-ENOMEM, "proctable: out of memory");
    }
    int i = find(t, pid);
    if (i >= 0) {
        lru_unlink(t, i);
        nj_free(t->e[i].path);
        nj_free(t->e[i].cmdline);
    } else {
        if (t->free_head < 0) remove_entry(t, t->tail);      /* evict least recently used */
        i = t->free_head;
        t->free_head = t->e[i].hnext;
        size_t b = hash_pid(pid, t->nbucket);
        t->e[i].hnext = t->bucket[b];
        t->bucket[b] = i;
        t->n++;
    }
    pt_entry *x = &t->e[i];
    x->used = true;
    x->pid = pid;
    x->ppid = ppid;
    x->path = p;
    x->cmdline = c;
    x->start = ts;
    x->exited = -1;
    lru_front(t, i);
    return 0;
}

int proctable_exec(proctable *t, long pid, long ppid, const char *path, const char *cmdline, int64_t ts) {
    if (!t || pid < 0) return 0;
    if (ppid < 0) {                                 /* keep a known ppid across exec */
        int i = find(t, pid);
        if (i >= 0) ppid = t->e[i].ppid;
    }
    return put(t, pid, ppid, path, cmdline, ts);
}

int proctable_fork(proctable *t, long pid, long ppid, int64_t ts) {
    if (!t || pid < 0) return 0;
    int i = ppid >= 0 ? find(t, ppid) : -1;
    if (i >= 0 && (t->e[i].exited < 0 || ts <= t->e[i].exited + t->grace)) {
        /* copy first: put() may evict or move the parent's entry */
        char *p = t->e[i].path ? nj_strdup(t->e[i].path) : NULL;
        char *c = t->e[i].cmdline ? nj_strdup(t->e[i].cmdline) : NULL;
        if ((t->e[i].path && !p) || (t->e[i].cmdline && !c)) {
            nj_free(p); nj_free(c);
            return nj_fail(-ENOMEM, "proctable: out of memory");
        }
        int rc = put(t, pid, ppid, p, c, ts);
        nj_free(p); nj_free(c);
        return rc;
    }
    return put(t, pid, ppid, NULL, NULL, ts);
}

void proctable_exit(proctable *t, long pid, int64_t ts) {
    if (!t) return;
    int i = find(t, pid);
    if (i >= 0 && t->e[i].exited < 0) t->e[i].exited = ts;
}

bool proctable_get(proctable *t, long pid, int64_t ts, proc_info *out) {
    if (!t) return false;
    int i = find(t, pid);
    if (i < 0) return false;
    pt_entry *x = &t->e[i];
    if (x->exited >= 0 && ts > x->exited + t->grace) {
        remove_entry(t, i);
        return false;
    }
    lru_unlink(t, i);
    lru_front(t, i);
    out->pid = x->pid;
    out->ppid = x->ppid;
    out->path = x->path;
    out->cmdline = x->cmdline;
    out->start = x->start;
    return true;
}

int proctable_apply(proctable *t, json_t *ev) {
    if (!t) return 0;
    const char *kind = event_get_str(ev, EF_KIND);
    const char *ts = event_get_str(ev, EF_TIME);
    int64_t sec = 0; long us;
    if (!kind || !ts || event_time_parse(ts, strlen(ts), &sec, &us)) return 0;
    long long pid = -1, ppid = -1;
    event_get_int(ev, EF_PROC_PID, &pid);
    if (event_get_int(ev, EF_PROC_PPID, &ppid)) {
        if (event_get_int(ev, EF_PARENT_PID, &ppid)) ppid = -1;
    }
    int rc;
    proc_info pi;
    /* the parent as it was when this event happened: look up before applying */
    if (ppid >= 0 && !event_get_str(ev, EF_PARENT_PATH) && proctable_get(t, (long)ppid, sec, &pi)) {
        if ((rc = event_set_int(ev, EF_PARENT_PID, ppid)) ||
            (rc = event_set_str(ev, EF_PARENT_PATH, pi.path, (size_t)-1)) ||
            (!event_get_str(ev, EF_PARENT_CMDLINE) &&
             (rc = event_set_str(ev, EF_PARENT_CMDLINE, pi.cmdline, (size_t)-1))))
            return rc;
    }
    if (pid < 0) return 0;
    if (strcmp(kind, "exec") == 0)
        return proctable_exec(t, (long)pid, (long)ppid, event_get_str(ev, EF_PROC_PATH),
                              event_get_str(ev, EF_PROC_CMDLINE), sec);
    if (strcmp(kind, "fork") == 0) return proctable_fork(t, (long)pid, (long)ppid, sec);
    if (strcmp(kind, "exit") == 0) proctable_exit(t, (long)pid, sec);
    return 0;
}
