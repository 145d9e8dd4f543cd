#!/usr/bin/env python3
"""Copy a tensor-less (vocab-only) GGUF file with some string keys replaced.

    swap_pre.py IN.gguf OUT.gguf tokenizer.ggml.pre=tekken [key=value ...]

A pre-tokenizer only cuts text into words, so its behaviour can be compared
with llama.cpp's on any byte-level BPE vocabulary: scripts/conformance-tokenizer
uses this to test pre-tokenizers for which llama.cpp ships no vocab file
(tekken, gpt-4o, deepseek-v3, ...).  Keys that are absent are appended.
"""
import struct
import sys

SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
T_STRING, T_ARRAY = 8, 9


def skip_value(b, off, t):
    if t in SIZES:
        return off + SIZES[t]
    if t == T_STRING:
        (n,) = struct.unpack_from("<Q", b, off)
        return off + 8 + n
    if t == T_ARRAY:
        et, n = struct.unpack_from("<IQ", b, off)
        off += 12
        if et in SIZES:
            return off + SIZES[et] * n
        for _ in range(n):
            off = skip_value(b, off, et)
        return off
    raise ValueError("bad GGUF value type %d" % t)


def gstr(s):
    s = s.encode()
    return struct.pack("<Q", len(s)) + s


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    src, dst = sys.argv[1], sys.argv[2]
    repl = dict(a.split("=", 1) for a in sys.argv[3:])
    b = open(src, "rb").read()
    if b[:4] != b"GGUF":
        raise SystemExit("not a GGUF file")
    version, n_tensors, n_kv = struct.unpack_from("<IQQ", b, 4)
    if n_tensors != 0:
        raise SystemExit("only tensor-less (vocab-only) files are supported")
    off = 24
    out = []
    for _ in range(n_kv):
        start = off
        (kl,) = struct.unpack_from("<Q", b, off)
        key = b[off + 8: off + 8 + kl].decode()
        off += 8 + kl
        (t,) = struct.unpack_from("<I", b, off)
        end = skip_value(b, off + 4, t)
        if key in repl:
            out.append(gstr(key) + struct.pack("<I", T_STRING) + gstr(repl.pop(key)))
        else:
            out.append(b[start:end])
        off = end
    for k, v in repl.items():
        out.append(gstr(k) + struct.pack("<I", T_STRING) + gstr(v))
    with open(dst, "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", version, 0, len(out)) + b"".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
