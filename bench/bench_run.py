#!/usr/bin/env python3
"""Prefill and decode speed of `swisd run` (single process).

For each model and thread count: a prompt of exactly PROMPT_TOKENS tokens
(prefill), then DECODE_TOKENS generated with --ignore-eos (decode), greedy.
Reads the timings `swisd run` prints to stderr; repeats REPEAT times and keeps
the best (least disturbed) run. Prints a Markdown table.

usage: bench_run.py SWISD MODEL.gguf[=LABEL] ... [--threads 1,2] [--repeat 3]
       [--prompt-tokens 128] [--decode-tokens 64]
Models that do not exist are made first when named as synth:SHAPE:TYPE:PATH.
"""
import argparse
import os
import platform
import re
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("swisd")
ap.add_argument("models", nargs="+")
ap.add_argument("--threads", default="1,2")
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--prompt-tokens", type=int, default=128)
ap.add_argument("--decode-tokens", type=int, default=64)
a = ap.parse_args()

RX = re.compile(r"prefill (\d+) tokens in ([\d.]+) ms .*decode (\d+) forward passes in ([\d.]+) ms")


def prompt_of(n):
    # With SentencePiece vocabularies one " w" word plus BOS is close to one
    # token each; the exact count is whatever `swisd run` reports.
    return " ".join(["the"] * max(1, n - 1))


rows = []
for spec in a.models:
    label = None
    if spec.startswith("synth:"):
        _, shape, typ, path = spec.split(":", 3)
        if not os.path.exists(path):
            subprocess.run([a.swisd, "synth", shape, typ, path], check=True)
        spec, label = path, f"{shape} {typ} (random weights)"
    if "=" in spec:
        spec, label = spec.split("=", 1)
    label = label or os.path.basename(spec)
    for t in a.threads.split(","):
        best = None
        for _ in range(a.repeat):
            r = subprocess.run([a.swisd, "run", "-m", spec, "-p", prompt_of(a.prompt_tokens), "-n",
                                str(a.decode_tokens + 1), "--ignore-eos", "--temp", "0", "-t", t],
                               capture_output=True, text=True)
            m = RX.search(r.stderr)
            if r.returncode != 0 or not m:
                sys.exit(f"bench_run: {spec}: {r.stderr[-500:]}")
            npf, tpf, ndc, tdc = int(m[1]), float(m[2]), int(m[3]), float(m[4])
            res = (npf / tpf * 1000, ndc / tdc * 1000, npf, ndc)
            best = res if best is None else (max(best[0], res[0]), max(best[1], res[1]), npf, ndc)
        rows.append((label, t, best))
        print(f"{label} threads {t}: prefill {best[0]:.1f} tokens/s ({best[2]} tokens), "
              f"decode {best[1]:.1f} tokens/s ({best[3]} tokens)", file=sys.stderr)

cpu = "unknown"
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except Exception:
    pass
print(f"Machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
      f"date {time.strftime('%Y-%m-%d')}\n")
print("| model | threads | prefill tokens/s | decode tokens/s |")
print("|---|---|---|---|")
for label, t, b in rows:
    print(f"| {label} | {t} | {b[0]:.1f} ({b[2]} tokens) | {b[1]:.1f} ({b[3]} tokens) |")
