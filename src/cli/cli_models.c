/* cli_models — `nightjar models [--dir DIR]`: the cached models, one line
 * each: file, size, architecture, parameters, quantization, built-in name.
 * Files that do not parse are listed as "invalid: <reason>". */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "modelcache.h"
#include "util.h"

int cmd_models(int argc, char **argv) {
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: nightjar models [--dir DIR]\n"
                   "Lists the GGUF files in DIR (default %s).\n", modelcache_dir());
            return 0;
        }
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) { dir = argv[++i]; continue; }
        fprintf(stderr, "nightjar models: unknown argument %s\n", argv[i]);
        return 2;
    }
    if (!dir) dir = modelcache_dir();
    modelcache_entry *v;
    size_t n;
    int rc = modelcache_list(dir, &v, &n);
    if (rc) {
        fprintf(stderr, "nightjar models: %s\n", *nj_last_error() ? nj_last_error() : nj_strerror(rc));
        return 1;
    }
    if (n == 0) {
        printf("no models in %s (try `nightjar pull %s`)\n", dir, MODELCACHE_DEFAULT);
        nj_free(v);
        return 0;
    }
    printf("%s\n", dir);
    printf("%-44s %10s  %-10s %7s  %-8s %s\n", "FILE", "SIZE", "ARCH", "PARAMS", "QUANT", "NAME");
    for (size_t i = 0; i < n; i++) {
        const modelcache_entry *e = &v[i];
        char size[32];
        snprintf(size, sizeof size, "%.1f MB", e->size / 1e6);
        if (e->status) {
            printf("%-44s %10s  invalid: %s\n", e->file, size, e->error);
            continue;
        }
        char params[32];
        modelcache_fmt_params(e->n_params, params, sizeof params);
        const char *alias = "";
        for (const modelcache_builtin *b = modelcache_builtins; b->name; b++)
            if (!strcmp(b->file, e->file)) alias = b->name;
        printf("%-44s %10s  %-10s %7s  %-8s %s%s%s\n", e->file, size, e->arch, params, e->quant,
               alias, *alias && *e->name ? " " : "", *e->name ? e->name : "");
    }
    nj_free(v);
    return 0;
}
