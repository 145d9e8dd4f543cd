#!/usr/bin/env python3
"""kb-overlap — how close the example base comes to the evaluation sets.

The k-nearest-neighbour vote over kb/examples.jsonl is the analyst's strongest
signal, so a base that contains the evaluation commands would score itself.
This tool compares every command of the base with every command of one or
more evaluation files at two levels:

  exact        the commands are equal after lowercasing and collapsing runs
               of whitespace;
  placeholder  they are equal after, in addition, replacing URLs, IPv4
               addresses, paths, host names, e-mail-like user@host tokens and
               numbers with fixed placeholders (URL, IP, PATH, HOST, N).
               Two lines that differ only in which file, host or port they
               name collapse to the same text: "cat /etc/shadow" and
               "cat ~/.ssh/id_rsa" both become "cat PATH".

The placeholder level is deliberately coarse: it counts shape matches (the
same binary with the same options), which are expected between a base and an
evaluation set drawn from the same public facts; it is reported, not refused.
Exact matches must be zero.

Usage: kb-overlap.py [--kb FILE] [--list] EVALFILE...
Prints one line per evaluation file; --list also prints each matching pair.
Exit status 0 when there is no exact match, 1 when there is one, 2 on a
usage or input error.
"""
import argparse
import json
import re
import sys

WS_RE = re.compile(r"\s+")
URL_RE = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"]+")
IP_RE = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?\b")
USERHOST_RE = re.compile(r"\b[\w.-]+@[\w.-]+\b")
# A path: starts with /, ~/ or ./ (or ../) and runs to a shell delimiter.
PATH_RE = re.compile(r"(?<![\w:])(?:~|\.{1,2})?/[^\s'\";|&<>()`,]*")
HOST_RE = re.compile(r"\b(?:[a-z0-9-]+\.)+(?:com|net|org|io|dev|internal|"
                     r"local|example|test|sh|co|lan)\b")
NUM_RE = re.compile(r"\b\d+\b")


def norm_exact(cmd):
    """Lowercase and collapse whitespace."""
    return WS_RE.sub(" ", cmd.strip().lower())


def norm_placeholder(cmd):
    """norm_exact, then replace concrete values with placeholders.  Order
    matters: URLs and addresses before paths, paths before host names."""
    s = norm_exact(cmd)
    s = URL_RE.sub("URL", s)
    s = USERHOST_RE.sub("HOST", s)
    s = IP_RE.sub("IP", s)
    s = PATH_RE.sub("PATH", s)
    s = HOST_RE.sub("HOST", s)
    s = NUM_RE.sub("N", s)
    return s


def load_cmds(path):
    """Return the list of commands of a JSON-lines file with a "cmd" key."""
    cmds = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                o = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError("%s:%d: not JSON (%s)" % (path, n, e))
            if not isinstance(o, dict) or not isinstance(o.get("cmd"), str):
                raise ValueError("%s:%d: no cmd string" % (path, n))
            cmds.append(o["cmd"])
    return cmds


def compare(kb, ev):
    """Return (exact pairs, placeholder pairs) between the two lists; a pair
    is (kb command, eval command).  Placeholder pairs include exact ones."""
    ev_exact = {}
    ev_ph = {}
    for c in ev:
        ev_exact.setdefault(norm_exact(c), c)
        ev_ph.setdefault(norm_placeholder(c), c)
    exact, ph = [], []
    for c in kb:
        e = ev_exact.get(norm_exact(c))
        if e is not None:
            exact.append((c, e))
        p = ev_ph.get(norm_placeholder(c))
        if p is not None:
            ph.append((c, p))
    return exact, ph


def main(argv):
    ap = argparse.ArgumentParser(description="kb/eval overlap")
    ap.add_argument("--kb", default="kb/examples.jsonl")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("eval", nargs="+")
    a = ap.parse_args(argv)
    try:
        kb = load_cmds(a.kb)
        evs = [(p, load_cmds(p)) for p in a.eval]
    except (OSError, ValueError) as e:
        print("kb-overlap: %s" % e, file=sys.stderr)
        return 2
    bad = 0
    for path, ev in evs:
        exact, ph = compare(kb, ev)
        print("%s: kb %d lines, eval %d lines, exact %d, placeholder %d"
              % (path, len(kb), len(ev), len(exact), len(ph)))
        if a.list:
            for k, e in exact:
                print("  exact: %r" % k)
            for k, e in ph:
                print("  placeholder: %r ~ %r" % (k, e))
        bad += len(exact)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
