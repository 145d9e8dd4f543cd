/* cli_quantize — `nightjar quantize`.  Placeholder until its issue lands: it says so
 * and fails, it does not pretend. */
#include <stdio.h>
#include "cli.h"

int cmd_quantize(int argc, char **argv) {
    (void)argc; (void)argv;
    fprintf(stderr, "nightjar quantize: not implemented yet\n");
    return 1;
}
