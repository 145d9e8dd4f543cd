#!/usr/bin/env bash
# test_eval_set — the shipped evaluation set and the knowledge base keep
# their contract (tests/analyst/check_eval_set.py: schema, labels, ATT&CK id
# forms, no duplicates, no command shared between them, no near duplicate,
# nothing copied from the development set); --self-test first proves that
# every check can fail.  Prints "N passed, M failed" last.
cd "$(dirname "$0")/../.." || exit 1
pass=0; fail=0
if python3 tests/analyst/check_eval_set.py --self-test; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
if python3 tests/analyst/check_eval_set.py; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
