#!/usr/bin/env python3
"""analyst-matrix — the analyst's configurations (rules / model / retrieval)
composed from two per-line evidence dumps, so one model run gives them all.

  tools/analyst-matrix.py --rules RULES.dump --model MODEL.dump --combiner prompt.json [--json]

RULES.dump:  nightjar eval --no-model --dump F --data SET        (the rules' verdict per line)
MODEL.dump:  nightjar eval -m M --no-rules --label-only --dump F --data SET --prompt P
             (the model's label log-probabilities and the retrieval vote for every line)

This is exact only for a prompt with no examples in it ("examples": 0): then
the model's log-probabilities do not depend on retrieval or on the rules, and
the analyst's decision is a pure function of (rule verdict, log-probabilities,
retrieval vote), which this tool applies the way src/analyst/analyst.c does:

  - a rule verdict of malicious decides (source rule);
  - otherwise the combiner of prompt.json for the dump's model turns the
    features (renormalised log-probabilities, the vote, have_knn,
    rule_suspicious) into a label, and a rule's verdict is a floor;
  - without retrieval the vote is zero and have_knn 0; without rules there is
    no floor and rule_suspicious is 0; rules only: the rule verdict, benign
    when no rule matched.

Check it against a real `nightjar eval` run of one configuration before
trusting the others (bench/RESULTS.md records that check).
"""
import argparse
import importlib.util
import json
import os
import sys

import numpy as np

_spec = importlib.util.spec_from_file_location(
    "fit_combiner", os.path.join(os.path.dirname(os.path.abspath(__file__)), "fit-combiner.py"))
FC = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(FC)

LABELS = ["benign", "suspicious", "malicious"]
FEATURES = ["lp_benign", "lp_suspicious", "lp_malicious", "knn_benign", "knn_suspicious",
            "knn_malicious", "have_knn", "rule_suspicious"]


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def pick_combiner(cfg, model):
    for c in cfg.get("combiners", []):
        if c["model"].lower() in model.lower():
            return c
    return cfg.get("combiner")


def decide(comb, lp, knn, have_knn, rule):
    lp = np.array(lp, dtype=float)
    lp = lp - lp.max()
    lp = lp - np.log(np.exp(lp).sum())
    if comb is None:
        label = int(np.argmax(lp))
    else:
        f = np.concatenate([lp, knn if have_knn else np.zeros(3), [1.0 if have_knn else 0.0,
                                                                    1.0 if rule >= 1 else 0.0]])
        W = np.array([comb["weights"][l] for l in LABELS])
        b = np.array([comb["bias"][l] for l in LABELS])
        label = int(np.argmax(b + W @ f))
    return max(label, rule)


def scores(truth, got):
    """fit-combiner's per-class F1 and confusion, from labels."""
    conf = np.zeros((3, 3), dtype=int)
    for t, g in zip(truth, got):
        conf[t][g] += 1
    return FC.f1_of(conf)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--combiner", required=True, help="prompt.json")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    rd, md = read(a.rules), read(a.model)
    if len(rd) != len(md) or any(r["row"]["cmd"] != m["row"]["cmd"] for r, m in zip(rd, md)):
        sys.exit("analyst-matrix: the two dumps do not hold the same lines in the same order")
    model = md[0]["verdict"].get("model", "")
    comb = pick_combiner(json.load(open(a.combiner)), model)
    truth = [LABELS.index(r["row"]["label"]) for r in rd]
    rule = [LABELS.index(r["verdict"]["verdict"]) for r in rd]
    ev = []
    for m in md:
        e = m["verdict"].get("explain")
        if not e:
            sys.exit("analyst-matrix: a model-dump line has no explain (run with --no-rules --dump)")
        ev.append((e["logprobs"], np.array(e["knn"], dtype=float), bool(e["have_knn"])))
    configs = {
        "rules only": rule,
        "model only": [decide(comb, lp, k, False, 0) for lp, k, h in ev],
        "model + retrieval": [decide(comb, lp, k, h, 0) for lp, k, h in ev],
        "rules + model": [2 if r == 2 else decide(comb, lp, k, False, r) for r, (lp, k, h) in zip(rule, ev)],
        "rules + model + retrieval": [2 if r == 2 else decide(comb, lp, k, h, r) for r, (lp, k, h) in zip(rule, ev)],
    }
    out = {}
    for name, got in configs.items():
        m, f1, conf = scores(truth, got)
        out[name] = {"macro_f1": round(m, 3), "f1": [round(x, 3) for x in f1], "confusion": conf.tolist()}
    if a.json:
        print(json.dumps({"model": model, "combiner": comb.get("model", "any") if comb else None,
                          "n": len(truth), "configs": out}))
        return
    print(f"model {model}, {len(truth)} lines, combiner for {comb.get('model', 'any model') if comb else 'none'}")
    print("| configuration | macro-F1 | F1 benign | F1 suspicious | F1 malicious |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, r in out.items():
        print(f"| {name} | {r['macro_f1']:.3f} | " + " | ".join(f"{x:.3f}" for x in r["f1"]) + " |")


if __name__ == "__main__":
    main()
