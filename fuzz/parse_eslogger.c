/*
 * fuzz/parse_eslogger — libFuzzer target for the eslogger parser (src/agent/parse_eslogger.c);
 * properties in fuzz/parse_common.h.  Built and run by scripts/fuzz.
 */
#define FUZZ_FORMAT "eslogger"
#include "parse_common.h"
