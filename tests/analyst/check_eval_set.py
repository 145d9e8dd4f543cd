#!/usr/bin/env python3
"""check_eval_set — validate the analyst's labelled data.

Checks eval/commands.jsonl (the shipped evaluation set) and kb/examples.jsonl
(the retrieval example base), and that the two stay apart:

  * every line is one JSON object with exactly the expected keys and types;
  * label is benign | suspicious | malicious; technique is null or an ATT&CK
    id (T1234 or T1234.567); malicious lines name a technique, benign ones
    do not; ids that ATT&CK v19 revoked are refused, and a line that uses
    one of the v19 replacement ids names the old id in its note or why;
  * eval: at least 320 lines, os is linux | macos | any, each label holds at
    least 15 % of the lines; kb: at least 400 lines, each label >= 15 %;
  * no duplicate command inside a file;
  * no command of the kb is in the eval set, and no kb command is a near
    duplicate of an eval command (normalized token-set Jaccard >= 0.9);
  * no command of either file is identical to a command of the development
    set (commands-dev.jsonl), when that file exists.

Usage: check_eval_set.py [--eval FILE] [--kb FILE] [--dev FILE]
       check_eval_set.py --self-test   (the checks catch planted faults)
Exit status 0 when everything holds, 1 with one message per problem.
"""
import argparse
import json
import os
import re
import sys

LABELS = ("benign", "suspicious", "malicious")
OSES = ("linux", "macos", "any")
TECH_RE = re.compile(r"^T\d{4}(\.\d{3})?$")

# ATT&CK v19 revocations that matter for Linux and macOS command lines:
# old id -> replacement.  Used both to refuse old ids and to require that a
# line tagged with a replacement names its old id.
REVOKED_V19 = {
    "T1562": "T1685", "T1562.001": "T1685", "T1562.002": "T1685.001",
    "T1562.003": "T1690", "T1562.004": "T1686", "T1562.006": "T1685",
    "T1562.007": "T1686.001", "T1562.008": "T1685.002", "T1562.009": "T1688",
    "T1562.010": "T1689", "T1562.011": "T1685.003", "T1562.012": "T1685.004",
    "T1562.013": "T1686.002", "T1070.001": "T1685.005",
    "T1070.002": "T1685.006",
}
NEW_TO_OLD = {}
for old, new in REVOKED_V19.items():
    NEW_TO_OLD.setdefault(new, []).append(old)

SPLIT_RE = re.compile(r"[\s;|&<>()`$'\"=,]+")
DIGITS_RE = re.compile(r"\d+")
NEAR_DUP = 0.9
MIN_SHARE = 0.15


def norm_tokens(cmd):
    """Token set used for near-duplicate detection: split on whitespace and
    shell punctuation, lowercase, every run of digits masked to 0."""
    toks = set()
    for t in SPLIT_RE.split(cmd.lower()):
        if t:
            toks.add(DIGITS_RE.sub("0", t))
    return toks


def jaccard(a, b):
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def load(path, keys, errs):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            where = "%s:%d" % (path, n)
            if not line.strip():
                errs.append("%s: empty line" % where)
                continue
            try:
                o = json.loads(line)
            except ValueError as e:
                errs.append("%s: not JSON (%s)" % (where, e))
                continue
            if not isinstance(o, dict) or set(o) != set(keys):
                errs.append("%s: keys must be exactly %s" % (where, ", ".join(keys)))
                continue
            rows.append((where, o))
    return rows


def check_common(rows, textkey, errs):
    seen = {}
    for where, o in rows:
        cmd, label, tech, text = o["cmd"], o["label"], o["technique"], o[textkey]
        if not isinstance(cmd, str) or not cmd.strip() or cmd != cmd.strip():
            errs.append("%s: cmd must be a non-empty string without outer spaces" % where)
            continue
        if label not in LABELS:
            errs.append("%s: bad label %r" % (where, label))
        if tech is not None and (not isinstance(tech, str) or not TECH_RE.match(tech)):
            errs.append("%s: bad technique id %r" % (where, tech))
        if label == "malicious" and tech is None:
            errs.append("%s: malicious line without a technique" % where)
        if label == "benign" and tech is not None:
            errs.append("%s: benign line with a technique" % where)
        if tech in REVOKED_V19:
            errs.append("%s: %s was revoked in ATT&CK v19, use %s" % (where, tech, REVOKED_V19[tech]))
        if tech in NEW_TO_OLD and not any(old in text for old in NEW_TO_OLD[tech]):
            errs.append("%s: %s replaces %s; name the old id in the %s" %
                        (where, tech, "/".join(NEW_TO_OLD[tech]), textkey))
        if not isinstance(text, str) or not text.strip() or "\n" in text:
            errs.append("%s: %s must be one non-empty line" % (where, textkey))
        if cmd in seen:
            errs.append("%s: duplicate of %s" % (where, seen[cmd]))
        else:
            seen[cmd] = where


def check_counts(name, rows, minimum, errs):
    if len(rows) < minimum:
        errs.append("%s: %d lines, need at least %d" % (name, len(rows), minimum))
    counts = {l: 0 for l in LABELS}
    for _, o in rows:
        if o["label"] in counts:
            counts[o["label"]] += 1
    for l in LABELS:
        if rows and counts[l] < MIN_SHARE * len(rows):
            errs.append("%s: only %d %s lines (< %d%%)" % (name, counts[l], l, int(MIN_SHARE * 100)))
    return counts


def run(eval_path, kb_path, dev_path):
    """All checks; returns the list of problems."""
    errs = []
    ev = load(eval_path, ("cmd", "label", "technique", "os", "note"), errs)
    check_common(ev, "note", errs)
    for where, o in ev:
        if o["os"] not in OSES:
            errs.append("%s: bad os %r" % (where, o["os"]))
    ec = check_counts("eval", ev, 320, errs)

    kb = []
    kc = {}
    if os.path.exists(kb_path):
        kb = load(kb_path, ("cmd", "label", "technique", "why"), errs)
        check_common(kb, "why", errs)
        kc = check_counts("kb", kb, 400, errs)
        ecmds = {o["cmd"]: w for w, o in ev if isinstance(o["cmd"], str)}
        etoks = [(w, norm_tokens(o["cmd"])) for w, o in ev if isinstance(o["cmd"], str)]
        for where, o in kb:
            c = o["cmd"]
            if not isinstance(c, str):
                continue
            if c in ecmds:
                errs.append("%s: same command as %s" % (where, ecmds[c]))
                continue
            t = norm_tokens(c)
            for ew, et in etoks:
                j = jaccard(t, et)
                if j >= NEAR_DUP:
                    errs.append("%s: near duplicate of %s (Jaccard %.2f)" % (where, ew, j))
                    break
    else:
        errs.append("%s: missing" % kb_path)

    if dev_path and os.path.exists(dev_path):
        dev = set()
        with open(dev_path, encoding="utf-8") as f:
            for line in f:
                try:
                    dev.add(json.loads(line)["cmd"].strip())
                except (ValueError, KeyError, TypeError, AttributeError):
                    pass
        for where, o in ev + kb:
            if isinstance(o["cmd"], str) and o["cmd"].strip() in dev:
                errs.append("%s: identical to a line of the development set" % where)
    return errs, len(ev), ec, len(kb), kc


def self_test():
    """Plant one fault of each kind in small files and check each is named.
    The minimum line counts are scaled down by writing enough filler."""
    import tempfile
    d = tempfile.mkdtemp()
    ev, kb, dev = (os.path.join(d, n) for n in ("eval.jsonl", "kb.jsonl", "dev.jsonl"))
    def e(cmd, label, tech=None, note="n", os_="any"):
        return json.dumps({"cmd": cmd, "label": label, "technique": tech, "os": os_, "note": note})
    def k(cmd, label, tech=None, why="w."):
        return json.dumps({"cmd": cmd, "label": label, "technique": tech, "why": why})
    labels = ["benign", "suspicious", "malicious"]
    elines = [e("evalcmd%d alpha%d" % (i, i), labels[i % 3], None if i % 3 == 0 else "T1059") for i in range(330)]
    klines = [k("kbcmd%d beta%d" % (i, i), labels[i % 3], None if i % 3 == 0 else "T1105") for i in range(420)]
    planted = {
        "bad label": e("x1", "evil"),
        "bad technique id": e("x2", "malicious", "T59"),
        "malicious line without a technique": e("x3", "malicious"),
        "benign line with a technique": e("x4", "benign", "T1059"),
        "revoked in ATT&CK v19": e("x5", "malicious", "T1562.001"),
        "name the old id": e("x6", "malicious", "T1685", "no old id here"),
        "bad os": e("x7", "benign", os_="windows"),
        "duplicate of": elines[0],
        "keys must be exactly": json.dumps({"cmd": "x8", "label": "benign"}),
        "not JSON": "{oops",
    }
    kplanted = {
        "same command as": k("evalcmd3 alpha3", "benign"),
        "near duplicate of": k("evalcmd7 ALPHA7", "benign"),
        "identical to a line of the development set": k("devline one", "benign"),
    }
    with open(ev, "w") as f:
        f.write("\n".join(elines + list(planted.values())) + "\n")
    with open(kb, "w") as f:
        f.write("\n".join(klines + list(kplanted.values())) + "\n")
    with open(dev, "w") as f:
        f.write(json.dumps({"cmd": "devline one", "label": "benign"}) + "\n")
    errs, *_ = run(ev, kb, dev)
    missing = [w for w in list(planted) + list(kplanted) if not any(w in x for x in errs)]
    for w in missing:
        print("self-test: fault not reported: %s" % w, file=sys.stderr)
    # and a clean pair passes
    with open(ev, "w") as f:
        f.write("\n".join(elines) + "\n")
    with open(kb, "w") as f:
        f.write("\n".join(klines) + "\n")
    clean, *_ = run(ev, kb, dev)
    for x in clean:
        print("self-test: clean files flagged: %s" % x, file=sys.stderr)
    for p in (ev, kb, dev):
        os.remove(p)
    os.rmdir(d)
    ok = not missing and not clean
    print("self-test: %s (%d planted faults)" % ("OK" if ok else "FAILED", len(planted) + len(kplanted)))
    return 0 if ok else 1


def main():
    if "--self-test" in sys.argv[1:]:
        return self_test()
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval", default=os.path.join(root, "eval", "commands.jsonl"))
    ap.add_argument("--kb", default=os.path.join(root, "kb", "examples.jsonl"))
    # the development set lives beside the repository (../shared/eval), when present
    ap.add_argument("--dev", default=os.environ.get("NJ_DEV_SET", os.path.join(root, "..", "shared", "eval", "commands-dev.jsonl")))
    a = ap.parse_args()

    errs, nev, ec, nkb, kc = run(a.eval, a.kb, a.dev)
    for e in errs:
        print(e, file=sys.stderr)
    print("eval: %d lines %s; kb: %d lines %s; %s" %
          (nev, ec, nkb, kc, "OK" if not errs else "%d problems" % len(errs)))
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main())
