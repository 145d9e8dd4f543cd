/* cli_models — `nightjar models`.  Placeholder until its issue lands: it says so
 * and fails, it does not pretend. */
#include <stdio.h>
#include "cli.h"

int cmd_models(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "nightjar models: not implemented yet\n");
    return 1;
}
