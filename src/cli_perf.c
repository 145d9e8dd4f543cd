/* cli_perf — `nightjar perf`.  Placeholder until its issue lands: it says so
 * and fails, it does not pretend. */
#include <stdio.h>
#include "cli.h"

int cmd_perf(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "nightjar perf: not implemented yet\n");
    return 1;
}
