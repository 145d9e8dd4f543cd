/* cli_tokenize — `nightjar tokenize`.  Placeholder until its issue lands: it says so
 * and fails, it does not pretend. */
#include <stdio.h>
#include "cli.h"

int cmd_tokenize(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "nightjar tokenize: not implemented yet\n");
    return 1;
}
