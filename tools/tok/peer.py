"""Where the llama.cpp peer lives, and building bench/ref/llama_ref.c against it.

Shared by scripts/conformance-tokenizer and bench/tokenize.  The peer is
$NIGHTJAR_PEER (default ~/.cache/nightjar/peer): a llama.cpp checkout with
build/bin (llama-tokenize, libllama.so) and/or the prebuilt node-llama-cpp
libraries under node_modules/@node-llama-cpp/linux-x64/bins/linux-x64.
"""
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEER = os.environ.get("NIGHTJAR_PEER", os.path.expanduser("~/.cache/nightjar/peer"))
LLAMA = os.path.join(PEER, "llama.cpp")
VOCABS = os.path.join(LLAMA, "models")
LLAMA_TOKENIZE = os.path.join(LLAMA, "build", "bin", "llama-tokenize")
NJ = os.environ.get("NJ_BIN", os.path.join(ROOT, "build", "nightjar"))
MODELS = os.environ.get("NIGHTJAR_TEST_MODEL_DIR", os.path.expanduser("~/.cache/nightjar/models"))
SMOL = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")


def vocab(name):
    return os.path.join(VOCABS, "ggml-vocab-%s.gguf" % name)


def build_ref(outdir):
    """Compile llama_ref; returns (path, libdir) or (None, None).  Prefers the
    peer's own build (the library llama-tokenize uses), then the prebuilt
    node-llama-cpp library."""
    src = os.path.join(ROOT, "bench", "ref", "llama_ref.c")
    inc = ["-I" + os.path.join(LLAMA, "include"), "-I" + os.path.join(LLAMA, "ggml", "include")]
    out = os.path.join(outdir, "llama_ref")
    cands = []
    bdir = os.path.join(LLAMA, "build", "bin")
    if os.path.exists(os.path.join(bdir, "libllama.so")):
        cands.append((bdir, "-lllama"))
    ndir = os.path.join(PEER, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64")
    if os.path.isdir(ndir):
        for f in sorted(os.listdir(ndir)):
            if f.startswith("libllama.") and f.endswith(".so") and "common" not in f:
                cands.append((ndir, "-l:" + f))
    for d, lib in cands:
        cmd = ["cc", "-O2", "-std=gnu11", src] + inc + ["-L" + d, lib, "-Wl,-rpath," + d, "-o", out]
        if subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return out, d
    return None, None
