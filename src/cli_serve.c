/* cli_serve — `nightjar serve`.  Placeholder until its issue lands: it says so
 * and fails, it does not pretend. */
#include <stdio.h>
#include "cli.h"

int cmd_serve(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "nightjar serve: not implemented yet\n");
    return 1;
}
