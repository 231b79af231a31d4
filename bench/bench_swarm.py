#!/usr/bin/env python3
"""Decode speed of a swarm against `swisd run` on the same model.

Starts one broker, STAGES stages splitting the model's layers evenly, and a
gateway, all on loopback (optionally behind swisd-link with a one-way delay
per hop), then runs `swisd generate --ignore-eos` and reads the gateway's
summary (decode tokens/s, time to first token). The single-process baseline
is `swisd run` with the same thread count. Repeats and keeps the best run of
each. Prints a Markdown table.

usage: bench_swarm.py BUILD_DIR MODEL.gguf [--stages 3] [--threads 2] [--tokens 64]
       [--repeat 3] [--codec f32] [--delay-ms 0] [--insecure]
Every link is CURVE-encrypted (each process gets a key) unless --insecure.
"""
import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from harness import Bins, Harness, start_broker, start_gateway, start_link, start_stage  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("model")
ap.add_argument("--stages", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--tokens", type=int, default=64)
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--codec", default="f32")
ap.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay on every link (swisd-link)")
ap.add_argument("--draft", default=None, help="speculative decoding: the gateway's draft model")
ap.add_argument("--no-local", action="store_true", help="skip the single-process baseline")
ap.add_argument("--insecure", action="store_true", help="plain TCP without keys (default: CURVE on every link)")
a = ap.parse_args()

bins = Bins(a.build)
swisd = bins.swisd
h = Harness("bench-swarm")
h.insecure = a.insecure


def link(target):
    """A swisd-link proxy in front of target with the configured delay."""
    if a.delay_ms <= 0:
        return target
    return start_link(h, "link", bins, target, "--delay", a.delay_ms)[1]


def n_layers():
    r = subprocess.run([swisd, "inspect", a.model], capture_output=True, text=True, errors="replace")
    m = re.search(r"\.block_count\s*(?:\S+\s+)?=?\s*(\d+)", r.stdout)
    return int(m.group(1)) if m else None


prompt = "Once upon a time"
best_local = 0.0
for _ in range(0 if a.no_local else a.repeat):
    r = subprocess.run([swisd, "run", "-m", a.model, "-p", prompt, "-n", str(a.tokens + 1), "--ignore-eos", "--temp",
                        "0", "-t", str(a.threads)], capture_output=True, text=True, errors="replace")
    m = re.search(r"decode \d+ forward passes in [\d.]+ ms \(([\d.]+) tokens/s\)", r.stderr)
    if m:
        best_local = max(best_local, float(m.group(1)))

L = n_layers()
if not L:
    sys.exit("bench_swarm: cannot read the model's block count")
bounds = [round(i * L / a.stages) for i in range(a.stages + 1)]
best_swarm, best_ttft, best_acc = 0.0, None, None
try:
    _, broker = start_broker(h, bins, "broker", heartbeat_ms=None, expiry_ms=None)
    for i in range(a.stages):
        start_stage(h, bins, f"stage{i}", link(broker), f"{bounds[i]}-{bounds[i + 1] - 1}", model=a.model,
                    threads=a.threads, timeout=120)
    _, rpc, _ = start_gateway(h, bins, "gateway", link(broker), "--threads", a.threads, "--codec", a.codec,
                              *(["--draft", a.draft] if a.draft else []), model=a.model, timeout=120)
    for _ in range(a.repeat + 1):  # the first run also waits for the swarm to assemble
        r = subprocess.run([swisd, "generate", "--gateway", rpc, "-p", prompt, "-n", str(a.tokens + 1),
                            "--ignore-eos", "--temp", "0"], capture_output=True, text=True, errors="replace", timeout=600)
        m = re.search(r"time to first token ([\d.]+) ms \| decode ([\d.]+) tokens/s", r.stderr)
        acc = re.search(r"draft acceptance ([\d.]+)%", r.stderr)
        if r.returncode == 0 and m:
            if float(m.group(2)) > best_swarm:
                best_swarm, best_ttft = float(m.group(2)), float(m.group(1))
                best_acc = float(acc.group(1)) if acc else None
finally:
    h.stop_all()

if a.draft:
    print(f"| {os.path.basename(a.model)} | {os.path.basename(a.draft)} | {4 * a.delay_ms:g} | {best_swarm:.1f} | "
          f"{best_acc if best_acc is not None else 0:.1f}% |")
else:
    print(f"| {os.path.basename(a.model)} | {a.stages} stages, {a.threads} threads each, codec {a.codec}, "
          f"{a.delay_ms:g} ms one-way per link | {best_local:.1f} | {best_swarm:.1f} | "
          f"{100 * best_swarm / best_local if best_local else 0:.0f}% | {best_ttft if best_ttft is not None else 0:.1f} |")
