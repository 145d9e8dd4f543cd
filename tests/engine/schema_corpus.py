#!/usr/bin/env python3
"""schema_corpus — generate under every schema of tests/data/schemas and
validate what comes out.

For each schema, `nightjar run --schema` generates RUNS documents (default
20) at temperature 1 with no other truncation (top-k, top-p, min-p off) and
seeds SEED, SEED+1, ... on the SmolLM2 test model, at most MAX_TOKENS
(default 48) tokens each; a document that reaches the budget is finished
with the grammar's shortest completion (counted and reported).  Every
document must parse as JSON and validate under the schema with python3
`jsonschema` (format checks on).  Schemas listed in
tests/data/schema_refusals.json must be refused (exit status 3) with a
message naming the keyword; every other schema must compile.

Environment: NJ_BIN (default build/nightjar), NIGHTJAR_TEST_MODEL_DIR
(default ~/.cache/nightjar/models), RUNS, MAX_TOKENS, SEED, THREADS, ONLY
(comma-separated substrings: keep the files whose name contains one).  Exits 0 when everything passed (or the
model is absent: reported as skipped), 1 otherwise.
"""
import glob
import json
import os
import subprocess
import sys
import time

try:
    import jsonschema
    from jsonschema.validators import validator_for
except ImportError:
    print("schema_corpus: python3 jsonschema missing (apt-get install python3-jsonschema)", file=sys.stderr)
    sys.exit(1)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("NJ_BIN", os.path.join(ROOT, "build", "nightjar"))
MODEL_DIR = os.environ.get("NIGHTJAR_TEST_MODEL_DIR", os.path.expanduser("~/.cache/nightjar/models"))
MODEL = os.path.join(MODEL_DIR, "SmolLM2-135M-Instruct.Q4_1.gguf")
RUNS = int(os.environ.get("RUNS", "20"))
MAX_TOKENS = int(os.environ.get("MAX_TOKENS", "48"))
SEED = int(os.environ.get("SEED", "1"))
THREADS = os.environ.get("THREADS", "2")
ONLY = os.environ.get("ONLY", "")


def main():
    if not os.path.exists(MODEL):
        print(f"schema_corpus: skipped ({MODEL} not found)")
        return 0
    if not os.access(BIN, os.X_OK):
        print(f"schema_corpus: {BIN} not built", file=sys.stderr)
        return 1
    with open(os.path.join(ROOT, "tests", "data", "schema_refusals.json")) as f:
        refusals = json.load(f)
    files = sorted(glob.glob(os.path.join(ROOT, "tests", "data", "schemas", "*.json")))
    keys = [k for k in ONLY.split(",") if k] or [""]
    files = [p for p in files if any(k in os.path.basename(p) for k in keys)]
    n_docs = n_valid = n_closed = n_refused = n_compiled = 0
    failures = []
    t0 = time.time()
    for path in files:
        name = os.path.basename(path)
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
        prompt = "Write one JSON value valid under this JSON schema: " + json.dumps(schema)[:600]
        cmd = [BIN, "run", "-m", MODEL, "--chat", "-p", prompt, "--schema", path, "--temp", "1",
               "--top-k", "0", "--top-p", "1", "--min-p", "0", "--seed", str(SEED), "--runs", str(RUNS),
               "-n", str(MAX_TOKENS), "-t", THREADS, "-c", "1024", "-v"]
        r = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace")
        if name in refusals:
            kw = refusals[name]
            if r.returncode == 3 and f"'{kw}" in r.stderr and "unsupported" in r.stderr:
                n_refused += 1
            else:
                failures.append(f"{name}: expected a refusal naming '{kw}', got exit {r.returncode}: {r.stderr.strip()[-300:]}")
            continue
        if r.returncode != 0:
            failures.append(f"{name}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
            continue
        n_compiled += 1
        for line in r.stderr.splitlines():
            if " closed at the budget" in line:
                try:
                    n_closed += int(line.split(" closed at the budget")[0].split(",")[-1].strip().split()[0])
                except (ValueError, IndexError):
                    pass
        docs = [l for l in r.stdout.split("\n") if l != ""]
        if len(docs) != RUNS:
            failures.append(f"{name}: {len(docs)} documents for {RUNS} runs")
        cls = validator_for(schema)
        v = cls(schema, format_checker=cls.FORMAT_CHECKER)
        for d in docs:
            n_docs += 1
            try:
                inst = json.loads(d)
            except json.JSONDecodeError as e:
                failures.append(f"{name}: not JSON ({e}): {d[:200]}")
                continue
            errs = list(v.iter_errors(inst))
            if errs:
                failures.append(f"{name}: invalid ({errs[0].message[:150]}): {d[:200]}")
            else:
                n_valid += 1
        print(f"  {name}: {len(docs)} documents, e.g. {docs[0][:100] if docs else ''}", flush=True)
    dt = time.time() - t0
    print(f"schema_corpus: {len(files)} schemas: {n_compiled} compiled, {n_refused} refused as expected; "
          f"{n_valid}/{n_docs} documents valid ({n_closed} finished by the budget closer); {dt:.0f} s")
    for f in failures:
        print("FAIL", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
