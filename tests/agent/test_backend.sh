#!/usr/bin/env bash
# test_backend — `nightjar analyze|watch --backend` against a second
# `nightjar serve` (nightjar+http and openai+http) and, where the peer is
# built, llama-server (tests/agent/test_backend.py).  Prints "N passed, M failed" last.
cd "$(dirname "$0")/../.." || exit 1
exec python3 tests/agent/test_backend.py
