/*
 * fuzz/parse_auditd — libFuzzer target for the auditd parser (src/agent/parse_auditd.c);
 * properties in fuzz/parse_common.h.  Built and run by scripts/fuzz.
 */
#define FUZZ_FORMAT "auditd"
#include "parse_common.h"
