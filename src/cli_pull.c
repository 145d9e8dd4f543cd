/* cli_pull — `nightjar pull`.  Placeholder until its issue lands: it says so
 * and fails, it does not pretend. */
#include <stdio.h>
#include "cli.h"

int cmd_pull(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "nightjar pull: not implemented yet\n");
    return 1;
}
