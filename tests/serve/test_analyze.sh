#!/usr/bin/env bash
# test_analyze — service tests of POST /v1/analyze and response_format
# against the real binary ($NJ_BIN, default build/nightjar) and the SmolLM2
# test model; see tests/serve/test_analyze.py.  Prints "N passed, M failed" last.
cd "$(dirname "$0")/../.." || exit 1
if ! command -v python3 >/dev/null || ! command -v curl >/dev/null; then
    echo "analyze service tests need python3 and curl (skipped)"
    echo "0 passed, 0 failed"
    exit 0
fi
exec python3 tests/serve/test_analyze.py
