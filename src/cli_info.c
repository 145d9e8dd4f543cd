/* cli_info — `nightjar info`.  Placeholder until its issue lands: it says so
 * and fails, it does not pretend. */
#include <stdio.h>
#include "cli.h"

int cmd_info(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "nightjar info: not implemented yet\n");
    return 1;
}
