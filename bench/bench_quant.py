#!/usr/bin/env python3
"""Quantization quality: KL divergence and top-1 agreement against the source
model, for each recipe with and without an importance matrix.

usage: bench_quant.py BUILD_DIR MODEL.gguf [MODEL.gguf ...] [--out DIR]

For each MODEL: `swisd imatrix` on bench/data/calibration.txt, then
`swisd quantize` to q8_0, q6_K, q5_K_M, q4_K_M, each plainly, with --refine
(the importance-weighted search with every weight 1) and with --imatrix; then
build/bench/bench_quant_kl MODEL bench/data/eval.txt <copies> (a different
text from the calibration one). Prints bench_quant_kl's lines and a
markdown table. Numbers only.
"""
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
args = [a for a in sys.argv[1:]]
out_dir = "/tmp/swisd-quant"
if "--out" in args:
    i = args.index("--out")
    out_dir = args[i + 1]
    del args[i:i + 2]
if len(args) < 2:
    sys.exit(__doc__)
build, models = args[0], args[1:]
swisd = os.path.join(build, "cli", "swisd")
kl = os.path.join(build, "bench", "bench_quant_kl")
calib = os.path.join(here, "data", "calibration.txt")
evalt = os.path.join(here, "data", "eval.txt")
os.makedirs(out_dir, exist_ok=True)
recipes = ["q8_0", "q6_K", "q5_K_M", "q4_K_M"]
modes = [("plain", []), ("refine", ["--refine"]), ("imatrix", None)]

for model in models:
    stem = os.path.basename(model).removesuffix(".gguf")
    imx = os.path.join(out_dir, stem + ".imatrix.gguf")
    subprocess.run([swisd, "imatrix", model, "--text", calib, "-o", imx], check=True)
    files = []
    for r in recipes:
        for mode, extra in modes:
            path = os.path.join(out_dir, f"{stem}-{r}-{mode}.gguf")
            extra = ["--imatrix", imx] if extra is None else extra
            subprocess.run([swisd, "quantize", model, path, r] + extra, check=True, stderr=subprocess.DEVNULL)
            files.append((r, mode, path))
    res = subprocess.run([kl, model, evalt] + [p for _, _, p in files], check=True, capture_output=True, text=True)
    print(res.stdout)
    rows = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0].endswith(".gguf"):
            rows[parts[0]] = parts[1:]
    print(f"| {stem} | KiB | mean KL plain | refine | imatrix | top-1 plain | refine | imatrix |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in recipes:
        cells = [rows.get(f"{stem}-{r}-{m}.gguf", ["?"] * 4) for m, _ in modes]
        print(f"| {r} | {cells[0][0]} | " + " | ".join(c[1] for c in cells) + " | " +
              " | ".join(c[3] for c in cells) + " |")
    print()
