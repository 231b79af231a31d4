#!/usr/bin/env python3
"""`swisd imatrix` and `swisd quantize` recipes as processes.

Checks, on the repository's stories260K:
  a) imatrix writes one F32 vector per weight matrix (7 per block, plus the
     tied output = token_embd), each as long as the matrix's rows; values
     finite and positive; the vectors of matrices that share an input are
     equal (attn_q = attn_k = attn_v, ffn_gate = ffn_up: the same activations
     went into them), while different inputs differ; imatrix.n_tokens counts
     the calibration text's tokens plus one BOS per chunk;
  b) quantize q4_K_M gives the documented types (narrow rows fall back:
     64-wide matrices Q5_0, the tied embeddings and the more-bits attn_v
     Q8_0, 172-wide ffn_down F32); with --imatrix the same types and other
     bytes (the same for 1 and 2 threads); the copies load and generate;
  c) refusals: an imatrix entry of the wrong length (exit 1, naming it), a
     missing text (1), bad usage (2), an unknown recipe (2).
usage: test_quant_cli.py [PATH_TO_swisd]   (default $SWISD_BUILD/cli/swisd)
"""
import math
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from gguf_rows import Gguf  # noqa: E402

BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("SWISD_BUILD", "build"), "cli", "swisd")
CALIB = os.path.join(harness.SRC, "bench", "data", "calibration.txt")
h = harness.Harness("quant_cli")
model = harness.model_path()
F32, Q8_0, Q5_0 = 0, 8, 6


def run(*args):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, timeout=300)


def vec(g, name):
    dims, typ, off = g.tensors[name]
    n = dims[0]
    return list(struct.unpack_from(f"<{n}f", g._b, off)), typ, dims


with tempfile.TemporaryDirectory() as tmp:
    imx = os.path.join(tmp, "st.imatrix.gguf")
    r = run("imatrix", model, "--text", CALIB, "-o", imx, "--ctx", "64")
    h.check(r.returncode == 0, f"imatrix runs: {r.stderr[-300:]}")
    src = Gguf(model)
    n_layer = src.kv["llama.block_count"]
    if r.returncode == 0:
        g = Gguf(imx)
        want = {"token_embd.weight"} | {f"blk.{i}.{m}.weight" for i in range(n_layer) for m in
                                        ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")}
        h.check(set(g.tensors) == want, f"one vector per matrix: {sorted(set(g.tensors) ^ want)[:5]}")
        ok_shape = ok_vals = True
        for name in want & set(g.tensors):
            v, typ, dims = vec(g, name)
            ok_shape &= typ == F32 and dims == [src.tensors[name][0][0]]
            ok_vals &= all(math.isfinite(x) and x > 0 for x in v)
        h.check(ok_shape, "each vector F32, as long as its matrix's rows")
        h.check(ok_vals, "values finite and positive")
        same = all(vec(g, f"blk.{i}.attn_q.weight")[0] == vec(g, f"blk.{i}.attn_k.weight")[0] ==
                   vec(g, f"blk.{i}.attn_v.weight")[0] and
                   vec(g, f"blk.{i}.ffn_gate.weight")[0] == vec(g, f"blk.{i}.ffn_up.weight")[0]
                   for i in range(n_layer))
        h.check(same, "matrices with one input get one vector")
        h.check(vec(g, "blk.0.attn_q.weight")[0] != vec(g, "blk.0.attn_output.weight")[0] and
                vec(g, "blk.0.attn_q.weight")[0] != vec(g, "blk.1.attn_q.weight")[0], "different inputs differ")
        n_tok = g.kv.get("imatrix.n_tokens", 0)
        h.check(g.kv.get("imatrix.chunk_size") == 64 and n_tok > 100, f"n_tokens {n_tok}, chunk 64")

    plain, weighted = os.path.join(tmp, "q.gguf"), os.path.join(tmp, "qi.gguf")
    r1 = run("quantize", model, plain, "q4_K_M")
    r2 = run("quantize", model, weighted, "q4_K_M", "--imatrix", imx)
    one = os.path.join(tmp, "qi1.gguf")
    r3 = run("quantize", model, one, "q4_K_M", "--imatrix", imx, "-t", "1")
    h.check(r3.returncode == 0 and r2.returncode == 0 and open(one, "rb").read() == open(weighted, "rb").read(),
            "--imatrix: the same bytes with 1 and 2 threads")
    h.check(r1.returncode == 0 and r2.returncode == 0, f"quantize q4_K_M: {r1.stderr[-200:]} {r2.stderr[-200:]}")
    if r1.returncode == 0 and r2.returncode == 0:
        a, b = Gguf(plain), Gguf(weighted)
        types = {n: t[1] for n, t in a.tensors.items()}
        h.check(types == {n: t[1] for n, t in b.tensors.items()}, "the same types with --imatrix")
        h.check(a.kv.get("general.file_type") == 15, "general.file_type 15 (Q4_K_M)")
        exp_ok = types["token_embd.weight"] == Q8_0 and types["blk.0.attn_q.weight"] == Q5_0 and \
            types[f"blk.{n_layer - 1}.attn_v.weight"] == Q8_0 and types["blk.1.attn_v.weight"] == Q5_0 and \
            types["blk.0.ffn_down.weight"] == F32 and types["blk.0.attn_norm.weight"] == F32
        h.check(exp_ok, f"documented fallbacks: {types}")
        dq = a.tensors["blk.0.attn_q.weight"][2]
        h.check(a._b[dq:dq + 2816] != b._b[b.tensors["blk.0.attn_q.weight"][2]:][:2816],
                "the importance matrix changes the rounding")
        for path in (plain, weighted):
            r = run("run", "-m", path, "-p", "Once upon a time", "-n", "8")
            h.check(r.returncode == 0 and len(r.stdout.strip()) > len("Once upon a time"),
                    f"{os.path.basename(path)} generates: {r.stdout[-100:]!r} {r.stderr[-200:]}")

    # c) refusals
    bad = os.path.join(tmp, "bad.imatrix.gguf")
    r = run("quantize", model, bad + ".unused", "q4_K_M", "--imatrix", model)  # a model is not an imatrix
    h.check(r.returncode == 1 and "token_embd.weight" in r.stderr, f"wrong-length entry named: {r.stderr[-200:]}")
    r = run("imatrix", model, "--text", os.path.join(tmp, "missing.txt"), "-o", bad)
    h.check(r.returncode == 1 and "missing.txt" in r.stderr, f"missing text: {r.stderr[-200:]}")
    r = run("imatrix", model, "-o", bad)
    h.check(r.returncode == 2, "imatrix without --text: usage")
    r = run("quantize", model, bad, "q4_K_S")
    h.check(r.returncode == 2 and "q4_K_S" in r.stderr, f"unknown recipe: {r.stderr[-200:]}")

sys.exit(h.finish())
