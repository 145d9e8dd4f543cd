#!/usr/bin/env python3
"""gen_quant_golden.py - golden vectors for tests/test_quant.c.

Writes tests/data/quant_golden.bin: for every tensor type, reference results
computed by programs other than nightjar, which test_quant checks bit for bit.

Sources
  gguf-py (PyPI package `gguf`, gguf/quants.py; numpy):
    DEQUANT     random block bytes (scales forced finite) -> floats
    QUANT_FILE  floats -> block bytes, for the types gguf-py can quantize
                (BF16, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)
  llama.cpp's own libraries, only with --ggml-lib-dir (the peer build,
  e.g. ~/.cache/nightjar/peer/llama.cpp/build/bin, loaded with ctypes):
    QUANT_FILE  ggml_quantize_chunk (what llama-quantize writes, no imatrix)
                for every type incl. Q2_K..Q6_K
    QUANT_CPU   ggml-cpu's from_float (the activation quantizer llama.cpp runs
                on this x86 CPU) for Q8_0, Q8_1, Q8_K, F16, BF16
    VEC_DOT     ggml's portable *_generic vec_dot and ggml-cpu's dispatched
                (SIMD) vec_dot -> float (checked with a tolerance)

Regenerate (from the repository root):
    python3 -m venv /tmp/njq-venv && /tmp/njq-venv/bin/pip install gguf numpy
    /tmp/njq-venv/bin/python tools/gen_quant_golden.py \
        --ggml-lib-dir ~/.cache/nightjar/peer/llama.cpp/build/bin \
        -o tests/data/quant_golden.bin
Without --ggml-lib-dir only the gguf-py sections are written (the test then
checks fewer things).  The output is deterministic for a given gguf-py and
llama.cpp version (fixed seed).

File format (little-endian):
    "NJQG" u32 version=2 u32 record_count
    record: u32 kind, u32 type, u32 n, u32 len_a, u32 len_b, a[len_a], b[len_b]
    kind 1 DEQUANT      a = block bytes        b = n f32 (expected)
    kind 2 QUANT_FILE   a = n f32 input        b = block bytes (expected)
    kind 3 QUANT_CPU    a = n f32 input        b = block bytes (expected)
    kind 4 VEC_DOT      a = weight bytes || activation bytes (vec_dot_type)
                        b = 2 f32: ggml's generic C result (NaN if none),
                                   ggml-cpu's dispatched (SIMD) result
    kind 6 INPUT        a = n f32, b empty: the input of the following
                        QUANT_* records that have len_a = 0 (shared rows)
    kind 7 QUANT_HASH   a = u64 seed, u32 which (2 = file, 3 = cpu quantizer),
                            u32 chunk (elements per hash)
                        b = u64 hash per chunk of the quantized bytes
                        The n inputs come from prng_floats(seed, n), which
                        tests/test_quant.c implements identically (integer
                        ops and exactly rounded float ops only); the hash is
                        sum(byte[i] * splitmix(HASH_SEED, i)) mod 2^64 over
                        the chunk's bytes.  Volume catches 1-ulp changes in
                        the quantizers' arithmetic that a few blocks do not.
"""
import argparse
import ctypes
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

# nightjar / ggml type ids
F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 = 0, 1, 2, 3, 6, 7, 8, 9
Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, BF16 = 10, 11, 12, 13, 14, 15, 30

# type: (block elements, block bytes, vec_dot_type)
TYPES = {
    F32: (1, 4, F32), F16: (1, 2, F16), BF16: (1, 2, BF16),
    Q4_0: (32, 18, Q8_0), Q4_1: (32, 20, Q8_1), Q5_0: (32, 22, Q8_0),
    Q5_1: (32, 24, Q8_1), Q8_0: (32, 34, Q8_0), Q8_1: (32, 36, Q8_1),
    Q2_K: (256, 84, Q8_K), Q3_K: (256, 110, Q8_K), Q4_K: (256, 144, Q8_K),
    Q5_K: (256, 176, Q8_K), Q6_K: (256, 210, Q8_K), Q8_K: (256, 292, Q8_K),
}
NAMES = {F32: "f32", F16: "f16", BF16: "bf16", Q4_0: "q4_0", Q4_1: "q4_1",
         Q5_0: "q5_0", Q5_1: "q5_1", Q8_0: "q8_0", Q8_1: "q8_1", Q2_K: "q2_K",
         Q3_K: "q3_K", Q4_K: "q4_K", Q5_K: "q5_K", Q6_K: "q6_K", Q8_K: "q8_K"}
# offsets of fp16 scale fields inside each block (forced finite in random blocks)
HALF_FIELDS = {Q4_0: [0], Q4_1: [0, 2], Q5_0: [0], Q5_1: [0, 2], Q8_0: [0],
               Q8_1: [0, 2], Q2_K: [80, 82], Q3_K: [108], Q4_K: [0, 2],
               Q5_K: [0, 2], Q6_K: [208]}

DEQUANT, QUANT_FILE, QUANT_CPU, VEC_DOT, INPUT, QUANT_HASH = 1, 2, 3, 4, 6, 7
HASH_SEED = 0x5EED
GAMMA = np.uint64(0x9E3779B97F4A7C15)


def splitmix(seed, idx):
    """SplitMix64 of counter idx (uint64 array) under seed, vectorised."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (idx.astype(np.uint64) + np.uint64(1)) * GAMMA
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def prng_floats(seed, n):
    """Weight-like floats from integers: Irwin-Hall(4) bell shape, a power-of-
    two scale per 32 values (2^-12..2^3), and per-block flavours: zero,
    constant, shifted, sparse, with 1/32 outliers x8."""
    i = np.arange(n, dtype=np.uint64)
    r = splitmix(seed, i)
    m = np.uint64(0xFFFF)
    u = ((r & m) + ((r >> np.uint64(16)) & m) + ((r >> np.uint64(32)) & m) + (r >> np.uint64(48))).astype(np.int64)
    x = (u - 131070).astype(np.float32) * np.float32(2.0 ** -17)
    r2 = splitmix(seed + 1, i // np.uint64(32))
    scale = np.ldexp(np.float32(1), ((r2 & np.uint64(15)).astype(np.int32) - 12)).astype(np.float32)
    f = ((r2 >> np.uint64(4)) & np.uint64(63)).astype(np.int32)
    o = splitmix(seed + 2, i)
    x = (x * scale).astype(np.float32)
    x = np.where(f == 0, np.float32(0), x)
    x = np.where(f == 1, (np.float32(0.75) * scale).astype(np.float32), x)
    shifted = (x + (scale * np.float32(0.25)).astype(np.float32)).astype(np.float32)
    x = np.where((f >= 2) & (f <= 9), shifted, x)
    x = np.where((f >= 10) & (f <= 13) & ((o & np.uint64(3)) != 0), np.float32(0), x)
    x = np.where((f > 1) & (((o >> np.uint64(8)) & np.uint64(31)) == 0), (x * np.float32(8)).astype(np.float32), x)
    return x.astype(np.float32)


def chunk_hashes(data, chunk_bytes):
    d = data.reshape(-1, chunk_bytes).astype(np.uint64)
    w = splitmix(HASH_SEED, np.arange(chunk_bytes, dtype=np.uint64))
    with np.errstate(over="ignore"):
        return (d * w).sum(axis=1, dtype=np.uint64)

rng = np.random.default_rng(20240611)
records = []


def rec(kind, typ, n, a, b):
    records.append(struct.pack("<5I", kind, typ, n, len(a), len(b)) + a + b)


def nelem(typ):
    """Elements per golden row: 4 blocks of 32 (or 128 scalars), 1 super-block."""
    return 256 if TYPES[typ][0] == 256 else 128


def random_half(count, lo=-6, hi=2):
    """Finite fp16 values with exponents spread over [2^lo, 2^hi]."""
    mag = np.exp2(rng.uniform(lo, hi, count)) * rng.choice([-1, 1], count)
    return mag.astype(np.float16)


def random_blocks(typ, n):
    blck, size, _ = TYPES[typ]
    nb = n // blck
    raw = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    for off in HALF_FIELDS.get(typ, []):
        raw[:, off:off + 2] = random_half(nb).view(np.uint8).reshape(nb, 2)
    if typ == Q8_K:   # f32 d at offset 0; bsums must agree with qs
        raw[:, 0:4] = (np.exp2(rng.uniform(-8, 0, nb)).astype(np.float32)
                       .view(np.uint8).reshape(nb, 4))
        qs = raw[:, 4:260].view(np.int8).astype(np.int32)
        bs = qs.reshape(nb, 16, 16).sum(-1).astype(np.int16)
        raw[:, 260:292] = bs.view(np.uint8).reshape(nb, 32)
    return raw


def crafted_q8_block():
    """32 values on which llama.cpp's two Q8_0 multipliers give different
    bytes: the x86 path multiplies by 127/amax, the reference by 1/(amax/127);
    for about a quarter of all amax these differ in the last bit, and values
    whose product lands within that bit of k + 0.5 then round differently."""
    f = np.float32
    while True:
        amax = f(np.exp2(rng.uniform(-3, 3)))
        i_cpu, i_ref = f(127) / amax, f(1) / (amax / f(127))
        if i_cpu != i_ref:
            break
    out = [amax]
    for k in rng.permutation(np.arange(1, 126))[:31]:
        x = f((k + 0.5) / float(i_cpu))
        for _ in range(6):
            if np.rint(f(x * i_cpu)) != np.rint(f(x * i_ref)):
                break
            x = np.nextafter(x, f(np.inf if f(x * i_cpu) < k + 0.5 else -np.inf), dtype=np.float32)
        out.append(x * rng.choice([-1, 1]))
    return np.array(out, dtype=np.float32)


def test_floats(n, kind):
    """Input rows for the quantizers: weight-like data plus edge cases."""
    if kind == 0:    # gaussian, varying scale per 32
        x = rng.standard_normal(n) * np.repeat(np.exp2(rng.uniform(-6, 1, n // 32)), 32)
    elif kind == 1:  # heavy tails, mostly positive shift
        x = rng.standard_t(3, n) * 0.02 + 0.01
    elif kind == 2:  # edge cases: zeros, constants, exact ties, one spike
        x = np.zeros(n)
        blk = [np.zeros(32), np.full(32, 0.75),
               # amax 127 -> id exactly 1: x.5 values are round-half ties
               np.array([127.0, -127.0] + [k + 0.5 for k in range(-15, 15)]),
               np.array([1e-3] * 31 + [100.0])]
        for i in range(n // 32):
            x[32 * i:32 * i + 32] = blk[i % len(blk)]
        if n >= 512:  # a super-block whose x_max = -127: Q8_K iscale = 1
            x[256:288] = np.array([-127.0] + [k + 0.5 for k in range(-15, 16)])
    else:            # Q8_0/Q8_1 multiplier-sensitive blocks
        x = np.concatenate([crafted_q8_block() for _ in range(n // 32)])
    return x.astype(np.float32)


def weight_rows(n):
    """A shared input for the weight quantizers: every 256 values a different
    flavour (gaussian, heavy-tailed, uniform, sparse, shifted, edge cases)."""
    parts = []
    for i in range(n // 256):
        k = i % 8
        if k < 2:
            parts.append(test_floats(256, k))
        elif k == 2:
            parts.append(rng.uniform(-1, 1, 256) * 0.05)
        elif k == 3:
            v = rng.standard_normal(256) * 0.03
            v[rng.random(256) < 0.7] = 0
            parts.append(v)
        elif k == 4:
            parts.append(rng.standard_normal(256) * 0.01 + 0.04)
        elif k == 5:
            parts.append(test_floats(256, 2))
        elif k == 6:
            parts.append(rng.standard_normal(256) * np.repeat(np.exp2(rng.uniform(-12, 4, 16)), 16))
        else:
            parts.append(np.round(rng.standard_normal(256) * 8) / 64)   # many exact ties
    return np.concatenate(parts).astype(np.float32)


# ------------------------------------------------------------------ gguf-py

GGUF_T = {F16: T.F16, BF16: T.BF16, Q4_0: T.Q4_0, Q4_1: T.Q4_1, Q5_0: T.Q5_0,
          Q5_1: T.Q5_1, Q8_0: T.Q8_0, Q2_K: T.Q2_K, Q3_K: T.Q3_K,
          Q4_K: T.Q4_K, Q5_K: T.Q5_K, Q6_K: T.Q6_K}
WEIGHT_N = 8 * 256   # length of the shared weight row


def gen_gguf():
    for typ in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K]:
        n = nelem(typ)
        raw = random_blocks(typ, n)
        y = quants.dequantize(raw.reshape(-1), GGUF_T[typ]).astype(np.float32).reshape(-1)
        assert y.size == n
        rec(DEQUANT, typ, n, raw.tobytes(), y.tobytes())
    # F16 / BF16: every class of bit pattern, incl. subnormals, inf, NaN
    h = np.concatenate([rng.integers(0, 65536, 96, dtype=np.uint16),
                        np.array([0, 0x8000, 1, 0x8001, 0x3ff, 0x400, 0x7bff,
                                  0x7c00, 0xfc00, 0x7e00, 0x3c00, 0xbc00, 0x3555,
                                  0x0200, 0x8200, 0x7bfe] + [0x1234] * 16,
                                 dtype=np.uint16)])
    hf = h.copy()
    hf[(hf & 0x7c00) == 0x7c00] &= 0xfc00   # gguf-py F16 via numpy: drop NaNs
    rec(DEQUANT, F16, 128, hf.tobytes(), quants.dequantize(hf.view(np.uint8), T.F16).astype(np.float32).tobytes())
    b = h.copy()
    b[(b & 0x7f80) == 0x7f80] &= 0xff80     # keep inf, drop NaN payloads
    rec(DEQUANT, BF16, 128, b.tobytes(), quants.dequantize(b.view(np.uint8), T.BF16).astype(np.float32).tobytes())

    # weight quantizers gguf-py implements, on one shared row
    wrow = weight_rows(WEIGHT_N)
    rec(INPUT, F32, WEIGHT_N, wrow.tobytes(), b"")
    for typ in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, BF16]:
        q = quants.quantize(wrow.reshape(1, -1), GGUF_T[typ]).reshape(-1)
        rec(QUANT_FILE, typ, WEIGHT_N, b"", q.tobytes())
    x = np.concatenate([test_floats(96, 0), np.array(
        [65504, 65519.99, 65520, 1e9, 5.96e-8, 2.98e-8, 2.9802326e-08,
         2.9802324e-08, -1e-8, 6.1e-5, 6.104e-5, 1.00048828125, 1.00146484375,
         np.inf, -np.inf, 0.0] + [3.14159] * 16, dtype=np.float32)])
    with np.errstate(over="ignore"):
        q = quants.quantize(x, T.F16).reshape(-1)
    rec(QUANT_FILE, F16, 128, x.tobytes(), q.tobytes())
    return wrow


# ------------------------------------------------------------------ ggml

class TraitsCPU(ctypes.Structure):
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p),
                ("vec_dot_type", ctypes.c_int), ("nrows", ctypes.c_int64)]


FromFloatFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
VecDotFn = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                           ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def gen_ggml(libdir, wrow):
    mode = ctypes.RTLD_GLOBAL
    base = ctypes.CDLL(os.path.join(libdir, "libggml-base.so"), mode=mode)
    cpu = ctypes.CDLL(os.path.join(libdir, "libggml-cpu.so"), mode=mode)
    cpu.ggml_cpu_init()
    cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(TraitsCPU)
    base.ggml_quantize_chunk.restype = ctypes.c_size_t
    base.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                         ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]

    def buf(nbytes):
        return np.zeros(nbytes, dtype=np.uint8)

    def file_quant(typ, x):
        out = buf(len(x) // TYPES[typ][0] * TYPES[typ][1])
        base.ggml_quantize_chunk(typ, x.ctypes.data, out.ctypes.data, 0, 1, len(x), None)
        return out

    def cpu_quant(typ, x):
        out = buf(len(x) // TYPES[typ][0] * TYPES[typ][1])
        FromFloatFn(cpu.ggml_get_type_traits_cpu(typ).contents.from_float)(x.ctypes.data, out.ctypes.data, len(x))
        return out

    # what llama-quantize writes (same shared row as gguf-py's records)
    for typ in [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K]:
        rec(QUANT_FILE, typ, WEIGHT_N, b"", file_quant(typ, wrow).tobytes())
    # volume: many blocks from the shared PRNG, only hashes stored
    CHUNK = 1 << 14
    for which, types in ((QUANT_FILE, [Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K]),
                         (QUANT_CPU, [Q8_0, Q8_1, Q8_K, F16, BF16])):
        for typ in types:
            seed = 1000 * which + typ
            HN = (1 << 19) if TYPES[typ][0] == 256 else (1 << 21)
            x = prng_floats(seed, HN)
            if which == QUANT_CPU:
                x = (x * np.float32(16)).astype(np.float32)
            q = file_quant(typ, x) if which == QUANT_FILE else cpu_quant(typ, x)
            chunk_bytes = CHUNK // TYPES[typ][0] * TYPES[typ][1]
            h = chunk_hashes(q, chunk_bytes)
            rec(QUANT_HASH, typ, HN, struct.pack("<QII", seed, which, CHUNK), h.tobytes())

    # what llama.cpp's CPU backend does to activations, on one shared row
    arow = np.concatenate([test_floats(256, 0), test_floats(256, 1) * 37.0,
                           test_floats(512, 2)]).astype(np.float32)
    rec(INPUT, F32, len(arow), arow.tobytes(), b"")
    for typ in [Q8_0, Q8_1, Q8_K, F16, BF16]:
        rec(QUANT_CPU, typ, len(arow), b"", cpu_quant(typ, arow).tobytes())
    for typ in [Q8_0, Q8_1]:
        x = test_floats(256, 3)
        rec(QUANT_CPU, typ, 256, x.tobytes(), cpu_quant(typ, x).tobytes())
    # dot products: weight quantized with llama-quantize's quantizer, activation
    # with the CPU's from_float, as in a real matmul
    nan = np.array([np.nan], dtype=np.float32)
    for typ in [F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K]:
        vt = TYPES[typ][2]
        n = 512 if TYPES[typ][0] == 256 else 128
        for kind in range(2):
            xw = test_floats(n, kind)
            xa = (rng.standard_normal(n) * 3).astype(np.float32)
            if typ in (F32, F16, BF16):
                wq = cpu_quant(typ, xw) if typ != F32 else xw.view(np.uint8)
            else:
                wq = file_quant(typ, xw)
            aq = cpu_quant(vt, xa) if vt != F32 else xa.view(np.uint8)
            res = np.zeros(2, dtype=np.float32)
            s = np.zeros(1, dtype=np.float32)
            gen = getattr(cpu, "ggml_vec_dot_%s_%s_generic" % (NAMES[typ], NAMES[vt]), None)
            res[0] = nan[0]
            if gen is not None:
                VecDotFn(ctypes.cast(gen, ctypes.c_void_p).value)(n, s.ctypes.data, 0, wq.ctypes.data, 0,
                                                                  aq.ctypes.data, 0, 1)
                # sanity: the generic must agree with the dot of the operands as
                # gguf-py dequantizes them (the peer build's q5_0 generic does not)
                ok = True
                if typ in GGUF_T and vt in GGUF_T:
                    wd = quants.dequantize(wq, GGUF_T[typ]).astype(np.float64)
                    ad = quants.dequantize(aq, GGUF_T[vt]).astype(np.float64)
                    ok = abs(float(s[0]) - float(np.dot(wd, ad))) <= 1e-5 * float(np.abs(wd * ad).sum())
                if ok:
                    res[0] = s[0]
                elif kind == 0:
                    print("warning: llama.cpp's ggml_vec_dot_%s_%s_generic disagrees with the dequantized dot;"
                          " not recorded" % (NAMES[typ], NAMES[vt]), file=sys.stderr)
            VecDotFn(cpu.ggml_get_type_traits_cpu(typ).contents.vec_dot)(n, s.ctypes.data, 0, wq.ctypes.data, 0,
                                                                        aq.ctypes.data, 0, 1)
            res[1] = s[0]
            rec(VEC_DOT, typ, n, wq.tobytes() + aq.tobytes(), res.tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", default="tests/data/quant_golden.bin")
    ap.add_argument("--ggml-lib-dir", help="directory with libggml-base.so and libggml-cpu.so")
    args = ap.parse_args()
    wrow = gen_gguf()
    if args.ggml_lib_dir:
        gen_ggml(os.path.expanduser(args.ggml_lib_dir), wrow)
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "wb") as f:
        f.write(b"NJQG" + struct.pack("<II", 2, len(records)))
        for r in records:
            f.write(r)
    size = os.path.getsize(args.output)
    print("%s: %d records, %d bytes" % (args.output, len(records), size), file=sys.stderr)


if __name__ == "__main__":
    main()
