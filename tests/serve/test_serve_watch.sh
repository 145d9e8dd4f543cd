#!/usr/bin/env bash
# test_serve_watch — `nightjar serve` following the watch sources of its
# config file (tests/serve/test_serve_watch.py).  Prints "N passed, M failed" last.
cd "$(dirname "$0")/../.." || exit 1
exec python3 tests/serve/test_serve_watch.py
