#!/usr/bin/env python3
"""`swisd keygen` as a process: the files it writes, their modes, what it prints.

Checks: --out writes PATH and PATH_secret (mode 0600) and prints the public
key found in both files and the node id, which equals an independent
computation here (Z85 decoded in Python, hashlib.blake2b); a second run
refuses to overwrite and leaves the files as they were; --force makes a new
key; --show prints the same key and id; a secret file readable by others, a
missing file and bad usage are refused with exit codes 1 and 2.
usage: test_keygen.py [PATH_TO_swisd]   (default $SWISD_BUILD/cli/swisd)
Python 3 standard library only; < 5 s.
"""
import hashlib
import os
import re
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness  # noqa: E402

BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("SWISD_BUILD", "build"), "cli", "swisd")
Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"


def z85_decode(s):
    """ZMQ RFC 32: 5 characters -> 4 bytes, big-endian base 85."""
    out = b""
    for i in range(0, len(s), 5):
        v = 0
        for c in s[i:i + 5]:
            v = v * 85 + Z85.index(c)
        out += v.to_bytes(4, "big")
    return out


def node_id(z85_key):
    return hashlib.blake2b(z85_decode(z85_key), digest_size=32).digest()[:8].hex()


def run(*args):
    return subprocess.run([BIN, "keygen", *args], capture_output=True, text=True, timeout=30)


def fields(out):
    return dict(re.findall(r"^([a-z-]+): (.*)$", out, re.M))


def file_key(path, name):
    m = re.search(name + r'\s*=\s*"([^"]*)"', open(path).read())
    return m.group(1) if m else None


def body(h):
    d = tempfile.mkdtemp(prefix="swisd-keygen-")
    path = os.path.join(d, "node.key")
    r = run("--out", path)
    h.check(r.returncode == 0, f"keygen --out exits 0 (got {r.returncode}: {r.stderr.strip()})")
    f = fields(r.stdout)
    pub, nid = f.get("public-key", ""), f.get("node-id", "")
    h.check(len(pub) == 40 and all(c in Z85 for c in pub), "prints a 40-character Z85 public key")
    h.check(nid == node_id(pub), f"node id {nid} = blake2b-256(public key)[:8] in hex")
    h.check(stat.S_IMODE(os.stat(path + "_secret").st_mode) == 0o600, "the secret file has mode 0600")
    h.check(file_key(path, "public-key") == pub, "the public file holds the printed key")
    h.check(file_key(path, "secret-key") is None, "the public file holds no secret key")
    h.check(file_key(path + "_secret", "public-key") == pub, "the secret file holds the same public key")
    sec = file_key(path + "_secret", "secret-key")
    h.check(sec is not None and len(sec) == 40, "the secret file holds a 40-character secret key")
    h.check(sec not in r.stdout + r.stderr, "the secret key is not printed")

    before = open(path + "_secret").read()
    r = run("--out", path)
    h.check(r.returncode == 1 and "--force" in r.stderr, "a second keygen refuses to overwrite (exit 1)")
    h.check(open(path + "_secret").read() == before, "and leaves the secret file as it was")

    r = run("--show", path)
    g = fields(r.stdout)
    h.check(r.returncode == 0 and g.get("public-key") == pub and g.get("node-id") == nid,
            "--show prints the same public key and node id")

    r = run("--show", path + "_secret")
    h.check(r.returncode == 1 and "without _secret" in r.stderr and sec not in r.stdout + r.stderr,
            "--show PATH_secret: exit 1, asks for the public file, prints no key")

    r = run("--out", path, "--force")
    h.check(r.returncode == 0 and fields(r.stdout).get("public-key") not in ("", pub), "--force makes a new key")
    h.check(stat.S_IMODE(os.stat(path + "_secret").st_mode) == 0o600, "still mode 0600 after --force")

    os.chmod(path + "_secret", 0o644)
    r = run("--show", path)
    h.check(r.returncode == 1 and "too open" in r.stderr, "--show refuses a secret file readable by others")
    os.chmod(path + "_secret", 0o600)
    os.unlink(path + "_secret")
    r = run("--show", path)
    h.check(r.returncode == 0 and "secret-file" not in r.stdout, "--show reads a public file alone")

    r = run("--show", os.path.join(d, "absent.key"))
    h.check(r.returncode == 1 and "no such file" in r.stderr, "--show of a missing key: exit 1, says so")
    r = run("--out", os.path.join(d, "no", "such", "folder.key"))
    h.check(r.returncode == 1 and "cannot create" in r.stderr, "--out into a missing folder: exit 1")
    for bad in ([], ["--out", path, "--show", path], ["--show", path, "--force"], ["--out", path, "extra"],
                ["--bogus"]):
        r = run(*bad)
        h.check(r.returncode == 2, f"usage error {bad}: exit 2 (got {r.returncode})")
    r = run("--help")
    h.check(r.returncode == 0 and "usage: swisd keygen" in r.stdout, "--help")
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


Harness("keygen", verbose=True).run(body)
