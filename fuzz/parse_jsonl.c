/*
 * fuzz/parse_jsonl — libFuzzer target for the JSON-lines parser with a
 * mapping that touches every conversion (string, integer, boolean, list,
 * kind_map, defaults, automatic time); properties in fuzz/parse_common.h.
 */
#define FUZZ_FORMAT "jsonl"
#define FUZZ_MAPPING "{\"fields\":{\"time\":\"t\",\"kind\":\"k\",\"id\":\"i\",\"host\":\"h\",\"process.pid\":\"p.pid\"," \
    "\"process.argv\":\"p.args\",\"process.cmdline\":\"p.cmd\",\"process.platform_binary\":\"p.pb\"," \
    "\"network.dst_port\":\"n.0\",\"user.name\":\"u\"},\"defaults\":{\"kind\":\"other\"}," \
    "\"kind_map\":{\"start\":\"exec\"},\"time_format\":\"auto\"}"
#include "parse_common.h"
