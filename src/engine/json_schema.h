/*
 * json_schema — JSON Schema (a documented subset) to grammar (grammar.h).
 *
 * What a compiled schema generates.  Documents that are valid under the
 * schema, written in one canonical layout: no whitespace except exactly one
 * space after every ':' and ',' ({"a": 1, "b": [1, 2]}), no newlines,
 * properties in schema order, strings with raw UTF-8 and only the escapes
 * \" \\ \b \f \n \r \t and \u00XX for other control characters (a \uXXXX
 * that is not a surrogate is also accepted in free-text strings).  Because
 * whitespace is fixed, a document cannot be padded with spaces, and the
 * layout makes the structural text between values a forced continuation.
 * The grammar may generate a subset of the valid documents (a sound
 * approximation); it never generates an invalid one.
 *
 * Supported keywords.
 *   type (string or list), enum, const (any JSON values; with enum/const
 *     only "type" may appear beside them)
 *   object: properties (schema order), required, additionalProperties
 *     false | true | absent (no extra keys are generated: allowed, never
 *     required) | a schema when there are no properties (a map with free
 *     string keys)
 *   array: items (a schema or false; absent = any value), prefixItems
 *     (tuples; items then applies after them), minItems, maxItems,
 *     uniqueItems: false
 *   string: minLength, maxLength, pattern, format date | time | date-time |
 *     uuid | ipv4 (pattern excludes the length keywords; a format allows
 *     them when they do not cut into the format's own length range)
 *   integer: minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers
 *     or draft-4 booleans): exact, digit by digit; magnitudes below 10^15
 *   number: the same bounds, as a sound approximation: an integer part in
 *     range, then optionally a fraction of 1..6 digits (non-zero last digit)
 *     only where the whole interval (I, I+1) lies in range; no exponents
 *   boolean, null; anyOf; oneOf when its branches are provably disjoint
 *     (disjoint types, disjoint enum/const values, or a common required
 *     property with disjoint const/enum values); allOf with one schema
 *   $ref to a local JSON pointer ("#", "#/$defs/x", "#/definitions/x", ...),
 *     recursion expanded GRAM_REF_DEPTH times
 *   annotations ignored: title, description, $schema, $id, $comment,
 *     examples, default, deprecated, readOnly, writeOnly, $defs, definitions
 * Anything else is refused with NJ_EUNSUPPORTED and a message naming the
 * keyword and its JSON pointer: "unsupported JSON-schema keyword 'x' at /p".
 *
 * Pattern subset (ECMA/Python syntax, applied to the decoded string, as
 * re.search): literals (UTF-8 included), escapes \. \\ \/ ... \n \t \r \f
 * \v \xHH \uHHHH, \d \w \s (ASCII members) and \D \W \S (ASCII complement),
 * classes [..] with ASCII ranges and negation, '.', groups ( ), (?: ),
 * (?P<n> ), alternation, ? * + {m} {m,} {m,n} (lazy '?' accepted), and
 * ^ / $ at the start / end of top-level alternatives; an unanchored side
 * matches any text there.  Refused: backreferences, lookaround, \b \B,
 * inline flags, POSIX classes, non-ASCII ranges, possessive quantifiers.
 * Formats as generated: date YYYY-MM-DD with years 1000-9999 and no
 * 29 February; time HH:MM:SS[.ffffff](Z|+HH:MM|-HH:MM) without leap
 * seconds; date-time = date 'T' time; uuid lowercase 8-4-4-4-12 hex; ipv4
 * dotted quad without leading zeros.
 *
 * Free-form JSON (response_format json_object, items/values without a
 * schema): objects, arrays, strings, numbers, true/false/null nested at
 * most JS_ANY_DEPTH levels.
 *
 * Ownership: all functions borrow their inputs; the grams returned are
 * owned by the caller (gram_free).
 */
#ifndef NJ_JSON_SCHEMA_H
#define NJ_JSON_SCHEMA_H

#include <stddef.h>

#include "grammar.h"

#define JS_ANY_DEPTH 5       /* nesting of free-form JSON values */
#define JS_MAX_REPEAT 4096   /* largest maxLength / maxItems / {m,n} unrolled */

/* Compile schema text (JSON) into a grammar.  NULL with *err: NJ_EFORMAT
 * (not JSON / not a schema), NJ_EUNSUPPORTED (message names the keyword),
 * NJ_ETOOBIG, -ENOMEM. */
gram *json_schema_compile(const char *text, size_t len, int *err);
/* Any JSON object (free-form values inside). */
gram *json_object_grammar(int *err);
/* A grammar for the JSON string (quotes included) whose decoded value
 * matches `pattern` (the subset above): for tests and tools. */
gram *json_pattern_grammar(const char *pattern, int *err);

#endif
