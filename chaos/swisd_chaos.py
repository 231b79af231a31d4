#!/usr/bin/env python3
"""swisd-chaos: a swarm under fire, and whether every generation survives.

Starts, on loopback: a root broker and two regional brokers of one region
(fixed ports, so a killed broker can come back on its port); two stages for
each of three layer ranges (every node knows both regional brokers; the first
stage of each range reaches its broker through swisd-link, whose delay and
jitter the harness raises at times); a gateway. Then, for --duration seconds,
it keeps --sessions greedy generations running while it injects faults at
random (seeded) times:
  kill-stage    SIGKILL a stage whose range has another live stage; it is
                started again 1-3 s later (re-admission)
  freeze-stage  SIGSTOP such a stage for 0.5-2 s, then SIGCONT
  kill-broker   SIGKILL one regional broker while the other lives; it comes
                back on the same port 2-4 s later
  degrade-link  30 ms delay + 10 ms jitter on one stage's link for 2 s
Every finished generation must equal the single-process greedy text of its
prompt. Prints a Markdown report (faults, sessions, sessions lost, pauses
seen by clients p50/p99, failovers and tokens replayed from the gateway's
log) and exits 1 if any session was lost.

usage: swisd_chaos.py BUILD_DIR MODEL.gguf [--seed S] [--duration SEC]
       [--sessions N] [--tokens N] [--report FILE]
"""
import argparse
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from harness import (Bins, Harness, free_port, key_args, run_local, start_broker, start_gateway,  # noqa: E402
                     start_generate, start_link, wait_servable)

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("model")
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--duration", type=float, default=20)
ap.add_argument("--sessions", type=int, default=4)
ap.add_argument("--tokens", type=int, default=120)
ap.add_argument("--report", default=None)
a = ap.parse_args()

rng = random.Random(a.seed)
bins = Bins(a.build)
h = Harness("chaos")
prompts = ["Once upon a time", "Lily and Tom", "Mom said", "The sun was", "Tom had a dog", "One day, a bird"]
lock = threading.Lock()
procs = {}          # name -> the latest harness Proc of that name
faults = {"kill-stage": 0, "freeze-stage": 0, "kill-broker": 0, "degrade-link": 0}


def alive(name):
    p = procs.get(name)
    return p is not None and p.alive()


# ---- the swarm ------------------------------------------------------------------------
ports = {n: free_port() for n in ("root", "e1", "e2")}
ep = {n: f"tcp://127.0.0.1:{p}" for n, p in ports.items()}


def start_regional(name):
    """A broker on its fixed port (a killed one comes back on it, with the
    same key: ep[name] becomes the key-carrying endpoint it prints)."""
    where = {"region": "root"} if name == "root" else {"parent": ep["root"], "region": "eu"}
    procs["broker-" + name], ep[name] = start_broker(h, bins, "broker-" + name, bind=ep[name].split("#")[0],
                                                     expiry_ms=1000, **where)


for n in ("root", "e1", "e2"):
    start_regional(n)

r = subprocess.run([bins.swisd, "inspect", a.model], capture_output=True, text=True)
m = re.search(r"\.block_count\s+\S+\s+(\d+)", r.stdout)
L = int(m.group(1)) if m else 5
cuts = [0, (L + 2) // 3, (L + 2) // 3 + (L - (L + 2) // 3 + 1) // 2, L]
ranges = [f"{cuts[i]}-{cuts[i + 1] - 1}" for i in range(3)]
links = {}          # stage name -> control socket path
stage_args = {}


def start_stage(name):
    procs["stage-" + name], _ = h.start("stage-" + name, stage_args[name], ready="swisd-stage:", timeout=30)


for ri, layers in enumerate(ranges):
    for k in range(2):
        name = f"r{ri}s{k}"
        brokers = f"{ep['e1']},{ep['e2']}" if k == 0 else f"{ep['e2']},{ep['e1']}"
        if k == 0:  # behind a link emulator to its first broker (ready once it listens)
            ctl = os.path.join(h.logdir, f"link-{name}.sock")
            procs["link-" + name], lep = start_link(h, "link-" + name, bins, ep["e1"], control=ctl)
            links[name] = ctl
            brokers = f"{lep},{ep['e2']}"
        stage_args[name] = [bins.stage, "--broker", brokers, "--model", a.model, "--layers", layers, "--threads",
                            "1", "--heartbeat-ms", "200"] + key_args(h, bins, "stage-" + name)
for name in stage_args:
    start_stage(name)
procs["gateway"], rpc, _ = start_gateway(h, bins, "gateway", f"{ep['e1']},{ep['e2']}", "--route-wait-ms", "20000",
                                         model=a.model)

refs = {p: run_local(bins, p, a.tokens, "--ignore-eos", model=a.model, timeout=300) for p in prompts}
h.check(wait_servable(bins, rpc, 30), "the swarm never became servable")

# ---- clients --------------------------------------------------------------------------
results = []        # (prompt, ok, max_gap_s, rc, err)
stop_clients = threading.Event()


def client(idx):
    crng = random.Random(a.seed * 1000 + idx)
    while not stop_clients.is_set():
        p = crng.choice(prompts)
        g = start_generate(bins, rpc, p, a.tokens, "--ignore-eos", "--timeout-ms", "120000")
        rc, text, err = g.finish(300)
        with lock:  # max_gap: gaps between tokens, not the wait for the prompt echo
            results.append((p, rc == 0 and text == refs[p], g.max_gap, rc, err[-300:]))


threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.sessions)]
for t in threads:
    t.start()

# ---- faults ---------------------------------------------------------------------------
# The fault times are the seeded schedule itself (what the suite varies), not waits for
# something to happen: the swarm must cope whenever they come.
pending = []        # (time, action, name)
frozen = set()


def live_in_range(ri):
    return [f"r{ri}s{k}" for k in range(2) if alive("stage-" + f"r{ri}s{k}") and f"r{ri}s{k}" not in frozen]


def link_cmd(name, cmd):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        s.connect(links[name])
        s.sendall((cmd + "\n").encode())
        s.recv(256)
        s.close()
    except OSError:
        pass


def repair(act, name):
    if act == "restart-stage":
        start_stage(name)
    elif act == "thaw":
        procs["stage-" + name].signal(signal.SIGCONT)
        frozen.discard(name)
    elif act == "restart-broker":
        start_regional(name)
    elif act == "restore-link":
        link_cmd(name, "delay 0")
        link_cmd(name, "jitter 0")


t_end = time.time() + a.duration
while time.time() < t_end:
    time.sleep(rng.uniform(0.3, 1.0))
    now = time.time()
    for ev in [e for e in pending if e[0] <= now]:
        pending.remove(ev)
        repair(ev[1], ev[2])
    act = rng.choice(list(faults))
    ri = rng.randrange(3)
    if act in ("kill-stage", "freeze-stage"):
        cands = live_in_range(ri)
        if len(cands) < 2:
            continue
        name = rng.choice(cands)
        if act == "kill-stage":
            procs["stage-" + name].signal(signal.SIGKILL)
            pending.append((now + rng.uniform(1, 3), "restart-stage", name))
        else:
            procs["stage-" + name].signal(signal.SIGSTOP)
            frozen.add(name)
            pending.append((now + rng.uniform(0.5, 2), "thaw", name))
    elif act == "kill-broker":
        up = [n for n in ("e1", "e2") if alive("broker-" + n)]
        if len(up) < 2:
            continue
        name = rng.choice(up)
        procs["broker-" + name].signal(signal.SIGKILL)
        pending.append((now + rng.uniform(2, 4), "restart-broker", name))
    else:
        name = rng.choice(list(links))
        link_cmd(name, "delay 30")
        link_cmd(name, "jitter 10")
        pending.append((now + 2, "restore-link", name))
    faults[act] += 1

# let every pending repair happen at its time, then let the clients finish their sessions
for ev in sorted(pending):
    time.sleep(max(0.0, ev[0] - time.time()))
    repair(ev[1], ev[2])
stop_clients.set()
for t in threads:
    t.join(timeout=300)
glog = procs["gateway"].output()
h.stop_all()

# ---- report ---------------------------------------------------------------------------
replayed = [int(x) for x in re.findall(r"replaying (\d+) tokens", glog)]
lost = [r for r in results if not r[1]]
gaps = sorted(r[2] for r in results)
paused = sorted(g for g in gaps if g > 0.25)


def pct(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else 0.0


report = f"""| what | value |
|---|---|
| seed, duration | {a.seed}, {a.duration:g} s |
| concurrent sessions, tokens each | {a.sessions}, {a.tokens} |
| stages killed (SIGKILL, restarted later) | {faults['kill-stage']} |
| stages frozen (SIGSTOP, then SIGCONT) | {faults['freeze-stage']} |
| regional brokers killed (restarted later) | {faults['kill-broker']} |
| links degraded (30 ms + 10 ms jitter for 2 s) | {faults['degrade-link']} |
| sessions run | {len(results)} |
| sessions lost (error or text differing from single-process) | {len(lost)} |
| failovers in the gateway (re-plan + replay) | {len(replayed)} |
| tokens replayed | {sum(replayed)} |
| sessions with a pause over 250 ms | {len(paused)} |
| longest pause per session, over sessions that paused: p50 / p99 | {pct(paused, 0.5):.0f} ms / {pct(paused, 0.99):.0f} ms |
| longest pause per session, over all sessions: p50 / p99 | {pct(gaps, 0.5):.0f} ms / {pct(gaps, 0.99):.0f} ms |
"""
print(report)
for r in lost[:5]:
    print(f"LOST: {r[0]!r} rc {r[3]}: {r[4]}")
if a.report:
    with open(a.report, "w") as f:
        f.write(report)
h.check(results, "no session ran")
h.check(not lost, f"{len(lost)} of {len(results)} sessions lost")
sys.exit(h.finish())
