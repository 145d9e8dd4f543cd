#!/usr/bin/env bash
# test_sched — the scheduler of `nightjar serve` against the real binary
# ($NJ_BIN, default build/nightjar) and the SmolLM2 test model: order by
# class and deadline, bounded starvation, 503 + Retry-After, preemption with
# identical greedy output, cancellation on hang-up, /health during a
# prefill; see tests/serve/test_sched.py.  Prints "N passed, M failed" last.
cd "$(dirname "$0")/../.." || exit 1
if ! command -v python3 >/dev/null; then
    echo "scheduler tests need python3 (skipped)"
    echo "0 passed, 0 failed"
    exit 0
fi
exec python3 tests/serve/test_sched.py
