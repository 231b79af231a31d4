#!/usr/bin/env python3
"""What audits cost and catch (issue 12; docs/security.md, "Verification").

honest: a swarm of stories260K with three hosts for each of two layer
ranges, each host different: 1 or 2 threads, the AVX-512, AVX2 and scalar
kernels (SWISD_KERNELS), f32, f16 and q8_0 inbound links (--codec). The
gateway audits every step (--audit-trust huge), so every request of every
host is compared with another host's computation. Prints the requests, the
audit chunks that agreed, the stages wrongly caught (false accusations) and
the largest sketch distance among agreeing comparisons (the honest noise the
threshold must clear).

liars: for each way of lying (tests/liar_stage.c), SEEDS times: a fresh
liar key joins a swarm where it is the only host taking work for layers 0-2
(an honest stage holds 3-4), beside an operator audit stage per range
(--audit, its key in --trusted-keys); greedy requests with known answers run
until the gateway names the liar or MAX requests passed. Per
seed: the liar's forward requests until it was caught (its own count at
exit: probes and audit chunks it served included), and the delivered texts
that differ from `swisd run`'s.

cost: decode tokens/s and the swarm's CPU per generated token with audits at
the default trust settings after the stages earned trust (steady state),
and with --audit-hold all (every step audited, text held until verified),
against the same swarm with audits made rare (--audit-trust 1
--audit-floor 1e-6), interleaved.

usage: bench_audit.py BUILD_DIR [--part honest|liars|cost|all] [--requests 1000] [--seeds 20] [--max 300]
                      [--only NAME] [--hold untrusted|all]
"""
import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from harness import (Bins, Harness, cpu_seconds, key_args, lie_models, model_path, node_key, run_local,  # noqa: E402
                     start_broker,
                     start_gateway, start_stage, wait_until)

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--part", default="all")
ap.add_argument("--requests", type=int, default=1000)
ap.add_argument("--seeds", type=int, default=20)
ap.add_argument("--max", type=int, default=300)
ap.add_argument("--only", default="", help="liars: only the ways of lying whose name starts with this")
ap.add_argument("--hold", default="untrusted", choices=("untrusted", "all"),
                help="liars: the gateway's --audit-hold (cost always measures both)")
a = ap.parse_args()
bins = Bins(a.build)
liar_bin = os.path.join(a.build, "tests", "liar_stage")
h = Harness("bench-audit")
PROMPTS = ["Once upon a time", "Lily and Tom", "The little dog", "One day, a bird", "Sam had a red ball",
           "The sun was", "A girl named Mia", "Tim and his mom", "In the park", "The cat sat"]


def api(port, path="/api/swarm"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def gen(rpc, prompt, n, *extra):
    r = subprocess.run([bins.swisd, "generate", "--gateway", rpc, "-p", prompt, "-n", str(n)] + list(extra),
                       capture_output=True, text=True, errors="replace", timeout=120)
    return r.returncode, r.stdout, r.stderr


def honest():
    _, ep = start_broker(h, bins, "broker-h")
    variants = [("1", None, None), ("2", "avx2", "q8_0"), ("1", "scalar", "f16")]
    for lo, hi in ((0, 2), (3, 4)):
        for i, (threads, kernels, codec) in enumerate(variants):
            env = dict(os.environ)
            if kernels:
                env["SWISD_KERNELS"] = kernels
            argv = [bins.stage, "--broker", ep, "--model", model_path(), "--layers", f"{lo}-{hi}", "--threads",
                    threads] + key_args(h, bins, f"h{lo}-{i}") + (["--codec", codec] if codec else [])
            h.start(f"h{lo}-{i}", argv, ready="swisd-stage:", env=env)
    _, rpc, port = start_gateway(h, bins, "gateway-h", ep, "--audit-trust", "1000000", "--max-sessions", "64",
                                 http=True)
    wait_until(lambda: api(port)["servable"], 30, 0.3)
    rng = random.Random(1)
    t0 = time.monotonic()
    done = 0
    for i in range(a.requests):
        rc, _, err = gen(rpc, rng.choice(PROMPTS), rng.choice([8, 16, 24]), "--temp", "0.8", "--seed", str(i))
        done += rc == 0
    au = api(port)["audit"]
    print(f"honest: {done} of {a.requests} requests completed in {time.monotonic() - t0:.0f} s; audit chunks "
          f"agreed {au['passed']}, audits started {au['started']}, stages caught {au['failed']} "
          f"(false accusations), chain breaks {au['chain_breaks']}, largest agreeing distance "
          f"{au['max_agreeing_distance']:.3g} (threshold {au['threshold']:.3g})", flush=True)


def liars():
    model = model_path()
    synth, q4 = lie_models(h, bins, model)
    refs = {p: run_local(bins, p, 40) for p in PROMPTS}
    trusted = os.path.join(h.logdir, "operator")
    os.makedirs(trusted, exist_ok=True)
    _, ep = start_broker(h, bins, "broker-l")
    start_stage(h, bins, "l3", ep, "3-4")  # layers 0-2: only the liar takes user work (and the audit stage audits)
    for lo, hi in ((0, 2), (3, 4)):
        k = node_key(h, bins, f"audit{lo}")
        subprocess.run(["cp", k, trusted], check=True)
        start_stage(h, bins, f"audit{lo}", ep, f"{lo}-{hi}", "--audit")
    gw, rpc, port = start_gateway(h, bins, "gateway-l", ep, "--trusted-keys", trusted, "--audit-hold", a.hold,
                                  http=True)
    wait_until(lambda: api(port)["servable"], 30, 0.3)
    modes = [("noise", ["--lie", "noise"]), ("identity", ["--lie", "identity"]),
             ("other weights", ["--lie", "weights:" + synth]), ("lower precision (q4_0)", ["--lie", "precision:" + q4]),
             ("noise on 10%", ["--lie", "noise", "--lie-rate", "0.1"]),
             ("noise after 40 requests", ["--lie", "noise", "--lie-after", "40"]),
             ("noise after 1000 requests (trusted by then)", ["--lie", "noise", "--lie-after", "1000"])]
    if a.only:
        modes = [m for m in modes if m[0].startswith(a.only)]
    liar_ids = set()
    print("| way of lying | requests until caught, median | worst | caught | delivered texts that differ |")
    print("|---|---|---|---|---|")
    for i_mode, (name, args) in enumerate(modes):
        until, differ, caught = [], 0, 0
        for seed in range(1, a.seeds + 1):
            who = f"liar-{i_mode}-{seed}"  # a key per mode and seed: a caught key is banned at every broker
            argv = [liar_bin, "--broker", ep, "--model", model, "--layers", "0-2", "--threads", "1",
                    "--lie-seed", str(seed)] + key_args(h, bins, who) + args
            p, rest = h.start(who, argv, ready="liar_stage:")
            lid = rest.split()[0]
            liar_ids.add(lid)
            wait_until(lambda: any(s["node_id"] == lid for s in api(port)["stages"]), 20, 0.2)
            got = False
            for r in range(a.max):
                prompt = PROMPTS[(r + seed) % len(PROMPTS)]
                rc, out, _ = gen(rpc, prompt, 40, "--temp", "0")
                if rc == 0 and out != refs[prompt]:
                    differ += 1
                if lid in api(port)["audit"]["caught"]:
                    got = True
                    break
            h.stop(p)
            m = p.wait_match(r"liar_stage: (\d+) requests, (\d+) lies", 5, "out")
            if got and m:
                caught += 1
                until.append(int(m.group(1)))
        med = statistics.median(until) if until else float("nan")
        print(f"| {name} | {med:.0f} | {max(until) if until else '-'} | {caught}/{a.seeds} | {differ} |", flush=True)
    wrong = [c for c in api(port)["audit"]["caught"] if c not in liar_ids]
    print(f"liars: honest stages caught (false accusations): {len(wrong)} {wrong}", flush=True)




def cost():
    swarms = {}
    for tag, extra in (("audited", []), ("hold-all", ["--audit-hold", "all"]),
                       ("rare", ["--audit-trust", "1", "--audit-floor", "0.000001"])):
        bp, ep = start_broker(h, bins, f"broker-{tag}")
        procs = [bp]
        for lo, hi in ((0, 2), (3, 4)):
            for i in range(2):
                procs.append(start_stage(h, bins, f"c{tag}{lo}-{i}", ep, f"{lo}-{hi}")[0])
        gp, rpc, port = start_gateway(h, bins, f"gateway-{tag}", ep, *extra, http=True)
        procs.append(gp)
        wait_until(lambda: api(port)["servable"], 30, 0.3)
        for i in range(60):  # earn trust: every stage gets past --audit-trust (20) verified steps
            gen(rpc, PROMPTS[i % len(PROMPTS)], 24, "--temp", "0")
        swarms[tag] = (rpc, [p.p.pid for p in procs], port)
    tps = {t: [] for t in swarms}
    cpu = {t: 0.0 for t in swarms}
    for i in range(15):
        for tag, (rpc, pids, _) in swarms.items():
            c0 = cpu_seconds(pids)
            rc, _, err = gen(rpc, PROMPTS[i % len(PROMPTS)], 64, "--temp", "0", "--ignore-eos")
            cpu[tag] += cpu_seconds(pids) - c0
            m = re.search(r"decode ([\d.]+) tokens/s", err)
            if rc == 0 and m:
                tps[tag].append(float(m.group(1)))
    for tag in swarms:
        au = api(swarms[tag][2])["audit"]
        print(f"cost: {tag}: decode {statistics.median(tps[tag]):.1f} tokens/s (median of {len(tps[tag])}), "
              f"CPU {1000 * cpu[tag] / 15 / 64:.2f} ms per generated token, audits started {au['started']}",
              flush=True)
    print(f"cost: audited / rare CPU per token: {100 * (cpu['audited'] / cpu['rare'] - 1):+.1f}%; "
          f"hold-all / rare: {100 * (cpu['hold-all'] / cpu['rare'] - 1):+.1f}%")


def main(_h):
    if a.part in ("honest", "all"):
        honest()
    if a.part in ("liars", "all"):
        liars()
    if a.part in ("cost", "all"):
        cost()


h.run(main)
