#!/usr/bin/env python3
"""fit-combiner — fit the analyst's verdict combiner from `nightjar eval --dump` files.

The analyst turns three kinds of evidence into a verdict for an event no rule
decides: the model's log-probabilities of the three labels at the verdict
position, the retrieval vote (label shares of the nearest labelled
examples), and whether a rule already rated the event suspicious.  The
combiner is a multinomial logistic regression over those eight features
(src/analyst/analyst.c, combiner_features, computes them the same way);
this tool fits it and writes the "combiner" object of prompt.json.

  tools/fit-combiner.py fit  --split A|all DUMP... > combiner.json
  tools/fit-combiner.py eval --combiner prompt.json [--split B|all] DUMP...
  tools/fit-combiner.py agree DUMP...

agree: on every model-judged line, does the label scoring's argmax (the
raw log-probabilities, before any calibration) equal the label greedy
generation under the verdict schema writes at the same position
(explain.generated_label)?

Dumps come from `nightjar eval --label-only --dump FILE` run with the prompt
the combiner is for (the features depend on the prompt).  Lines a rule
decided keep their verdict in both modes; every line counts in the scores,
so the figures are those `nightjar eval` would print with the combiner in
place.

--split: A and B are two halves of the dump, split by a hash of the command
(stable across runs and prompts), so a combiner can be fitted on one half
and measured on the other.  Class weights are balanced (each class weighs
the same in the loss, as it does in macro-F1), with an L2 penalty.
"""
import argparse
import hashlib
import json
import sys

import numpy as np

LABELS = ["benign", "suspicious", "malicious"]
FEATURES = ["lp_benign", "lp_suspicious", "lp_malicious", "knn_benign", "knn_suspicious",
            "knn_malicious", "have_knn", "rule_suspicious"]


def half(row):
    key = row.get("cmd") or json.dumps(row.get("event"), sort_keys=True)
    return "A" if hashlib.sha256(key.encode()).digest()[0] % 2 == 0 else "B"


def load(paths, split):
    """Rows as (truth, fixed verdict or None, features or None)."""
    out = []
    for p in paths:
        with open(p) as f:
            for line in f:
                d = json.loads(line)
                row, v = d["row"], d["verdict"]
                if split in ("A", "B") and half(row) != split:
                    continue
                truth = LABELS.index(row["label"])
                got = LABELS.index(v["verdict"])
                e = v.get("explain")
                if v["source"] != "model" or not e:
                    out.append((truth, got, None, 0))
                    continue
                lp = np.array(e["logprobs"], dtype=float)
                lp = lp - lp.max()
                lp = lp - np.log(np.exp(lp).sum())
                knn = np.array(e["knn"], dtype=float) if e["have_knn"] else np.zeros(3)
                rs = 1.0 if e.get("rule_suspicious") else 0.0
                feat = np.concatenate([lp, knn, [1.0 if e["have_knn"] else 0.0, rs]])
                floor = 1 if rs else 0
                out.append((truth, None, feat, floor))
    return out


def predict(W, b, feat, floor):
    z = b + W @ feat
    return max(int(np.argmax(z)), floor)


def scores(rows, W, b):
    conf = np.zeros((3, 3), dtype=int)
    for truth, fixed, feat, floor in rows:
        got = fixed if fixed is not None else predict(W, b, feat, floor)
        conf[truth][got] += 1
    return f1_of(conf)


def f1_of(conf):
    """Macro-F1, per-class F1 and the confusion matrix itself."""
    f1 = []
    for l in range(3):
        tp = conf[l][l]
        p = tp / conf[:, l].sum() if conf[:, l].sum() else 0.0
        r = tp / conf[l].sum() if conf[l].sum() else 0.0
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return float(np.mean(f1)), f1, conf


def fit(rows, l2=0.01, steps=20000, lr=1.0):
    """Class-balanced multinomial logistic regression with an L2 penalty on
    the weights, by gradient descent with a backtracking line search (the
    loss falls at every step; a fixed step oscillated on some models'
    features and left a poor fit)."""
    X = np.array([f for _, fx, f, _ in rows if fx is None])
    y = np.array([t for t, fx, f, _ in rows if fx is None])
    n, d = X.shape
    counts = np.bincount(y, minlength=3).astype(float)
    w_class = np.where(counts > 0, n / (3 * np.maximum(counts, 1)), 0.0)
    sw = w_class[y] / w_class[y].sum()
    Y = np.eye(3)[y]

    def loss_grad(W, b):
        Z = X @ W.T + b
        Z -= Z.max(axis=1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(axis=1, keepdims=True)
        loss = -(sw * np.log(np.maximum((P * Y).sum(axis=1), 1e-300))).sum() + 0.5 * l2 * (W * W).sum()
        G = (P - Y) * sw[:, None]
        return loss, G.T @ X + l2 * W, G.sum(axis=0)

    W = np.zeros((3, d))
    b = np.zeros(3)
    loss, gW, gb = loss_grad(W, b)
    step = lr
    for _ in range(steps):
        gn = (gW * gW).sum() + (gb * gb).sum()
        if gn < 1e-14:
            break
        while True:
            W2, b2 = W - step * gW, b - step * gb
            loss2, gW2, gb2 = loss_grad(W2, b2)
            if loss2 <= loss - 0.5 * step * gn or step < 1e-12:
                break
            step *= 0.5
        W, b, loss, gW, gb = W2, b2, loss2, gW2, gb2
        step = min(step * 2.0, 64.0)
    return W, b


def tune_bias(rows, W, b):
    """Coordinate search on the per-label offsets for the best macro-F1 of
    the whole (rules included) set: the loss above is a proxy for it."""
    best = scores(rows, W, b)[0]
    grid = np.linspace(-2, 2, 41)
    for _ in range(3):
        for l in (1, 2):
            for g in grid:
                bb = b.copy()
                bb[l] = b[l] + g * 0.25
                m = scores(rows, W, bb)[0]
                if m > best + 1e-9:
                    best, b = m, bb
    return b


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["fit", "eval", "agree"])
    ap.add_argument("dumps", nargs="+")
    ap.add_argument("--split", default="all", choices=["A", "B", "all"])
    ap.add_argument("--combiner", help="prompt.json (or a bare combiner object) for eval")
    ap.add_argument("--model", help="fit: the model (part of its file name) the combiner is for; "
                    "eval: pick that model's combiner from prompt.json's \"combiners\" "
                    "(default: the model named in the first dump)")
    ap.add_argument("--l2", type=float, default=0.01)
    ap.add_argument("--no-tune", action="store_true", help="keep the fitted offsets as they are")
    a = ap.parse_args()
    if a.mode == "agree":
        n = same = 0
        for p in a.dumps:
            for line in open(p):
                e = json.loads(line)["verdict"].get("explain")
                if not e or "generated_label" not in e:
                    continue
                n += 1
                same += LABELS[int(np.argmax(e["logprobs"]))] == e["generated_label"]
        print(json.dumps({"n": n, "agree": same, "share": round(same / n, 4) if n else None}))
        return
    rows = load(a.dumps, a.split)
    if a.mode == "fit":
        W, b = fit(rows, a.l2)
        if not a.no_tune:
            b = tune_bias(rows, W, b)
        m, f1, conf = scores(rows, W, b)
        print(f"fitted on {len(rows)} lines ({sum(1 for r in rows if r[1] is None)} model-judged): "
              f"macro-F1 {m:.3f} (in sample), F1 {[round(x, 3) for x in f1]}, confusion {conf.tolist()}",
              file=sys.stderr)
        out = {"model": a.model} if a.model else {}
        out.update({"features": FEATURES,
                    "weights": {LABELS[l]: [round(float(x), 4) for x in W[l]] for l in range(3)},
                    "bias": {LABELS[l]: round(float(b[l]), 4) for l in range(3)}})
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        c = json.load(open(a.combiner))
        if "combiners" in c:
            model = a.model
            if not model:
                with open(a.dumps[0]) as f:
                    model = json.loads(f.readline())["verdict"].get("model", "")
            pick = [x for x in c["combiners"] if x["model"].lower() in model.lower()]
            if not pick and "combiner" not in c:
                sys.exit(f"fit-combiner: no combiner for {model} in {a.combiner}")
            c = pick[0] if pick else c["combiner"]
        else:
            c = c.get("combiner", c)
        assert c["features"] == FEATURES, "combiner fitted for other features"
        W = np.array([c["weights"][l] for l in LABELS])
        b = np.array([c["bias"][l] for l in LABELS])
        m, f1, conf = scores(rows, W, b)
        print(json.dumps({"n": len(rows), "macro_f1": round(m, 4), "f1": [round(x, 4) for x in f1],
                          "confusion": conf.tolist()}))


if __name__ == "__main__":
    main()
