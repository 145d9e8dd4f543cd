"""test_bench — a tiny `nightjar bench` sweep on a random-weight model.

Checks (each one a test; the last line says "N passed, M failed"):
  - the sweep ran every configuration (model x threads x mode) and wrote
    results.jsonl, results.json, results.csv, report.md and four SVGs;
  - every row: p50 <= p95 <= p99, mean within [min, max] bounds given by
    p50..p99 spread, RSS > 0, events == the workload's size, CPU per event
    > 0, accuracy in [0, 1], idle CPU >= 0;
  - the CSV, the JSON and the Markdown table hold the same rows and
    numbers; the budget column agrees with the budgets; "best" is the
    lowest p95 among rows within budget;
  - a rerun measures nothing again (resume) and a rerun with one more
    thread count measures only the new configurations;
  - every SVG is well-formed XML with the chart's polyline / circles /
    bars, and renders to a PNG with rsvg-convert when it is installed.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NJ = os.environ.get("NJ_BIN", os.path.join(ROOT, "build", "nightjar"))
O = os.environ.get("O", "build")
MKMODEL = os.path.join(ROOT, O, "tools", "mkmodel")
MODELS = os.environ.get("NIGHTJAR_TEST_MODEL_DIR", os.path.expanduser("~/.cache/nightjar/models"))
TOK = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))


def run(args):
    p = subprocess.run([NJ, "bench"] + args, capture_output=True, text=True, timeout=1200)
    return p.returncode, p.stdout, p.stderr


def main():
    if not os.path.exists(TOK) or not os.path.exists(MKMODEL):
        print("bench test needs %s and %s (skipped)" % (TOK, MKMODEL))
        print("0 passed, 0 failed")
        return 0
    tmp = tempfile.mkdtemp(prefix="nj-bench-")
    try:
        model = os.path.join(tmp, "tiny.gguf")
        subprocess.run([MKMODEL, "--preset", "tiny-llama", "--type", "Q8_0", "--tokenizer", TOK, "-o", model],
                       check=True, capture_output=True)
        work = os.path.join(tmp, "w.jsonl")
        with open(os.path.join(ROOT, "eval", "commands.jsonl")) as f:
            lines = f.readlines()[::97][:5]
        with open(work, "w") as f:
            f.writelines(lines)
        out = os.path.join(tmp, "out")
        base = ["-m", model, "-w", work, "--idle", "0.2", "-o", out, "--budget"]
        rc, so, se = run(base + ["-t", "1,2", "--mode", "label,full"])
        check("sweep exit", rc == 0, se[-500:])
        for f in ["results.jsonl", "results.json", "results.csv", "report.md", "latency-threads.svg",
                  "quality-memory.svg", "latency-dist.svg", "frontier.svg"]:
            check("file " + f, os.path.getsize(os.path.join(out, f)) > 0)
        rep = json.load(open(os.path.join(out, "results.json")))
        rows = rep["rows"]
        keys = sorted((r["threads"], r["mode"]) for r in rows)
        check("every configuration", keys == [(1, "full"), (1, "label"), (2, "full"), (2, "label")], str(keys))
        for r in rows:
            tag = "%s t%d" % (r["mode"], r["threads"])
            check("ok " + tag, r["ok"], r.get("error", ""))
            check("p50<=p95<=p99 " + tag, 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"], str(r))
            check("rss " + tag, r["rss_mb"] > 0)
            check("events " + tag, r["events"] == len(lines), str(r["events"]))
            check("cpu " + tag, r["cpu_s_per_event"] > 0)
            check("accuracy " + tag, 0 <= r["accuracy"] <= 1)
            check("idle " + tag, r["idle_cpu_pct"] >= 0)
            within = r["rss_mb"] <= 6 * 1024 and r["p95_ms"] <= 2500 and r["idle_cpu_pct"] < 2
            check("budget flag " + tag, r["in_budget"] == within)
        inb = [i for i, r in enumerate(rows) if r["in_budget"]]
        want = min(inb, key=lambda i: (rows[i]["p95_ms"], -rows[i]["accuracy"])) if inb else -1
        check("best", rep["best"] == want, "%s vs %s" % (rep["best"], want))
        crows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
        check("csv rows", len(crows) == len(rows))
        for c, r in zip(crows, rows):
            check("csv p95", abs(float(c["p95_ms"]) - r["p95_ms"]) < 1e-2)
            check("csv rss", abs(float(c["rss_mb"]) - r["rss_mb"]) < 0.1)
        md = open(os.path.join(out, "report.md")).read()
        check("md rows", md.count("\n| tiny") == len(rows), md)
        for r in rows:
            check("md p95", "| %.0f |" % r["p95_ms"] in md)
        for svg in ["latency-threads.svg", "quality-memory.svg", "latency-dist.svg", "frontier.svg"]:
            path = os.path.join(out, svg)
            try:
                root = ET.parse(path).getroot()
                ok = True
            except ET.ParseError as e:
                ok, root = False, None
                check("svg xml " + svg, False, str(e))
            if ok:
                marks = [e for e in root.iter() if e.tag.endswith(("polyline", "circle", "rect"))]
                check("svg marks " + svg, len(marks) >= len(rows))
            if shutil.which("rsvg-convert"):
                png = path[:-4] + ".png"
                p = subprocess.run(["rsvg-convert", "-o", png, path], capture_output=True)
                check("svg renders " + svg, p.returncode == 0 and os.path.getsize(png) > 1000, p.stderr)
        # resume: nothing new, then only the new thread count
        rc, so, se = run(base + ["-t", "1,2", "--mode", "label,full"])
        check("resume exit", rc == 0, se[-300:])
        check("resume skips", "4 of 4 configurations were already measured" in se, se[-300:])
        rc, so, se = run(base + ["-t", "1,3", "--mode", "label"])
        n = sum(1 for _ in open(os.path.join(out, "results.jsonl")))
        check("resume adds one", rc == 0 and n == 5, "%d rows" % n)
        # bad input: a missing workload is an error row, the sweep goes on
        rc, so, se = run(["-m", model, "-w", os.path.join(tmp, "none.jsonl"), "--idle", "0", "-o",
                          os.path.join(tmp, "bad")])
        bad = json.load(open(os.path.join(tmp, "bad", "results.json")))["rows"]
        check("failed row", len(bad) == 1 and not bad[0]["ok"] and bad[0]["error"], str(bad))
        rc, so, se = run(["-t", "x", "-m", model])
        check("bad option", rc == 2)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
