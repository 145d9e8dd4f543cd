#!/usr/bin/env bash
# test_watch — `nightjar watch` killed with SIGKILL 20 times while 1,000
# events stream through spool -> rules -> JSON-lines sink; rotation;
# idempotence (tests/agent/test_watch.py).  Prints "N passed, M failed" last.
cd "$(dirname "$0")/../.." || exit 1
exec python3 tests/agent/test_watch.py
