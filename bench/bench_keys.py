#!/usr/bin/env python3
"""What keys cost: decode speed through a swarm with CURVE on every link and
sealed activations (docs/security.md: sealing is on whenever nodes have keys)
against the same swarm with --insecure (neither), and the handshake time of a
new node. Sealing alone is measured by bench/bench_seal.c.

Starts four swarms on loopback side by side (one broker, STAGES stages
splitting the model's layers evenly, a gateway; two with keys, two with
--insecure, started keyed, insecure, insecure, keyed, because a process
started earlier can run measurably slower), then alternates `swisd generate
--ignore-eos` runs between them (interleaved, so load from elsewhere hits
all alike; the order reversed every other round) and keeps the median
decode tokens/s of each kind. Time added per broker hop: the difference of
the per-token times divided by the broker hops of one token (STAGES + 1
messages cross the broker per decode step). Handshake: tests/broker_peer
started against each broker, time from the process's start to its
"registered" event (the process start is in both; the difference is the
CURVE handshake and ZAP), median of N.

CPU per run: the user + system time of every process of the swarm (broker,
stages, gateway, all their threads; from /proc/PID/stat) spent during each
generation, summed over the runs of that swarm and divided by their number.
Unlike tokens/s it does not depend on what else the machine runs, so it
tells what the keys cost in work (CURVE's encryption in the ZeroMQ I/O
threads, sealing in the stages and the gateway) apart from the scheduling
delays that a loaded 2-core machine adds to the critical path.

usage: bench_keys.py BUILD_DIR MODEL.gguf [--stages 3] [--threads 1] [--tokens 64] [--repeat 7] [--joins 15]
                     [--rounds 1]
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from harness import Bins, Harness, cpu_seconds, start_broker, start_gateway, start_stage, wait_servable  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("model")
ap.add_argument("--stages", type=int, default=3)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--tokens", type=int, default=64)
ap.add_argument("--repeat", type=int, default=7)
ap.add_argument("--joins", type=int, default=15)
ap.add_argument("--rounds", type=int, default=1, help="fresh sets of four swarms, one after another")
ap.add_argument("--perf", default="", help="a folder: profile every swarm's processes with perf record during "
                "its runs and print where each kind's CPU went, by library")
a = ap.parse_args()

bins = Bins(a.build)
peer_bin = os.path.join(a.build, "tests", "broker_peer")
h = Harness("bench-keys")
prompt = "Once upon a time"


def n_layers():
    r = subprocess.run([bins.swisd, "inspect", a.model], capture_output=True, text=True, errors="replace")
    m = re.search(r"\.block_count\s*(?:\S+\s+)?=?\s*(\d+)", r.stdout)
    return int(m.group(1)) if m else None


def swarm(tag, insecure):
    """Starts one swarm; returns (broker endpoint, RPC endpoint, its pids)."""
    h.insecure = insecure
    bp, broker = start_broker(h, bins, f"broker-{tag}", heartbeat_ms=None, expiry_ms=None)
    procs = [bp]
    for i in range(a.stages):
        procs.append(start_stage(h, bins, f"stage{i}-{tag}", broker, f"{bounds[i]}-{bounds[i + 1] - 1}",
                                 model=a.model, threads=a.threads, timeout=120)[0])
    gp, rpc, _ = start_gateway(h, bins, f"gateway-{tag}", broker, "--threads", a.threads, model=a.model, timeout=120)
    procs.append(gp)
    if not wait_servable(bins, rpc, 60):
        sys.exit(f"bench_keys: the {tag} swarm never became servable")
    return broker, rpc, [p.p.pid for p in procs]




def decode(rpc):
    r = subprocess.run([bins.swisd, "generate", "--gateway", rpc, "-p", prompt, "-n", str(a.tokens + 1),
                        "--ignore-eos", "--temp", "0"], capture_output=True, text=True, errors="replace", timeout=600)
    m = re.search(r"decode ([\d.]+) tokens/s", r.stderr)
    return float(m.group(1)) if r.returncode == 0 and m else None


def join_ms(broker, i, tag):
    t0 = time.monotonic()
    p, _ = h.start(f"join-{tag}-{i}", [peer_bin, "--broker", broker, "--role", "stage", "--model", "m1",
                                       "--layers", "0-1"] + (["--key", key] if "#" in broker else []), stdin=True)
    ok = p.wait_line('"ev":"registered"', 20) is not None
    dt = (time.monotonic() - t0) * 1000
    h.stop(p)
    return dt if ok else None


L = n_layers()
if not L:
    sys.exit("bench_keys: cannot read the model's block count")
bounds = [round(i * L / a.stages) for i in range(a.stages + 1)]
sec, ins = [], []
cpu = {"curve": 0.0, "plain": 0.0}
pairs = []  # keyed / insecure of back-to-back runs: robust to load that drifts during the bench
js, ji = [], []
PERF_HZ = 2999
dso_samples = {"curve": {}, "plain": {}}  # --perf: samples by library, per kind of swarm
for rnd in range(a.rounds):
    try:
        # Two swarms of each kind, started keyed, insecure, insecure, keyed, and fresh ones every round:
        # two processes doing the same work can differ by 15-40% in CPU (where their memory landed; the
        # first started was often the slowest), which one swarm of each kind charged to the keys.
        swarms = []
        for i, (tag, insecure) in enumerate((("curve", False), ("plain", True), ("plain", True), ("curve", False))):
            b, rpc, pids = swarm(f"{tag}{i}r{rnd}", insecure)
            swarms.append((tag, b, rpc, pids))
        h.insecure = False
        sec_broker = next(b for t, b, _, _ in swarms if t == "curve")
        ins_broker = next(b for t, b, _, _ in swarms if t == "plain")
        for _, _, rpc, _ in swarms:
            decode(rpc)  # warm each
        perfs = []
        if a.perf:
            os.makedirs(a.perf, exist_ok=True)
            for i, (tag, _, _, pids) in enumerate(swarms):
                out = os.path.join(a.perf, f"{tag}{i}r{rnd}.data")
                perfs.append((tag, out, subprocess.Popen(["perf", "record", "-F", str(PERF_HZ), "-g", "-o", out, "-p",
                                                          ",".join(map(str, pids))], stderr=subprocess.DEVNULL)))
            time.sleep(0.5)
        per_proc = [[0.0] * len(pids) for _, _, _, pids in swarms]  # CPU per process of each swarm, summed
        for r in range(a.repeat):
            got = {"curve": [], "plain": []}
            order = list(enumerate(swarms))
            for k, (tag, _, rpc, pids) in (order if r % 2 == 0 else order[::-1]):
                c0 = [cpu_seconds([p]) for p in pids]
                v = decode(rpc)
                dt = [cpu_seconds([p]) - c for p, c in zip(pids, c0)]
                per_proc[k] = [x + y for x, y in zip(per_proc[k], dt)]
                cpu[tag] += sum(dt) / 2  # two swarms of each kind per round
                if v:
                    (sec if tag == "curve" else ins).append(v)
                    got[tag].append(v)
            if got["curve"] and got["plain"]:
                pairs.append(statistics.mean(got["curve"]) / statistics.mean(got["plain"]))
        for k, (tag, _, _, _) in enumerate(swarms):  # the spread between processes doing the same work
            print(f"round {rnd} swarm {k} ({tag}): CPU per run, ms: " +
                  ", ".join(f"{n} {1000 * x / a.repeat:.0f}" for n, x in
                            zip(["broker"] + [f"stage{i}" for i in range(a.stages)] + ["gateway"], per_proc[k])),
                  flush=True)
        for tag, out, p in perfs:
            p.send_signal(signal.SIGINT)
            p.wait()
            r = subprocess.run(["perf", "report", "-i", out, "--no-children", "-g", "none", "-n", "--sort", "dso",
                                "-q"], capture_output=True, text=True, errors="replace")
            for line in r.stdout.splitlines():
                f = line.split()
                if len(f) >= 3 and f[1].isdigit():
                    dso_samples[tag][f[2]] = dso_samples[tag].get(f[2], 0) + int(f[1])
        from harness import node_key  # noqa: E402
        key = node_key(h, bins, "joiner")
        for i in range(a.joins):
            for broker, out, tag in ((sec_broker, js, "curve"), (ins_broker, ji, "plain")):
                v = join_ms(broker, i, tag)
                if v:
                    out.append(v)
    finally:
        h.stop_all()

ms, mi = statistics.median(sec), statistics.median(ins)
hop_us = (1e6 / ms - 1e6 / mi) / (a.stages + 1)
print(f"| {os.path.basename(a.model)}, {a.stages} stages, {a.threads} thread(s) each, {a.tokens} tokens, "
      f"{len(sec)}+{len(ins)} interleaved runs | {mi:.1f} | {ms:.1f} | {100 * ms / mi:.1f}% | {hop_us:.1f} us | "
      f"{statistics.median(ji):.1f} ms | {statistics.median(js):.1f} ms |")
q = statistics.quantiles(pairs, n=4) if len(pairs) >= 2 else [pairs[0]] * 3
print(f"paired runs: keyed / insecure median {100 * statistics.median(pairs):.1f}% "
      f"(quartiles {100 * q[0]:.1f}%-{100 * q[2]:.1f}%, {len(pairs)} pairs)")
cs, ci = cpu["curve"] / (a.repeat * a.rounds), cpu["plain"] / (a.repeat * a.rounds)
print(f"CPU per run (whole swarm): insecure {ci * 1000:.0f} ms, keyed {cs * 1000:.0f} ms: keyed costs "
      f"{100 * (cs / ci - 1):+.1f}% ({1000 * (cs - ci) / (a.tokens + 1):.2f} ms of CPU per generated token)")
if a.perf:  # ms of CPU per generated token in each library, per kind (two swarms of a kind: halved)
    tokens = (a.tokens + 1) * a.repeat * a.rounds
    libs = sorted(set(dso_samples["curve"]) | set(dso_samples["plain"]),
                  key=lambda d: -(dso_samples["curve"].get(d, 0) - dso_samples["plain"].get(d, 0)))
    print("perf: CPU per generated token by library, keyed / insecure / difference (ms):")
    for d in libs[:8]:
        kc, kp = (1000 * dso_samples[t].get(d, 0) / PERF_HZ / 2 / tokens for t in ("curve", "plain"))
        print(f"  {d}: {kc:.3f} / {kp:.3f} / {kc - kp:+.3f}")
