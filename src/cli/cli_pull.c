/* cli_pull — `nightjar pull NAME|URL [--sha256 HEX] [--dir DIR] [--name FILE]
 * [--retries N] [--quiet]`: fetch a model into the cache (see pull.h).
 * Prints the final path on stdout, everything else on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pull.h"
#include "util.h"

static void usage(FILE *out) {
    fprintf(out,
        "usage: nightjar pull NAME|URL [--sha256 HEX] [--dir DIR] [--name FILE] [--retries N] [--quiet]\n"
        "\n"
        "sources:\n"
        "  https://host/path/model.gguf   a direct URL\n"
        "  hf:OWNER/REPO/FILE.gguf        a file in a Hugging Face repo (main branch)\n"
        "  OWNER/REPO:FILE.gguf           the same\n");
    for (const modelcache_builtin *b = modelcache_builtins; b->name; b++)
        fprintf(out, "  %-30s %s\n", b->name, b->desc);
    for (const nj_pull_parts *m = pull_parts_models; m->name; m++)
        fprintf(out, "  %-30s %s\n", m->name, m->desc);
    fprintf(out,
        "\n"
        "  --sha256 HEX   expected SHA-256; a mismatch deletes the download and fails\n"
        "  --dir DIR      destination (default %s)\n"
        "  --name FILE    file name in DIR (default: from the source)\n"
        "  --retries N    attempts after an interrupted transfer (default 3;\n"
        "                 for a multi-part model: per part)\n"
        "  --quiet        no progress output\n"
        "An interrupted download leaves FILE.part; running pull again resumes it.\n",
        modelcache_dir());
}

int cmd_pull(int argc, char **argv) {
    nj_pull_opts o = {.retries = 3, .retry_delay_ms = 1000};
    const char *ref = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) { o.progress = NJ_PULL_QUIET; continue; }
        if (!strcmp(a, "--sha256") || !strcmp(a, "--dir") || !strcmp(a, "--name") ||
            !strcmp(a, "--retries")) {
            if (i + 1 >= argc) { fprintf(stderr, "nightjar pull: %s needs a value\n", a); return 2; }
            const char *v = argv[++i];
            if (!strcmp(a, "--sha256")) o.sha256 = v;
            else if (!strcmp(a, "--dir")) o.dir = v;
            else if (!strcmp(a, "--name")) o.file = v;
            else {
                char *end;
                long n = strtol(v, &end, 10);
                if (*end || n < 0 || n > 100) { fprintf(stderr, "nightjar pull: bad --retries '%s'\n", v); return 2; }
                o.retries = (int)n;
            }
            continue;
        }
        if (a[0] == '-') { fprintf(stderr, "nightjar pull: unknown option %s\n", a); usage(stderr); return 2; }
        if (ref) { fprintf(stderr, "nightjar pull: one model at a time\n"); return 2; }
        ref = a;
    }
    if (!ref) { usage(stderr); return 2; }

    nj_pull_result r;
    int rc = pull(ref, &o, &r);
    if (rc) {
        const char *msg = nj_last_error();
        fprintf(stderr, "nightjar pull: %s\n", *msg ? msg : nj_strerror(rc));
        return 1;
    }
    if (o.progress != NJ_PULL_QUIET) {
        const char *ver = r.verified ? " (verified)" : " (not verified: no --sha256 given)";
        if (r.already)
            fprintf(stderr, "pull: %s is already in the cache%s%s%s\n", r.path,
                    r.sha256[0] ? ", sha256 " : "", r.sha256, r.verified ? " (verified)" : "");
        else if (r.resumed_from)
            fprintf(stderr, "pull: saved %s (%llu bytes, resumed from byte %llu), sha256 %s%s\n",
                    r.path, (unsigned long long)r.size, (unsigned long long)r.resumed_from,
                    r.sha256, ver);
        else
            fprintf(stderr, "pull: saved %s (%llu bytes), sha256 %s%s\n", r.path,
                    (unsigned long long)r.size, r.sha256, ver);
    }
    printf("%s\n", r.path);
    return 0;
}
