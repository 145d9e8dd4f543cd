#!/usr/bin/env python3
"""rules-split-eval — the rule pack's figures on the two halves of a labelled set.

The shipped evaluation set is the measuring stick of the rule pack, so the
pack must not be fitted to it.  It is split in two halves by the same hash
tools/fit-combiner.py uses (half A when sha256(cmd)[0] is even, else B):
half A may be read to learn which behaviours the pack misses; half B is
only measured.  This tool reads `nightjar eval --no-model --dump FILE`
output and prints, per half and for the whole set, the confusion matrix,
per-class precision/recall/F1 and macro-F1 of the rules-only verdicts.

  nightjar eval --no-model --data eval/commands.jsonl --dump D.jsonl
  tools/rules-split-eval.py D.jsonl                 # tables for A, B, all
  tools/rules-split-eval.py --misses A D.jsonl      # half A's misjudged lines
  tools/rules-split-eval.py --fp D.jsonl            # benign lines hit, by rule

--misses prints only half A (it refuses B: half B's lines are never shown).
--fp counts the benign-labelled lines any rule hit (a false suspicious or
malicious verdict), by rule id, for any labelled set (e.g. the development
set, whose lines are not printed either: only rule ids and counts), and the
recall of the suspicious and malicious lines (verdict not benign).
"""
import argparse
import collections
import hashlib
import json
import sys

LABELS = ["benign", "suspicious", "malicious"]


def half(row):
    """A or B, exactly as tools/fit-combiner.py splits."""
    key = row.get("cmd") or json.dumps(row.get("event"), sort_keys=True)
    return "A" if hashlib.sha256(key.encode()).digest()[0] % 2 == 0 else "B"


def load(paths):
    out = []
    for p in paths:
        with open(p) as fh:
            for line in fh:
                d = json.loads(line)
                out.append((d["row"], d["verdict"]))
    return out


def table(name, rows):
    conf = [[0] * 3 for _ in range(3)]
    for row, v in rows:
        conf[LABELS.index(row["label"])][LABELS.index(v["verdict"])] += 1
    n = sum(map(sum, conf))
    macro = 0.0
    lines = []
    for i, lab in enumerate(LABELS):
        tp = conf[i][i]
        pred = sum(conf[k][i] for k in range(3))
        sup = sum(conf[i])
        p = tp / pred if pred else 0.0
        r = tp / sup if sup else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        macro += f / 3
        lines.append(f"| {lab} | {p:.3f} | {r:.3f} | {f:.3f} | {sup} |")
    acc = sum(conf[i][i] for i in range(3)) / n if n else 0.0
    print(f"### half {name}: n {n}, accuracy {acc:.3f}, macro-F1 {macro:.3f}\n")
    print("| class | precision | recall | F1 | support |\n| --- | ---: | ---: | ---: | ---: |")
    print("\n".join(lines))
    print("\n| truth \\ verdict | benign | suspicious | malicious |\n| --- | ---: | ---: | ---: |")
    for i, lab in enumerate(LABELS):
        print(f"| {lab} | {conf[i][0]} | {conf[i][1]} | {conf[i][2]} |")
    print()
    return macro


def fp_report(rows):
    by_rule = collections.Counter()
    hit = collections.Counter()
    total = collections.Counter()
    for row, v in rows:
        lab = row["label"]
        total[lab] += 1
        if v["verdict"] != "benign":
            hit[lab] += 1
            if lab == "benign":
                for rid in v.get("rule_ids") or ["(none)"]:
                    by_rule[(rid, v["verdict"])] += 1
    print(f"benign lines hit (false positives): {hit['benign']} of {total['benign']}")
    for (rid, verdict), c in by_rule.most_common():
        print(f"  {c:4d}  {verdict:10s} {rid}")
    for lab in ("suspicious", "malicious"):
        if total[lab]:
            print(f"{lab} recall (verdict not benign): {hit[lab]}/{total[lab]} = {hit[lab] / total[lab]:.3f}")
    exact = collections.Counter()
    for row, v in rows:
        if row["label"] == v["verdict"]:
            exact[row["label"]] += 1
    for lab in ("suspicious", "malicious"):
        if total[lab]:
            print(f"{lab} exact (verdict == label): {exact[lab]}/{total[lab]} = {exact[lab] / total[lab]:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dump", nargs="+")
    ap.add_argument("--misses", choices=["A", "B"])
    ap.add_argument("--fp", action="store_true")
    a = ap.parse_args()
    rows = load(a.dump)
    if a.misses:
        if a.misses != "A":
            sys.exit("rules-split-eval: half B is for measuring only; its lines are not shown")
        for row, v in rows:
            if half(row) == "A" and row["label"] != v["verdict"]:
                print(json.dumps({"label": row["label"], "verdict": v["verdict"],
                                  "technique": row.get("technique"), "cmd": row.get("cmd"),
                                  "rules": v.get("rule_ids")}))
        return
    if a.fp:
        fp_report(rows)
        return
    for name in ("A", "B"):
        table(name, [x for x in rows if half(x[0]) == name])
    table("A+B", rows)


if __name__ == "__main__":
    main()
