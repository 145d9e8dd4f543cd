#!/usr/bin/env bash
# test_run — `nightjar run --chat --chat-template NAME` on SmolLM2 (skipped
# when it is not in the model cache): naming the model's own template
# (ChatML) gives the same prompt and the same greedy tokens as the default,
# another template (llama3) another prompt, and an unknown name fails with
# the name and the known ones.  Prints "N passed, M failed" last.
cd "$(dirname "$0")/../.." || exit 1
BIN=${NJ_BIN:-build/nightjar}
M=${NIGHTJAR_TEST_MODEL_DIR:-$HOME/.cache/nightjar/models}/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$M" ]; then echo "SmolLM2 not in the model cache (skipped)"; echo "0 passed, 0 failed"; exit 0; fi
pass=0; fail=0
check() { local what=$1; shift; if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi; }
run() { "$BIN" run -m "$M" --chat -p "Say hi" -n 6 --temp 0 --ids -t 1 -v "$@" 2>&1; }
def=$(run); own=$(run --chat-template chatml); other=$(run --chat-template llama3)
ptok() { grep -o 'prompt [0-9]* tok' <<<"$1"; }
ids() { head -1 <<<"$1" | sed 's/load .*//'; }
check "default and chatml: same prompt ($(ptok "$def") / $(ptok "$own"))" [ "$(ptok "$def")" = "$(ptok "$own")" ]
same_ids=0; [ -n "$(ids "$def")" ] && [ "$(ids "$def")" = "$(ids "$own")" ] && same_ids=1
check "default and chatml: same tokens" [ $same_ids -eq 1 ]
other_prompt=0; [ -n "$(ptok "$other")" ] && [ "$(ptok "$other")" != "$(ptok "$def")" ] && other_prompt=1
check "llama3: another prompt ($(ptok "$other"))" [ $other_prompt -eq 1 ]
bad=$("$BIN" run -m "$M" --chat --chat-template nosuch -p hi -n 1 2>&1); rc=$?
named=0; [ $rc -ne 0 ] && grep -q "unknown chat template 'nosuch' (known: chatml" <<<"$bad" && named=1
check "unknown template: exit $rc, message names it" [ $named -eq 1 ]
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
