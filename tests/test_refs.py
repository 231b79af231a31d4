#!/usr/bin/env python3
"""Greedy texts of `swisd run` against ../shared/refs/stories260K_greedy.tsv.

The reference texts come from an independent implementation on the same GGUF
file (see ../shared/refs/README.md). Each row is checked from the shared GGUF
and from our own conversion of the llama2.c checkpoint (`swisd convert`),
after stripping leading and trailing white space as the README says.
usage: test_refs.py SWISD_BINARY
"""
import json
import os
import subprocess
import sys
import tempfile

swisd = sys.argv[1]
models = os.environ.get("SWISD_SHARED_MODELS", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models"))
refs = os.environ.get("SWISD_SHARED_REFS", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "refs"))

rows = []
with open(os.path.join(refs, "stories260K_greedy.tsv"), encoding="utf-8") as f:
    for line in f:
        if line.startswith("#") or not line.strip():
            continue
        prompt, text = line.rstrip("\n").split("\t", 1)
        rows.append((prompt, json.loads(text)))
assert rows, "no reference rows found"

failed = 0
checked = 0
with tempfile.TemporaryDirectory() as tmp:
    converted = os.path.join(tmp, "stories260K.converted.gguf")
    st = os.path.join(models, "stories260K")
    r = subprocess.run([swisd, "convert", os.path.join(st, "stories260K.bin"), os.path.join(st, "tok512.bin"),
                        converted], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        print("FAIL: swisd convert:", r.stderr)
        failed += 1
    for model in (os.path.join(st, "stories260K.f32.gguf"), converted):
        if not os.path.exists(model):
            continue
        for threads in ("1", "2"):
            for prompt, want in rows:
                r = subprocess.run([swisd, "run", "-m", model, "-p", prompt, "-n", "100", "--temp", "0",
                                    "-t", threads], capture_output=True, timeout=120)
                got = r.stdout.decode("utf-8", errors="replace")
                checked += 1
                if r.returncode != 0 or got.strip() != want.strip():
                    failed += 1
                    print(f"FAIL: {os.path.basename(model)} -t {threads} prompt {prompt!r}\n  want {want.strip()!r}\n"
                          f"  got  {got.strip()!r}\n  stderr {r.stderr.decode()[-400:]}")
                elif not got.startswith(prompt):
                    failed += 1
                    print(f"FAIL: stdout does not start with the prompt exactly: {got[:60]!r}")
print(f"refs: {checked} runs checked, {failed} failed")
sys.exit(1 if failed or checked == 0 else 0)
