/*
 * main — `nightjar COMMAND [ARGS]`: dispatch to the subcommands in cli_*.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"run",      cmd_run,      "generate text from a prompt"},
    {"info",     cmd_info,     "describe a GGUF model (or --cpu: the kernels chosen)"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"serve",    cmd_serve,    "run the always-on HTTP service"},
    {"pull",     cmd_pull,     "download a model into the cache"},
    {"models",   cmd_models,   "list cached models"},
    {"perf",     cmd_perf,     "measure prompt and generation speed"},
    {"analyze",  cmd_analyze,  "judge security events (or command lines): verdict JSON lines"},
    {"eval",     cmd_eval,     "measure verdict quality on a labelled set"},
    {"watch",    cmd_watch,    "the agent: follow event sources, spool, judge, deliver verdicts"},
    {"quantize", cmd_quantize, "write a model file with another tensor type (or dequantize)"},
    {"perplexity", cmd_perplexity, "perplexity over a text; KL and top-1 against a base model"},
    {"bench",    cmd_bench,    "sweep models, threads, nice, context, mode over events; report"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: nightjar COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n`nightjar COMMAND --help` for a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) { usage(stdout); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "nightjar: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
