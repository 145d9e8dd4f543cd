/*
 * fuzz/parse_sysmon — libFuzzer target for the sysmon parser (src/agent/parse_sysmon.c);
 * properties in fuzz/parse_common.h.  Built and run by scripts/fuzz.
 */
#define FUZZ_FORMAT "sysmon"
#include "parse_common.h"
