#!/usr/bin/env bash
# test_crash_model — the small variant of the crash test through the model
# path (SmolLM2, rules, syslog and webhook sinks): 4 SIGKILLs over 60
# events (tests/agent/crash_model.py; `make crash-test` runs 20 over 1,000).
# Prints "N passed, M failed" last.
cd "$(dirname "$0")/../.." || exit 1
exec python3 tests/agent/crash_model.py --kills 4 --events 60 --distinct 20
