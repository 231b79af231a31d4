#!/usr/bin/env python3
"""`swisd synth` writes the published shapes of the families it knows.

For a few shapes (kept to ones that make in seconds) with --layers 2: the
metadata keys and tensor shapes of one block against the model's published
config.json values, written out here (not taken from swisd), and `swisd run`
loads the file and generates.
usage: test_synth.py SWISD
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_rows import Gguf  # noqa: E402

swisd = sys.argv[1]
failed = checked = 0

# shape: (arch, {key suffix: value}, {tensor of block 1: dims})
CASES = {
    # Qwen3-0.6B: hidden 1024, 16 heads of 128 (q width 2048), 8 KV heads, FFN 3072, tied
    "qwen3-0.6b": ("qwen3", {"embedding_length": 1024, "attention.head_count": 16, "attention.head_count_kv": 8,
                             "attention.key_length": 128, "feed_forward_length": 3072},
                   {"attn_q.weight": [1024, 2048], "attn_k.weight": [1024, 1024], "attn_output.weight": [2048, 1024],
                    "attn_q_norm.weight": [128], "attn_k_norm.weight": [128], "ffn_up.weight": [1024, 3072]}),
    # Phi-3-mini-4k: hidden 3072, 32 heads, fused QKV 3 x 3072, fused gate|up 2 x 8192, window 2047
    "phi-3-mini": ("phi3", {"embedding_length": 3072, "attention.head_count": 32, "feed_forward_length": 8192,
                            "attention.sliding_window": 2047},
                   {"attn_qkv.weight": [3072, 9216], "ffn_up.weight": [3072, 16384], "ffn_down.weight": [8192, 3072]}),
}

with tempfile.TemporaryDirectory() as tmp:
    for shape, (arch, keys, tensors) in CASES.items():
        path = os.path.join(tmp, shape + ".gguf")
        r = subprocess.run([swisd, "synth", shape, "q8_0", path, "--layers", "2"], capture_output=True, text=True,
                           timeout=300)
        checked += 1
        if r.returncode != 0:
            failed += 1
            print(f"FAIL: swisd synth {shape}: {r.stderr[-300:]}")
            continue
        g = Gguf(path)
        for k, want in [("general.architecture", arch)] + [(f"{arch}.{k}", v) for k, v in keys.items()]:
            checked += 1
            if g.kv.get(k) != want:
                failed += 1
                print(f"FAIL: {shape}: {k} = {g.kv.get(k)!r}, want {want!r}")
        for t, dims in tensors.items():
            checked += 1
            got = g.tensors.get("blk.1." + t, (None,))[0]
            if got != dims:
                failed += 1
                print(f"FAIL: {shape}: blk.1.{t} has dims {got}, want {dims}")
        r = subprocess.run([swisd, "run", "-m", path, "-p", "hello", "-n", "3", "--temp", "0", "--ignore-eos"],
                           capture_output=True, timeout=300)
        checked += 1
        if r.returncode != 0 or not r.stdout.startswith(b"hello") or len(r.stdout) <= 5:
            failed += 1
            print(f"FAIL: swisd run on synth {shape}: {r.stderr.decode(errors='replace')[-300:]}")

print(f"synth: {checked} checks, {failed} failed")
sys.exit(1 if failed else 0)
