/*
 * parse_jsonl — generic JSON lines (one object per line) mapped to the
 * canonical event by a mapping file, for sources we have no parser for
 * (an EDR's export, a home-made collector, a SIEM query result).
 *
 * Mapping (JSON; documented with an example in docs/event.md):
 *   {
 *     "fields":   { "<canonical path>": "<source path>", ... },
 *     "defaults": { "<canonical path>": <constant>, ... },
 *     "kind_map": { "<source value>": "<canonical kind>", ... },
 *     "time_format": "auto" | "rfc3339" | "unix" | "unix_ms" | "unix_us"
 *   }
 * Canonical paths are those of docs/event.md ("process.pid", "user.name",
 * plus "kind", "id", "time", "host").  Source paths are dot-separated keys
 * into the line's object ("proc.cmd"); a numeric segment indexes an array
 * ("args.0").  A mapped value wins over a default.  Conversions: integer
 * fields take integers or decimal strings; string fields take strings,
 * integers and booleans (as text); boolean fields take true/false or
 * "true"/"false"/1/0; list fields (process.argv, auth.users) take arrays
 * of strings.  "kind" goes through kind_map when present; a value that is
 * then still not a canonical kind falls back to defaults.kind (or the line
 * is reported when there is no default).  Time "auto":
 * strings are RFC 3339, numbers are Unix seconds (> 1e11: milliseconds,
 * > 1e14: microseconds).  The id defaults to "jsonl:<source>:<line>".
 *
 * A line whose value cannot be converted, or that lacks kind or time after
 * mapping, is reported (naming the canonical and the source path) and
 * skipped; a source path that is simply absent leaves the field absent.
 */
#include "parse_internal.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

#define JL_MAX_MAP 128

enum { TF_AUTO, TF_RFC3339, TF_UNIX, TF_UNIX_MS, TF_UNIX_US };
enum { SP_KIND = -2, SP_ID = -3, SP_TIME = -4 };   /* pseudo fields beside ev_field */

typedef struct jl_map {
    int field;                    /* ev_field or SP_* */
    char *src;                    /* source path, or NULL for a default */
    json_t *constant;             /* default value, or NULL */
} jl_map;

typedef struct jsonl_parser {
    parser base;
    jl_map m[JL_MAX_MAP];
    int n;
    json_t *kind_map;
    int time_format;
} jsonl_parser;

static int field_of(const char *path) {
    if (!strcmp(path, "kind")) return SP_KIND;
    if (!strcmp(path, "id")) return SP_ID;
    if (!strcmp(path, "time")) return SP_TIME;
    int f = event_field_lookup(path);
    if (f < 0 || f == EF_V || event_field_type(f) == EVT_OBJECT || f == EF_SOURCE_FORMAT) return -1;
    return f;
}

static const json_t *lookup(const json_t *j, const char *path) {
    const char *p = path;
    while (j && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        char key[256];
        if (n >= sizeof key) return NULL;
        memcpy(key, p, n);
        key[n] = 0;
        if (json_is_array(j)) {
            long long idx;
            if (!nj_parse_ll(key, n, &idx) || idx < 0) return NULL;
            j = json_array_get(j, (size_t)idx);
        } else {
            j = json_object_get(j, key);
        }
        p = dot ? dot + 1 : p + n;
    }
    return j;
}

static int load_mapping(jsonl_parser *J, const parser_opts *o) {
    json_error_t je;
    int rc = 0;
    json_t *m;
    if (o->mapping_json) m = event_json_load(o->mapping_json, strlen(o->mapping_json), JSON_REJECT_DUPLICATES, &je, &rc);
    else if (o->mapping_file) {
        FILE *f = fopen(o->mapping_file, "rb");
        if (!f) return nj_fail(-errno, "jsonl mapping: cannot open %s", o->mapping_file);
        char *buf = NULL;
        size_t n = 0, cap = 0, k;
        char chunk[4096];
        while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
            if (n + k > (1u << 20)) { fclose(f); nj_free(buf); return nj_fail(-EINVAL, "jsonl mapping: %s is larger than 1 MiB", o->mapping_file); }
            if (n + k > cap) {
                cap = (n + k) * 2;
                char *nb = nj_realloc(buf, cap);
                if (!nb) { fclose(f); nj_free(buf); return nj_fail(-ENOMEM, "jsonl: out of memory"); }
                buf = nb;
            }
            memcpy(buf + n, chunk, k);
            n += k;
        }
        fclose(f);
        m = event_json_load(buf ? buf : "", n, JSON_REJECT_DUPLICATES, &je, &rc);
        nj_free(buf);
    } else return nj_fail(-EINVAL, "jsonl: a field mapping is required (mapping_json or mapping_file)");
    if (!m) {
        if (rc == -ENOMEM) return nj_fail(rc, "jsonl: out of memory");
        return nj_fail(-EINVAL, "jsonl mapping: %s (line %d column %d)", je.text, je.line, je.column);
    }
    rc = -EINVAL;
    json_t *fields = json_object_get(m, "fields"), *defs = json_object_get(m, "defaults");
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v) {
        if (strcmp(key, "fields") && strcmp(key, "defaults") && strcmp(key, "kind_map") && strcmp(key, "time_format")) {
            nj_fail(rc, "jsonl mapping: unknown key '%.64s'", key);
            goto out;
        }
    }
    if ((fields && !json_is_object(fields)) || (defs && !json_is_object(defs))) {
        nj_fail(rc, "jsonl mapping: \"fields\" and \"defaults\" must be objects");
        goto out;
    }
    json_object_foreach(fields, key, v) {
        int f = field_of(key);
        if (f == -1) { nj_fail(rc, "jsonl mapping: fields.%.64s: not a canonical field", key); goto out; }
        if (!json_is_string(v) || !json_string_length(v)) { nj_fail(rc, "jsonl mapping: fields.%.64s: expected a source path string", key); goto out; }
        if (J->n >= JL_MAX_MAP) { nj_fail(rc, "jsonl mapping: more than %d entries", JL_MAX_MAP); goto out; }
        J->m[J->n].field = f;
        if (!(J->m[J->n].src = nj_strdup(json_string_value(v)))) { rc = nj_fail(-ENOMEM, "jsonl: out of memory"); goto out; }
        J->n++;
    }
    json_object_foreach(defs, key, v) {
        int f = field_of(key);
        if (f == -1) { nj_fail(rc, "jsonl mapping: defaults.%.64s: not a canonical field", key); goto out; }
        if (J->n >= JL_MAX_MAP) { nj_fail(rc, "jsonl mapping: more than %d entries", JL_MAX_MAP); goto out; }
        J->m[J->n].field = f;
        J->m[J->n].constant = json_incref(v);
        J->n++;
    }
    json_t *km = json_object_get(m, "kind_map");
    if (km) {
        if (!json_is_object(km)) { nj_fail(rc, "jsonl mapping: \"kind_map\" must be an object"); goto out; }
        J->kind_map = json_incref(km);
    }
    const char *tf = json_string_value(json_object_get(m, "time_format"));
    if (tf) {
        static const char *const names[] = {"auto", "rfc3339", "unix", "unix_ms", "unix_us"};
        int k = -1;
        for (int i = 0; i < 5; i++) if (!strcmp(tf, names[i])) k = i;
        if (k < 0) { nj_fail(rc, "jsonl mapping: time_format '%.32s' (auto|rfc3339|unix|unix_ms|unix_us)", tf); goto out; }
        J->time_format = k;
    }
    bool has_kind = false, has_time = false;
    for (int i = 0; i < J->n; i++) { has_kind |= J->m[i].field == SP_KIND; has_time |= J->m[i].field == SP_TIME; }
    if (!has_kind || !has_time) { nj_fail(rc, "jsonl mapping: \"kind\" and \"time\" must be mapped (or given in defaults)"); goto out; }
    rc = 0;
out:
    json_decref(m);
    return rc;
}

/* Converts v for canonical field f into ev.  0, -ENOMEM, or 1 (bad value:
 * message in why). */
static int put_value(json_t *ev, int f, const json_t *v, char *why, size_t wn) {
    const char *path = event_field_path(f);
    switch (event_field_type(f)) {
    case EVT_STRING:
        if (json_is_string(v)) {
            int rc = event_set_str(ev, f, json_string_value(v), json_string_length(v));
            if (rc == -EINVAL) { snprintf(why, wn, "%s", nj_last_error()); return 1; }
            return rc;
        }
        if (json_is_integer(v) || json_is_boolean(v)) {
            char b[32];
            if (json_is_integer(v)) snprintf(b, sizeof b, "%lld", (long long)json_integer_value(v));
            else snprintf(b, sizeof b, "%s", json_is_true(v) ? "true" : "false");
            return event_set_str(ev, f, b, (size_t)-1);
        }
        snprintf(why, wn, "%s: expected string", path);
        return 1;
    case EVT_INT: {
        long long x;
        if (json_is_integer(v)) x = json_integer_value(v);
        else if (!json_is_string(v) || !nj_parse_ll(json_string_value(v), json_string_length(v), &x)) {
            snprintf(why, wn, "%s: expected integer", path);
            return 1;
        }
        int rc = event_set_int(ev, f, x);
        if (rc == -EINVAL) { snprintf(why, wn, "%s", nj_last_error()); return 1; }
        return rc;
    }
    case EVT_BOOL: {
        const char *s = json_string_value(v);
        int b = json_is_true(v) || (json_is_integer(v) && json_integer_value(v) == 1) || (s && !strcmp(s, "true")) ? 1
              : json_is_false(v) || (json_is_integer(v) && json_integer_value(v) == 0) || (s && !strcmp(s, "false")) ? 0 : -1;
        if (b < 0) { snprintf(why, wn, "%s: expected boolean", path); return 1; }
        return event_set_bool(ev, f, b);
    }
    case EVT_STRINGS:
        if (!json_is_array(v)) { snprintf(why, wn, "%s: expected array of strings", path); return 1; }
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i);
            if (!json_is_string(e)) { snprintf(why, wn, "%s[%zu]: expected string", path, i); return 1; }
            int rc = event_push_str(ev, f, json_string_value(e), json_string_length(e));
            if (rc) return rc;
        }
        return 0;
    case EVT_OBJECT:
        break;
    }
    snprintf(why, wn, "%s: cannot be mapped", path);
    return 1;
}

static bool to_time(int tf, const json_t *v, int64_t *sec, long *us) {
    if (json_is_string(v) && (tf == TF_AUTO || tf == TF_RFC3339))
        return !event_time_parse(json_string_value(v), json_string_length(v), sec, us);
    double x;
    long long ix;
    if (json_is_integer(v)) x = (double)json_integer_value(v);
    else if (json_is_real(v)) x = json_real_value(v);
    else if (json_is_string(v) && tf != TF_RFC3339 && nj_parse_ll(json_string_value(v), json_string_length(v), &ix)) x = (double)ix;
    else return false;
    int unit = tf == TF_UNIX_MS ? 1000 : tf == TF_UNIX_US ? 1000000 : 1;
    if (tf == TF_AUTO) unit = x > 1e14 ? 1000000 : x > 1e11 ? 1000 : 1;
    if (tf == TF_RFC3339 || x < 0 || x > 1e18) return false;
    double s = x / unit;
    *sec = (int64_t)s;
    *us = (long)((s - (double)*sec) * 1e6 + 0.5);
    if (*us > 999999) { *us = 0; (*sec)++; }
    return true;
}

static int jsonl_feed(parser *p, const char *line, size_t len, long lineno) {
    jsonl_parser *J = (jsonl_parser *)p;
    len = nj_chomp(line, len);
    if (len == 0) return 0;
    json_error_t je;
    int rc;
    json_t *j = event_json_load(line, len, 0, &je, &rc);
    if (!j) {
        if (rc == -ENOMEM) return nj_fail(rc, "jsonl: out of memory");
        parser_bad(p, lineno, "invalid JSON at column %d: %s", je.column, je.text);
        return 0;
    }
    rc = 0;
    json_t *ev = NULL;
    if (!json_is_object(j)) { parser_bad(p, lineno, "jsonl: expected a JSON object"); goto out; }
    /* kind, id, time first: they make the event */
    const json_t *kv = NULL, *iv = NULL, *tv = NULL, *kdef = NULL;
    for (int pass = 0; pass < 2; pass++)              /* mapped values (pass 0) win over defaults */
        for (int i = 0; i < J->n; i++) {
            const jl_map *m = &J->m[i];
            if ((pass == 0) != (m->src != NULL)) continue;
            const json_t *v = m->src ? lookup(j, m->src) : m->constant;
            if (!v || json_is_null(v)) continue;
            if (m->field == SP_KIND && !m->src) kdef = v;
            if (m->field == SP_KIND && !kv) kv = v;
            if (m->field == SP_ID && !iv) iv = v;
            if (m->field == SP_TIME && !tv) tv = v;
        }
    const char *kind = json_string_value(kv);
    if (kind && J->kind_map) {
        const char *mk = json_string_value(json_object_get(J->kind_map, kind));
        if (mk) kind = mk;
    }
    /* a source value that is neither in kind_map nor canonical falls back
     * to the default kind, if there is one */
    if (kind && kdef && kv != kdef) {
        static const char *const kinds[] = {"exec", "fork", "exit", "auth", "login", "logout", "network", "file", "other"};
        bool canon = false;
        for (size_t i = 0; i < NJ_ARRAY_LEN(kinds); i++) canon |= !strcmp(kind, kinds[i]);
        if (!canon) kind = json_string_value(kdef);
    }
    if (!kind) { parser_bad(p, lineno, "jsonl: no kind (mapped field absent and no default)"); goto out; }
    int64_t sec; long us;
    if (!tv || !to_time(J->time_format, tv, &sec, &us)) { parser_bad(p, lineno, "jsonl: time absent or not in the mapped format"); goto out; }
    char id[512];
    if (json_is_string(iv)) snprintf(id, sizeof id, "%.500s", json_string_value(iv));
    else if (json_is_integer(iv)) snprintf(id, sizeof id, "%lld", (long long)json_integer_value(iv));
    else snprintf(id, sizeof id, "jsonl:%.400s:%ld", p->source_name ? p->source_name : "-", lineno);
    ev = parser_event(p, kind, id, lineno, &rc);
    if (!ev) {
        if (rc == -EINVAL) { parser_bad(p, lineno, "jsonl: %s", nj_last_error()); rc = 0; }
        goto out;
    }
    if ((rc = event_set_time(ev, sec, us))) goto out;
    char why[256];
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < J->n; i++) {
            const jl_map *m = &J->m[i];
            if ((pass == 0) != (m->src != NULL) || m->field < 0) continue;
            if (pass == 1 && event_get(ev, m->field)) continue;
            const json_t *v = m->src ? lookup(j, m->src) : m->constant;
            if (!v || json_is_null(v)) continue;
            rc = put_value(ev, m->field, v, why, sizeof why);
            if (rc == 1) {
                parser_bad(p, lineno, "jsonl: %s (from '%.64s')", why, m->src ? m->src : "defaults");
                rc = 0;
                goto out;
            }
            if (rc) goto out;
        }
    rc = parser_emit(p, ev, lineno, line, len);
    ev = NULL;
out:
    json_decref(ev);
    json_decref(j);
    if (rc == -ENOMEM) nj_fail(rc, "jsonl: out of memory");
    return rc;
}

static int jsonl_flush(parser *p) { (void)p; return 0; }
static void jsonl_destroy(parser *p) {
    jsonl_parser *J = (jsonl_parser *)p;
    for (int i = 0; i < J->n; i++) { nj_free(J->m[i].src); json_decref(J->m[i].constant); }
    json_decref(J->kind_map);
}
static const parser_vt jsonl_vt = {"jsonl", jsonl_feed, jsonl_flush, jsonl_destroy};

parser *parse_jsonl_new(const parser_opts *o, int *err) {
    jsonl_parser *J = nj_calloc(1, sizeof *J);
    if (!J) { if (err) *err = nj_fail(-ENOMEM, "jsonl: out of memory"); return NULL; }
    J->base.vt = &jsonl_vt;
    int rc = load_mapping(J, o);
    if (rc) {
        jsonl_destroy(&J->base);
        nj_free(J);
        if (err) *err = rc;
        return NULL;
    }
    return &J->base;
}
