#!/usr/bin/env bash
# test_server — acceptance tests of `nightjar serve` against the real binary
# ($NJ_BIN, default build/nightjar) and the SmolLM2 test model; see
# tests/serve/test_server.py.  Prints "N passed, M failed" last.
cd "$(dirname "$0")/../.." || exit 1
if ! command -v python3 >/dev/null || ! command -v curl >/dev/null; then
    echo "server tests need python3 and curl (skipped)"
    echo "0 passed, 0 failed"
    exit 0
fi
exec python3 tests/serve/test_server.py
