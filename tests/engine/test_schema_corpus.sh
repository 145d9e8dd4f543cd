#!/usr/bin/env bash
# test_schema_corpus — every schema of tests/data/schemas compiles or is
# refused naming its keyword, and documents generated under each at
# temperature 1 validate with python3 jsonschema (tests/engine/schema_corpus.py).
# make test runs 1 document of at most 32 tokens per schema (RUNS, MAX_TOKENS);
# `make schema-corpus` runs 20.
# Prints "N passed, M failed" last (one check per schema).
cd "$(dirname "$0")/../.." || exit 1
out=$(RUNS=${RUNS:-1} MAX_TOKENS=${MAX_TOKENS:-32} NJ_BIN=${NJ_BIN:-build/nightjar} python3 tests/engine/schema_corpus.py 2>&1); rc=$?
printf '%s\n' "$out" | tail -25
total=$(ls tests/data/schemas/*.json | wc -l)
bad=$(printf '%s\n' "$out" | grep '^FAIL ' | sed 's/^FAIL \([^:]*\):.*/\1/' | sort -u | wc -l)
if printf '%s\n' "$out" | grep -q 'skipped'; then echo "0 passed, 0 failed"; exit 0; fi
[ $rc -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
echo "$((total - bad)) passed, $bad failed"
[ "$bad" -eq 0 ]
