/*
 * cli — the `nightjar` subcommands.  main.c only dispatches; each command
 * lives in its own src/cli_<name>.c and returns the process exit code
 * (0 ok, 1 error with a message on stderr, 2 usage error).  Only main.c may
 * call exit().
 */
#ifndef NJ_CLI_H
#define NJ_CLI_H

int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_perf(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_watch(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* The model, session and analyst behind `analyze` and `eval`
 * (cli_analyze.c): defaults, the shared options, open and close. */
#include <stdbool.h>
#include "analyst.h"

typedef struct cli_judge {
    const char  *model_arg;
    bool         no_model, verbose;
    int          threads, ctx;
    analyst_opts opts;
    char         model_name[1024];
    nj_model    *model;
    nj_session  *session;
    analyst     *analyst;
} cli_judge;

void cli_judge_defaults(cli_judge *j);
int  cli_judge_option(cli_judge *j, int argc, char **argv, int *i);
int  cli_judge_open(cli_judge *j);   /* 0, or an exit code after printing why */
void cli_judge_close(cli_judge *j);

#endif
