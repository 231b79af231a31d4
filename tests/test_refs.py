#!/usr/bin/env python3
"""Greedy texts of `swisd run` against tests/data/stories260K_greedy.tsv, and
the repository's default model against its stated checksums and its source.

The reference texts come from an independent engine (tests/data/README.md).
Checked:
  a) models/SHA256SUMS holds for every file it lists (models/README.md);
  b) every row from models/stories260K.gguf, with 1 and 2 threads, after
     stripping leading and trailing white space, as the README says;
  c) with the optional llama2.c checkpoint ($SWISD_TEST_DATA): `swisd convert`
     of it and models/tok512.bin gives models/stories260K.gguf byte for byte,
     the command models/README.md documents;
  d) with the optional independent f32 repack ($SWISD_TEST_DATA), the file the
     texts were produced from: every row from it too.
usage: test_refs.py SWISD_BINARY
"""
import hashlib
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

swisd = sys.argv[1]
rows = harness.greedy_refs()
models_dir = os.path.join(harness.SRC, "models")

failed = 0
checked = 0


def fail(what):
    global failed
    failed += 1
    print("FAIL:", what, flush=True)


# a) checksums of the shipped files
with open(os.path.join(models_dir, "SHA256SUMS"), encoding="utf-8") as f:
    sums = [line.split() for line in f if line.strip()]
for want, name in sums:
    with open(os.path.join(models_dir, name), "rb") as f:
        got = hashlib.sha256(f.read()).hexdigest()
    checked += 1
    if got != want:
        fail(f"models/{name}: sha256 {got}, models/SHA256SUMS says {want}")
if not any(name == "stories260K.gguf" for _, name in sums):
    fail("models/SHA256SUMS does not list stories260K.gguf")


def check_rows(model):
    global checked
    for threads in ("1", "2"):
        for prompt, want in rows:
            r = subprocess.run([swisd, "run", "-m", model, "-p", prompt, "-n", "100", "--temp", "0",
                                "-t", threads], capture_output=True, timeout=120)
            got = r.stdout.decode("utf-8", errors="replace")
            checked += 1
            if r.returncode != 0 or got.strip() != want.strip():
                fail(f"{os.path.basename(model)} -t {threads} prompt {prompt!r}\n  want {want.strip()!r}\n"
                     f"  got  {got.strip()!r}\n  stderr {r.stderr.decode()[-400:]}")
            elif not got.startswith(prompt):
                fail(f"stdout does not start with the prompt exactly: {got[:60]!r}")


# b) the default model
check_rows(harness.model_path())

# c) the default model is what `swisd convert` makes of the published checkpoint
ckpt = harness.test_data("models/stories260K/stories260K.bin",
                         "converting the llama2.c checkpoint again and comparing with models/stories260K.gguf")
if ckpt is None and harness.in_ci():
    failed += 1
if ckpt:
    with tempfile.TemporaryDirectory() as tmp:
        converted = os.path.join(tmp, "stories260K.gguf")
        r = subprocess.run([swisd, "convert", ckpt, os.path.join(models_dir, "tok512.bin"), converted,
                            "--name", "stories260K"], capture_output=True, text=True, timeout=120)
        checked += 1
        if r.returncode != 0:
            fail(f"swisd convert: {r.stderr}")
        else:
            with open(converted, "rb") as a, open(harness.model_path(), "rb") as b:
                if a.read() != b.read():
                    fail("swisd convert of stories260K.bin differs from models/stories260K.gguf")

# d) the file the reference texts were produced from
repack = harness.test_data("models/stories260K/stories260K.f32.gguf",
                           "the reference rows on the independent f32 repack they were produced from")
if repack is None and harness.in_ci():
    failed += 1
if repack:
    check_rows(repack)

print(f"refs: {checked} checks, {failed} failed")
sys.exit(1 if failed or checked == 0 else 0)
