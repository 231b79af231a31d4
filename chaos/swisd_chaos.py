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
import statistics
import subprocess
import sys
import tempfile
import threading
import time

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
B = lambda *p: os.path.join(a.build, *p)
swisd, broker_bin, stage_bin, gw_bin, link_bin = (B("cli", "swisd"), B("broker", "swisd-broker"),
                                                  B("stage", "swisd-stage"), B("gateway", "swisd-gateway"),
                                                  B("chaos", "swisd-link"))
logdir = tempfile.mkdtemp(prefix="swisd-chaos-")
prompts = ["Once upon a time", "Lily and Tom", "Mom said", "The sun was", "Tom had a dog", "One day, a bird"]
HB = ["--heartbeat-ms", "200", "--expiry-ms", "1000"]
lock = threading.Lock()
procs = {}          # name -> Popen
faults = {"kill-stage": 0, "freeze-stage": 0, "kill-broker": 0, "degrade-link": 0}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(name, args, prefix=None):
    log = open(os.path.join(logdir, name + ".log"), "a")
    p = subprocess.Popen(args, stdout=subprocess.PIPE if prefix else subprocess.DEVNULL, stderr=log, text=True)
    procs[name] = p
    if prefix:
        deadline = time.time() + 30
        while time.time() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise RuntimeError(f"{name} did not start (see {log.name})")
    return None


def alive(name):
    p = procs.get(name)
    return p is not None and p.poll() is None


# ---- the swarm ------------------------------------------------------------------------
ports = {n: free_port() for n in ("root", "e1", "e2")}
ep = {n: f"tcp://127.0.0.1:{p}" for n, p in ports.items()}


def start_broker(name):
    args = [broker_bin, "--bind", ep[name]] + HB
    args += ["--region", "root"] if name == "root" else ["--parent", ep["root"], "--region", "eu"]
    start("broker-" + name, args, "swisd-broker: listening on")


for n in ("root", "e1", "e2"):
    start_broker(n)

r = subprocess.run([swisd, "inspect", a.model], capture_output=True, text=True)
m = re.search(r"\.block_count\s+\S+\s+(\d+)", r.stdout)
L = int(m.group(1)) if m else 5
cuts = [0, (L + 2) // 3, (L + 2) // 3 + (L - (L + 2) // 3 + 1) // 2, L]
ranges = [f"{cuts[i]}-{cuts[i + 1] - 1}" for i in range(3)]
links = {}          # stage name -> control socket path
stage_args = {}


def start_stage(name):
    start("stage-" + name, stage_args[name], "swisd-stage:")


for ri, layers in enumerate(ranges):
    for k in range(2):
        name = f"r{ri}s{k}"
        brokers = f"{ep['e1']},{ep['e2']}" if k == 0 else f"{ep['e2']},{ep['e1']}"
        if k == 0:  # behind a link emulator to its first broker
            lport, ctl = free_port(), os.path.join(logdir, f"link-{name}.sock")
            start("link-" + name, [link_bin, "--listen", f"127.0.0.1:{lport}", "--connect",
                                   f"127.0.0.1:{ports['e1']}", "--control", ctl])
            links[name] = ctl
            brokers = f"tcp://127.0.0.1:{lport},{ep['e2']}"
        stage_args[name] = [stage_bin, "--broker", brokers, "--model", a.model, "--layers", layers, "--threads",
                            "1", "--heartbeat-ms", "200"]
time.sleep(0.3)  # let the link proxies bind
for name in stage_args:
    start_stage(name)
rpc = start("gateway", [gw_bin, "--broker", f"{ep['e1']},{ep['e2']}", "--model", a.model, "--rpc",
                        "tcp://127.0.0.1:*", "--route-wait-ms", "20000"], "swisd-gateway: rpc on")

refs = {}
for p in prompts:
    out = subprocess.run([swisd, "run", "-m", a.model, "-p", p, "-n", str(a.tokens), "--temp", "0", "-t", "1",
                          "--ignore-eos"], capture_output=True, timeout=300).stdout
    refs[p] = out.decode("utf-8", "replace")
deadline = time.time() + 30
while time.time() < deadline:
    if subprocess.run([swisd, "generate", "--gateway", rpc, "-p", "Once", "-n", "1", "--temp", "0"],
                      capture_output=True, timeout=60).returncode == 0:
        break
    time.sleep(0.3)

# ---- clients --------------------------------------------------------------------------
results = []        # (prompt, ok, max_gap_s, rc, err)
stop_clients = threading.Event()


def client(idx):
    crng = random.Random(a.seed * 1000 + idx)
    while not stop_clients.is_set():
        p = crng.choice(prompts)
        g = subprocess.Popen([swisd, "generate", "--gateway", rpc, "-p", p, "-n", str(a.tokens), "--temp", "0",
                              "--ignore-eos", "--timeout-ms", "120000"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        out, last, max_gap = b"", time.time(), 0.0
        while True:
            chunk = g.stdout.read1(4096) if hasattr(g.stdout, "read1") else g.stdout.read(1)
            now = time.time()
            if not chunk:
                break
            if out:  # gaps between tokens, not the wait for the prompt echo
                max_gap = max(max_gap, now - last)
            out += chunk
            last = now
        err = g.stderr.read().decode("utf-8", "replace")
        g.wait()
        text = out.decode("utf-8", "replace")
        with lock:
            results.append((p, g.returncode == 0 and text == refs[p], max_gap, g.returncode, err[-300:]))


threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.sessions)]
for t in threads:
    t.start()

# ---- faults ---------------------------------------------------------------------------
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


t_end = time.time() + a.duration
while time.time() < t_end:
    time.sleep(rng.uniform(0.3, 1.0))
    now = time.time()
    for ev in [e for e in pending if e[0] <= now]:
        pending.remove(ev)
        _, act, name = ev
        if act == "restart-stage":
            start_stage(name)
        elif act == "thaw":
            procs["stage-" + name].send_signal(signal.SIGCONT)
            frozen.discard(name)
        elif act == "restart-broker":
            start_broker(name)
        elif act == "restore-link":
            link_cmd(name, "delay 0")
            link_cmd(name, "jitter 0")
    act = rng.choice(list(faults))
    ri = rng.randrange(3)
    if act in ("kill-stage", "freeze-stage"):
        cands = live_in_range(ri)
        if len(cands) < 2:
            continue
        name = rng.choice(cands)
        if act == "kill-stage":
            procs["stage-" + name].send_signal(signal.SIGKILL)
            pending.append((now + rng.uniform(1, 3), "restart-stage", name))
        else:
            procs["stage-" + name].send_signal(signal.SIGSTOP)
            frozen.add(name)
            pending.append((now + rng.uniform(0.5, 2), "thaw", name))
    elif act == "kill-broker":
        up = [n for n in ("e1", "e2") if alive("broker-" + n)]
        if len(up) < 2:
            continue
        name = rng.choice(up)
        procs["broker-" + name].send_signal(signal.SIGKILL)
        pending.append((now + rng.uniform(2, 4), "restart-broker", name))
    else:
        name = rng.choice(list(links))
        link_cmd(name, "delay 30")
        link_cmd(name, "jitter 10")
        pending.append((now + 2, "restore-link", name))
    faults[act] += 1

# let every pending repair happen, then let the clients finish their sessions
for ev in sorted(pending):
    time.sleep(max(0.0, ev[0] - time.time()))
    _, act, name = ev
    if act == "restart-stage":
        start_stage(name)
    elif act == "thaw":
        procs["stage-" + name].send_signal(signal.SIGCONT)
    elif act == "restart-broker":
        start_broker(name)
    elif act == "restore-link":
        link_cmd(name, "delay 0")
stop_clients.set()
for t in threads:
    t.join(timeout=300)

for name, p in procs.items():
    if p.poll() is None:
        p.send_signal(signal.SIGCONT)
        p.send_signal(signal.SIGTERM)
for p in procs.values():
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()

# ---- report ---------------------------------------------------------------------------
glog = open(os.path.join(logdir, "gateway.log")).read()
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
print(f"logs in {logdir}")
if a.report:
    with open(a.report, "w") as f:
        f.write(report)
sys.exit(1 if lost or not results else 0)
