#!/usr/bin/env bash
# test_bench — `nightjar bench` end to end on a random-weight model (with
# SmolLM2's tokenizer and chat template, so the analyst can prompt it): a
# tiny sweep, then tests/cli/test_bench.py checks the report's structure
# and numbers, the resume and the charts.  Prints "N passed, M failed" last.
cd "$(dirname "$0")/../.." || exit 1
if ! command -v python3 >/dev/null; then
    echo "bench tests need python3 (skipped)"
    echo "0 passed, 0 failed"
    exit 0
fi
exec python3 tests/cli/test_bench.py
