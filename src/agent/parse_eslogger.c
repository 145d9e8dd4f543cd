#include "parse_internal.h"
#include "util.h"
parser *parse_eslogger_new(int *err) { if (err) *err = nj_fail(-EINVAL, "eslogger: not yet"); return NULL; }
