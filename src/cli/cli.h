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

#endif
