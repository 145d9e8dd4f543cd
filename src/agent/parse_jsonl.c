#include "parse_internal.h"
#include "util.h"
parser *parse_jsonl_new(const parser_opts *o, int *err) { (void)o; if (err) *err = nj_fail(-EINVAL, "jsonl: not yet"); return NULL; }
