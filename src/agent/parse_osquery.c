#include "parse_internal.h"
#include "util.h"
parser *parse_osquery_new(int *err) { if (err) *err = nj_fail(-EINVAL, "osquery: not yet"); return NULL; }
