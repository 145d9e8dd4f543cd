/*
 * fuzz/parse_osquery — libFuzzer target for the osquery parser (src/agent/parse_osquery.c);
 * properties in fuzz/parse_common.h.  Built and run by scripts/fuzz.
 */
#define FUZZ_FORMAT "osquery"
#include "parse_common.h"
