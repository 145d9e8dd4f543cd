"""njtest — what the Python service tests share.

Purpose.  The script tests (tests/serve/test_*.py, tests/agent/test_*.py)
start the real `nightjar` binary (or llama-server) and drive it over HTTP.
Each needs the same scaffolding: a free loopback port, a server process
with its own log file that is ready once /health answers, a bounded stop,
HTTP over a Unix socket and over TCP, and the one-line-per-check report
whose closing line scripts/run-tests adds up.  This module holds that
scaffolding once; the scripts keep only what they test.  A script finds
it from its own location:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
    import njtest

Report format (scripts/run-tests parses the last line):
    ok   NAME
    FAIL NAME: DETAIL
    skip NAME (WHY)
    N passed, M failed            or  N passed, M failed (K skipped)

Design.
  - No fixed sleeps: every wait is wait_for(condition, deadline).  The
    deadlines bound a hung server, not a slow machine, so they are long;
    sanitizer builds (NJ_BIN under build-asan or build-tsan) are slower
    and the scripts scale their deadlines with SLOW.
  - Servers are Server objects; every one started is remembered so that
    kill_all() / stop_all() can end what is left whatever went wrong.
    A server's stdout and stderr go to its log file; logtext() and
    logtail() read it back for failure details.
  - HTTP: request() speaks HTTP/1.1 with http.client to a Unix socket (a
    path) or to 127.0.0.1 (a port number); http() is its short form
    returning (status, text); curl() drives curl --unix-socket, for the
    tests that exercise the service the way a shell user does.

State.  The counters passed, failed and skipped are module globals (one
test script is one process); read them as njtest.failed.  Threads: check()
may be called from helper threads (the counters take a lock).

Environment: NJ_BIN (default build/nightjar, relative to the repository
root, where the .sh wrappers start the scripts), NIGHTJAR_TEST_MODEL_DIR
(default ~/.cache/nightjar/models).
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http import client as http_client

BIN = os.environ.get("NJ_BIN", "build/nightjar")
MODEL_DIR = os.environ.get("NIGHTJAR_TEST_MODEL_DIR", os.path.expanduser("~/.cache/nightjar/models"))
MODEL = os.path.join(MODEL_DIR, "SmolLM2-135M-Instruct.Q4_1.gguf")
# Sanitizer builds run several times slower: scripts lengthen their deadlines.
SLOW = "asan" in BIN or "tsan" in BIN

passed = failed = skipped = 0
_lock = threading.Lock()


# ------------------------------------------------------------------ report --

def check(name, cond, detail=""):
    """Count and print one check: "ok   NAME" or "FAIL NAME: DETAIL".
    Returns cond, so a caller can stop a group on a failed precondition."""
    global passed, failed
    with _lock:
        if cond:
            passed += 1
            print(f"ok   {name}", flush=True)
        else:
            failed += 1
            print(f"FAIL {name}" + (f": {detail}" if detail else ""), flush=True)
    return cond


def skip(name, why):
    """Count and print a check that could not run here: "skip NAME (WHY)"."""
    global skipped
    with _lock:
        skipped += 1
        print(f"skip {name} ({why})", flush=True)


def run_groups(groups):
    """Run each (name, function) in turn; an exception escaping one is one
    failed check, "NAME: group ran to the end", and the next group runs."""
    for name, fn in groups:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - a crash in a group is one failure
            check(f"{name}: group ran to the end", False, repr(e))


def model_missing(path=MODEL):
    """True, after the lines of a script that did not run (a skip line and
    an empty summary), when the test model is absent."""
    if os.path.exists(path):
        return False
    print(f"skip: {path} is not there (scripts/get-models)")
    print("0 passed, 0 failed", flush=True)
    return True


def summary():
    """Print the closing line scripts/run-tests parses; returns the exit
    status (1 if anything failed, else 0)."""
    print(f"{passed} passed, {failed} failed" + (f" ({skipped} skipped)" if skipped else ""), flush=True)
    return 1 if failed else 0


def finish():
    """summary(), then exit with its status."""
    sys.exit(summary())


# ------------------------------------------------------------------- waits --

def wait_for(cond, timeout, step=0.05):
    """Call cond() every `step` seconds until it returns a true value or
    `timeout` seconds pass; returns its last value (so a caller can tell
    "exited" from False, or use what the condition found)."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


def free_port():
    """A loopback TCP port nobody was listening on a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def service_env(tmp, cache=False):
    """The environment for a server under test: no user config file (nor,
    with cache, cache directory) leaks in, and none of the settings the
    service reads from the environment."""
    e = dict(os.environ)
    e["XDG_CONFIG_HOME"] = tmp
    if cache:
        e["XDG_CACHE_HOME"] = tmp
    for k in ("THREADS", "NICE_LEVEL", "CTX_SIZE", "NIGHTJAR_TOKEN", "NIGHTJAR_CONFIG"):
        e.pop(k, None)
    return e


def jbody(b):
    """b parsed as JSON, or None."""
    try:
        return json.loads(b)
    except ValueError:
        return None


def metric(text, name, labels=None):
    """The value of an unlabelled Prometheus sample `name` (or of
    name{labels}) in the /metrics text, or None."""
    key = name + ("{" + labels + "}" if labels is not None else "")
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return None


# -------------------------------------------------------------------- HTTP --

class UnixHTTP(http_client.HTTPConnection):
    """http.client over a Unix stream socket (Host: localhost)."""

    def __init__(self, path, timeout=300):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def connection(target, timeout):
    """An HTTP connection to a Unix socket (target a path) or to
    127.0.0.1 (target a port number)."""
    if isinstance(target, int):
        return http_client.HTTPConnection("127.0.0.1", target, timeout=timeout)
    return UnixHTTP(target, timeout)


def request(target, method, path, body=None, headers=None, timeout=300):
    """One request; returns (status, headers dict with lower-case names,
    body bytes, seconds).  A dict or list body is sent as JSON; any body
    gets Content-Type: application/json unless headers say otherwise.
    Connection errors raise OSError."""
    t0 = time.monotonic()
    c = connection(target, timeout)
    try:
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        h = {"Content-Type": "application/json"} if data is not None else {}
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        out = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, out, time.monotonic() - t0
    finally:
        c.close()


def http(target, path, body=None, token=None, timeout=300):
    """GET path (POST when there is a body) with an optional bearer token;
    returns (status, text), or (0, "") when the server cannot be reached."""
    h = {"Authorization": "Bearer " + token} if token else {}
    try:
        code, _, out, _ = request(target, "POST" if body is not None else "GET", path, body, h, timeout)
        return code, out.decode("utf-8", "replace")
    except (OSError, http_client.HTTPException):
        return 0, ""


def curl(sock, method, path, body=None, headers=(), timeout=300, stream=False):
    """curl --unix-socket: returns (status, body bytes, seconds, response
    headers text); status 0 when curl got no answer.  A dict or list body
    is sent as JSON (Content-Type: application/json unless headers name
    one); str and bytes bodies go as they are.  Safe to call from several
    threads: the body goes through stdin, the headers to a file of its own."""
    fd, hdr = tempfile.mkstemp(prefix="nj-curl-hdr-")
    os.close(fd)
    cmd = ["curl", "-s", "-S", "--unix-socket", sock, "-X", method, "-o", "-", "-D", hdr,
           "-w", "\n%{http_code} %{time_total}", "--max-time", str(timeout)]
    if stream:
        cmd.append("-N")
    for h in headers:
        cmd += ["-H", h]
    data = None
    if body is not None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        data = body.encode() if isinstance(body, str) else body
        if not any(h.lower().startswith("content-type:") for h in headers):
            cmd += ["-H", "Content-Type: application/json"]
        cmd += ["--data-binary", "@-"]
    cmd.append("http://localhost" + path)
    try:
        out = subprocess.run(cmd, input=data, capture_output=True).stdout
        with open(hdr) as f:
            headers_text = f.read()
    except OSError:
        out, headers_text = b"", ""
    finally:
        try:
            os.unlink(hdr)
        except OSError:
            pass
    head, _, tail = out.rpartition(b"\n")
    parts = tail.split()
    status = int(parts[0]) if parts else 0
    secs = float(parts[1]) if len(parts) > 1 else 0.0
    return status, head, secs, headers_text


# ----------------------------------------------------------------- servers --

PROCS = []   # every process started through this module (Server, track)


def track(p):
    """Remember a Popen so that kill_all() / stop_all() end it too."""
    PROCS.append(p)
    return p


class Server:
    """A server process under test.

    argv: the whole command line (nightjar serve ... or llama-server ...).
    log: a file path; the process's stdout and stderr go there (opened
    with `mode`: "w+" starts it empty, "a+" keeps what an earlier run of
    the same server wrote).  sock or port: where it answers HTTP (a Unix
    socket path or a loopback TCP port); token: sent as a bearer token
    with every request made through this object.  env: the process's
    environment (default: inherited)."""

    def __init__(self, argv, log, sock=None, port=None, token=None, env=None, mode="w+"):
        self.argv, self.sock, self.port, self.token = list(argv), sock, port, token
        self.log = open(log, mode)
        self.p = track(subprocess.Popen(self.argv, env=env, stdout=self.log, stderr=subprocess.STDOUT))

    @property
    def target(self):
        return self.sock if self.sock is not None else self.port

    def request(self, method, path, body=None, headers=None, timeout=300):
        """request() to this server, with its token."""
        h = dict(headers or {})
        if self.token:
            h.setdefault("Authorization", "Bearer " + self.token)
        return request(self.target, method, path, body, h, timeout)

    def wait_ready(self, timeout, want=200, step=0.05):
        """Poll GET /health until it answers `want`; False if the process
        exits or `timeout` seconds pass first."""
        def ready():
            if self.p.poll() is not None:
                return "exited"
            if self.sock is not None and not os.path.exists(self.sock):
                return False
            try:
                return self.request("GET", "/health", timeout=10)[0] == want
            except (OSError, http_client.HTTPException):
                return False
        return wait_for(ready, timeout, step) is True

    def health(self, timeout=30):
        """GET /health as a dict ({} when it is not JSON)."""
        return jbody(self.request("GET", "/health", timeout=timeout)[2]) or {}

    def metrics(self, timeout=30):
        """GET /metrics as text."""
        return self.request("GET", "/metrics", timeout=timeout)[2].decode()

    def metric(self, name, labels=None):
        return metric(self.metrics(), name, labels)

    def logtext(self):
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def logtail(self, n=30):
        return "\n".join(self.logtext().splitlines()[-n:])

    def stop(self, sig=signal.SIGTERM, timeout=120):
        """Send sig (SIGTERM) unless it has exited; wait up to timeout
        seconds, then SIGKILL.  Returns the exit status (negative: the
        signal that ended it)."""
        return stop(self.p, sig, timeout)


def stop(p, sig=signal.SIGTERM, timeout=120):
    """Stop a Popen: sig, a bounded wait, then SIGKILL; its exit status."""
    if p.poll() is None:
        p.send_signal(sig)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait()


def kill_all():
    """SIGKILL every tracked process still running (the end of a script,
    whatever happened)."""
    for p in PROCS:
        if p.poll() is None:
            p.kill()
            p.wait()


def stop_all(timeout=30):
    """SIGTERM every tracked process still running, a bounded wait each,
    then SIGKILL."""
    for p in PROCS:
        if p.poll() is None:
            stop(p, signal.SIGTERM, timeout)

