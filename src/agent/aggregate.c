/*
 * aggregate — see aggregate.h.  Buckets live in a small array scanned
 * linearly by address (an attack run touches few addresses at a time; the
 * scan is bounded by AGG_MAX_ADDRS).  A bucket is "open" while it collects
 * failures and "closed" (events released) while it only remembers its count
 * so that a success inside the window can say after_failures = N.
 */
#include "aggregate.h"
#include "event.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

typedef struct bucket {
    char *addr;
    bool open;
    int64_t first, last;           /* event times (s) of first/last failure */
    long count;                    /* counted failures */
    json_t **held;                 /* events held, in order */
    int n_held;
    json_t *users;                 /* array of distinct users */
} bucket;

struct aggregate {
    int window, threshold;
    aggregate_emit_fn emit;
    void *ctx;
    int64_t now;
    bucket *b;
    int n, cap;
};

aggregate *aggregate_new(int window, int threshold, aggregate_emit_fn emit, void *ctx, int *err) {
    event_init();
    if (window < 1 || threshold < 1 || !emit) {
        if (err) *err = nj_fail(-EINVAL, "aggregate: window %d and threshold %d must be >= 1", window, threshold);
        return NULL;
    }
    aggregate *a = nj_calloc(1, sizeof *a);
    if (!a) { if (err) *err = nj_fail(-ENOMEM, "aggregate: out of memory"); return NULL; }
    a->window = window;
    a->threshold = threshold;
    a->emit = emit;
    a->ctx = ctx;
    a->now = INT64_MIN;
    return a;
}

static void bucket_clear(bucket *k) {
    for (int i = 0; i < k->n_held; i++) json_decref(k->held[i]);
    nj_free(k->held);
    k->held = NULL;
    k->n_held = 0;
    json_decref(k->users);
    k->users = NULL;
}

static void bucket_drop(aggregate *a, int i) {
    bucket_clear(&a->b[i]);
    nj_free(a->b[i].addr);
    a->b[i] = a->b[--a->n];
}

static int64_t ev_time(const json_t *ev) {
    const char *t = event_get_str(ev, EF_TIME);
    int64_t s = 0; long us;
    if (!t || event_time_parse(t, strlen(t), &s, &us)) return INT64_MIN;
    return s;
}

/* Releases an open bucket: one aggregated event or the held events. */
static int bucket_close(aggregate *a, bucket *k) {
    int rc = 0;
    k->open = false;
    if (k->count >= a->threshold && k->n_held > 0) {
        json_t *agg = json_deep_copy(k->held[0]);
        char id[512];
        snprintf(id, sizeof id, "%.400s:agg%ld", event_get_str(k->held[0], EF_ID), k->count);
        if (!agg || event_set_str(agg, EF_ID, id, (size_t)-1) ||
            event_set_int(agg, EF_AUTH_COUNT, k->count)) {
            json_decref(agg);
            bucket_clear(k);
            return nj_fail(-ENOMEM, "aggregate: out of memory");
        }
        /* the attempts came from many connections: per-connection facts of
         * the first one would mislead, so they go; the users tried stay */
        event_unset(agg, EF_PROCESS);
        event_unset(agg, EF_AUTH_SRC_PORT);
        event_unset(agg, EF_AUTH_INVALID_USER);
        event_unset(agg, EF_AUTH_USER);
        event_unset(agg, EF_USER_NAME);
        event_unset(agg, EF_AUTH_KEY_FP);
        event_unset(agg, EF_AUTH_KEY_TYPE);
        /* the method of the first counted attempt (the first held line may
         * be an uncounted "Invalid user" or pam line) */
        event_unset(agg, EF_AUTH_METHOD);
        for (int i = 0; i < k->n_held; i++) {
            const char *m = event_get_str(k->held[i], EF_AUTH_METHOD);
            if (m && strcmp(m, "pam") != 0) {
                if (event_set_str(agg, EF_AUTH_METHOD, m, (size_t)-1)) {
                    json_decref(agg);
                    bucket_clear(k);
                    return nj_fail(-ENOMEM, "aggregate: out of memory");
                }
                break;
            }
        }
        for (size_t i = 0; k->users && i < json_array_size(k->users); i++) {
            json_t *u = json_array_get(k->users, i);
            if (event_push_str(agg, EF_AUTH_USERS, json_string_value(u), json_string_length(u))) {
                json_decref(agg);
                bucket_clear(k);
                return nj_fail(-ENOMEM, "aggregate: out of memory");
            }
        }
        for (int i = 0; i < k->n_held; i++) json_decref(k->held[i]);
        k->n_held = 0;
        rc = a->emit(a->ctx, agg);
    } else {
        for (int i = 0; i < k->n_held; i++) {
            int r = a->emit(a->ctx, k->held[i]);
            if (r && !rc) rc = r;
        }
        k->n_held = 0;
    }
    nj_free(k->held);
    k->held = NULL;
    json_decref(k->users);
    k->users = NULL;
    return rc;
}

/* Closes buckets whose window has passed; forgets closed ones after it. */
static int expire(aggregate *a) {
    int rc = 0;
    for (int i = 0; i < a->n;) {
        bucket *k = &a->b[i];
        bool stale = a->now > k->last + a->window;
        bool too_long = a->now >= k->first + 5LL * a->window;
        if (k->open && (stale || too_long)) {
            int r = bucket_close(a, k);
            if (r && !rc) rc = r;
        }
        if (!k->open && stale) { bucket_drop(a, i); continue; }
        i++;
    }
    return rc;
}

static int find(aggregate *a, const char *addr) {
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->b[i].addr, addr) == 0) return i;
    return -1;
}

static int add_user(bucket *k, const char *user) {
    if (!user) return 0;
    if (!k->users && !(k->users = json_array())) return -ENOMEM;
    size_t n = json_array_size(k->users);
    for (size_t i = 0; i < n; i++)
        if (strcmp(json_string_value(json_array_get(k->users, i)), user) == 0) return 0;
    if (n >= AGG_MAX_USERS) return 0;
    return json_array_append_new(k->users, json_string_nocheck(user)) ? -ENOMEM : 0;
}

static int hold_failure(aggregate *a, json_t *ev, const char *addr, int64_t t) {
    int rc = 0;
    int i = find(a, addr);
    if (i >= 0 && !a->b[i].open) { bucket_drop(a, i); i = -1; }
    if (i < 0) {
        if (a->n >= AGG_MAX_ADDRS) {                 /* close the oldest to make room */
            int old = 0;
            for (int j = 1; j < a->n; j++) if (a->b[j].first < a->b[old].first) old = j;
            if (a->b[old].open) rc = bucket_close(a, &a->b[old]);
            bucket_drop(a, old);
        }
        if (a->n == a->cap) {
            int cap = a->cap ? a->cap * 2 : 16;
            bucket *nb = nj_realloc(a->b, (size_t)cap * sizeof *nb);
            if (!nb) { json_decref(ev); return nj_fail(-ENOMEM, "aggregate: out of memory"); }
            a->b = nb;
            a->cap = cap;
        }
        bucket *k = &a->b[a->n];
        memset(k, 0, sizeof *k);
        if (!(k->addr = nj_strdup(addr))) { json_decref(ev); return nj_fail(-ENOMEM, "aggregate: out of memory"); }
        k->open = true;
        k->first = t;
        a->n++;
        i = a->n - 1;
    }
    bucket *k = &a->b[i];
    const char *method = event_get_str(ev, EF_AUTH_METHOD);
    bool counted = method && strcmp(method, "pam") != 0;
    if (counted) k->count++;
    k->last = t > k->last ? t : k->last;
    if (add_user(k, event_get_str(ev, EF_AUTH_USER))) { json_decref(ev); return nj_fail(-ENOMEM, "aggregate: out of memory"); }
    if (k->n_held < a->threshold + AGG_EXTRA) {
        json_t **h = nj_realloc(k->held, (size_t)(k->n_held + 1) * sizeof *h);
        if (!h) { json_decref(ev); return nj_fail(-ENOMEM, "aggregate: out of memory"); }
        k->held = h;
        k->held[k->n_held++] = ev;
    } else if (k->count >= a->threshold) {
        json_decref(ev);                             /* summarised by the count */
    } else {
        /* many uncounted lines: release the oldest to stay bounded */
        int r = a->emit(a->ctx, k->held[0]);
        memmove(k->held, k->held + 1, (size_t)(k->n_held - 1) * sizeof *k->held);
        k->held[k->n_held - 1] = ev;
        if (r && !rc) rc = r;
    }
    return rc;
}

int aggregate_push(aggregate *a, json_t *ev) {
    int64_t t = ev_time(ev);
    if (t > a->now) a->now = t;
    int rc = expire(a);
    const char *kind = event_get_str(ev, EF_KIND);
    const char *result = event_get_str(ev, EF_AUTH_RESULT);
    const char *addr = event_get_str(ev, EF_AUTH_SRC_IP);
    if (!kind || strcmp(kind, "auth") != 0 || !result || !addr) {
        int r = a->emit(a->ctx, ev);
        return rc ? rc : r;
    }
    if (strcmp(result, "failure") == 0) {
        int r = hold_failure(a, ev, addr, t);
        return rc ? rc : r;
    }
    int i = find(a, addr);
    if (i >= 0) {
        bucket *k = &a->b[i];
        long n = k->count;
        if (k->open) {
            int r = bucket_close(a, k);
            if (r && !rc) rc = r;
        }
        if (n > 0) {
            int r = event_set_int(ev, EF_AUTH_AFTER_FAILURES, n);
            if (r) { json_decref(ev); return r; }
        }
        bucket_drop(a, i);
    }
    int r = a->emit(a->ctx, ev);
    return rc ? rc : r;
}

/* Closed buckets stay (until their window passes) so that a success right
 * after an idle-timeout flush still learns after_failures. */
int aggregate_flush(aggregate *a) {
    int rc = 0;
    for (;;) {
        int old = -1;
        for (int j = 0; j < a->n; j++)
            if (a->b[j].open && (old < 0 || a->b[j].first < a->b[old].first)) old = j;
        if (old < 0) break;
        int r = bucket_close(a, &a->b[old]);
        if (r && !rc) rc = r;
    }
    return rc;
}

void aggregate_free(aggregate *a) {
    if (!a) return;
    for (int i = 0; i < a->n; i++) { bucket_clear(&a->b[i]); nj_free(a->b[i].addr); }
    nj_free(a->b);
    nj_free(a);
}
