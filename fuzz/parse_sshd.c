/*
 * fuzz/parse_sshd — libFuzzer target for the sshd parser (src/agent/parse_sshd.c);
 * properties in fuzz/parse_common.h.  Built and run by scripts/fuzz.
 */
#define FUZZ_FORMAT "sshd"
#include "parse_common.h"
