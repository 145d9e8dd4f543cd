/*
 * cli_serve — `nightjar serve -m MODEL.gguf [options]`: build the
 * configuration (config.c), start the server (server.c) and wait for a
 * signal.  Exit codes: 0 after SIGTERM/SIGINT, 1 when the server cannot
 * start (message on stderr), 2 for usage errors.
 */
#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "server.h"
#include "util.h"

extern char **environ;

int cmd_serve(int argc, char **argv) {
    nj_config cfg;
    int rc = config_load(&cfg, argc, argv, environ);
    if (rc == 1) {
        config_usage(stdout);
        config_free(&cfg);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "nightjar serve: %s\n", nj_last_error());
        config_free(&cfg);
        return 2;
    }
    nj_log_set_level(cfg.log_level);
    for (int k = 0; k < NJ_CFG_NKEYS; k++) {
        char v[128];
        NJ_DEBUG("config: %s = %s (%s)", config_key_name(k), config_value_str(&cfg, k, v, sizeof v),
                 config_source_name(cfg.source[k]));
    }
    if (cfg.config_path) NJ_INFO("config file %s", cfg.config_path);

    nj_server *s = server_new(&cfg, argc, argv, environ, &rc);
    config_free(&cfg);
    if (!s) {
        fprintf(stderr, "nightjar serve: %s\n", nj_last_error());
        return 1;
    }
    rc = server_run(s);
    server_free(s);
    return rc;
}
