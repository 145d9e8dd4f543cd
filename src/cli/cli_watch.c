/*
 * cli_watch — `nightjar watch`: the agent.  Follows event sources, keeps
 * every event in the spool before judging it, judges with the analyst (the
 * model in this process, or a remote backend), delivers verdicts to the sinks at least once
 * (src/agent/watch.h has the durable order).  SIGTERM and SIGINT stop it
 * between steps; whatever was committed is resumed by the next run.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyst.h"
#include "cli.h"
#include "platform.h"
#include "util.h"
#include "watch.h"

#define MAX_LIST 32

static void usage(FILE *out) {
    fprintf(out,
        "usage: nightjar watch --source KIND:PATH [--source ...] [--sink SPEC ...] [options]\n"
        "  --source KIND:PATH  eslogger|auditd|osquery|sysmon|sshd|jsonl|cmdline, PATH or - (stdin)\n"
        "  --sink SPEC         jsonl:PATH[,keep=N,max_mb=N] | syslog:unix:/dev/log | syslog:udp:HOST:PORT\n"
        "                      | syslog:tcp:HOST:PORT | webhook:URL[,preset=plain|splunk|elastic][,token=T]\n"
        "                      (docs/agent.md); none: verdicts stay in the spool\n"
        "  --spool PATH        the durable spool (default <cache dir>/spool.db)\n"
        "  --once              stop at the end of the inputs (after judging and delivering)\n"
        "  -m MODEL | --no-model, --rules PATH, --no-retrieval, --label-only, --full: as for analyze\n"
        "  --backend SPEC      judge on another server instead of a local model (rules still run here):\n"
        "                      nightjar+http://HOST:PORT (its /v1/analyze) | openai+http://HOST:PORT[/v1]\n"
        "                      (any OpenAI-compatible /v1/chat/completions); also +https, +unix:/PATH\n"
        "  --backend-token T --backend-model NAME --backend-timeout MS: as for analyze\n"
        "  -t THREADS -c CTX\n");
}

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

/* The analyst over a batch (watch_judge_fn): each verdict with its event
 * under "event", as text. */
static int judge(void *ctx, const json_t *const *evs, size_t n, char **out) {
    cli_judge *j = ctx;
    json_t **v = nj_calloc(n, sizeof *v);
    if (!v) return -ENOMEM;
    int rc = analyst_judge_batch(j->analyst, j->model, j->session, evs, n, v);
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
        if (!v[i]) continue;
        json_object_set(v[i], "event", (json_t *)evs[i]);
        out[i] = json_dumps(v[i], JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        json_decref(v[i]);
        if (!out[i] && !rc) rc = nj_fail(-ENOMEM, "out of memory writing a verdict");
    }
    nj_free(v);
    return rc;
}

int cmd_watch(int argc, char **argv) {
    cli_judge j;
    cli_judge_defaults(&j);
    const char *sources[MAX_LIST], *sinks[MAX_LIST];
    int n_sources = 0, n_sinks = 0;
    const char *spool_path = NULL;
    bool once = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int k = cli_judge_option(&j, argc, argv, &i);
        if (k < 0) { fprintf(stderr, "nightjar watch: bad value for %s\n", a); return 2; }
        if (k > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--source") && i + 1 < argc && n_sources < MAX_LIST) sources[n_sources++] = argv[++i];
        else if (!strcmp(a, "--sink") && i + 1 < argc && n_sinks < MAX_LIST) sinks[n_sinks++] = argv[++i];
        else if (!strcmp(a, "--spool") && i + 1 < argc) spool_path = argv[++i];
        else if (!strcmp(a, "--once")) once = true;
        else { fprintf(stderr, "nightjar watch: unknown option '%s'\n", a); usage(stderr); return 2; }
    }
    if (n_sources == 0) { usage(stderr); return 2; }
    char def[1200];
    if (!spool_path) {
        snprintf(def, sizeof def, "%s/spool.db", platform_cache_dir());
        spool_path = def;
    }
    int rc = cli_judge_open(&j);
    if (rc) return rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;   /* no SA_RESTART: the wait returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    watch_opts o = {.spool_path = spool_path, .sources = sources, .n_sources = n_sources, .sinks = sinks,
                    .n_sinks = n_sinks, .judge = judge, .judge_ctx = &j, .once = once, .stop = &stop_flag,
                    /* a local model: commit each verdict as soon as it is given; a backend:
                     * batches (a nightjar backend takes them in one request) */
                    .judge_batch = j.opts.backend ? 16 : 1};
    rc = watch_run(&o);
    if (rc) fprintf(stderr, "nightjar watch: %s (%s)\n", nj_last_error(), nj_strerror(rc));
    cli_judge_close(&j);
    return rc ? 1 : 0;
}
