#!/usr/bin/env python3
"""Generation survives stages dying mid-sequence (short, seeded).

A broker; two stages for layers 0-2 and two for 3-4 (redundant coverage); a
gateway. Four greedy generations run at once while, at seeded times, one
stage of the first range is killed (SIGKILL) and one of the second is frozen
(SIGSTOP) and later thawed (SIGCONT). Each generation must finish with exactly
its single-process text, and the gateway must have failed over (its log says
so), or the test proves nothing.
usage: test_failover.py SWISD SWISD_BROKER SWISD_STAGE SWISD_GATEWAY [SEED]
"""
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

swisd, broker_bin, stage_bin, gateway_bin = sys.argv[1:5]
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 7
rng = random.Random(seed)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

model = harness.model_path()
logdir = tempfile.mkdtemp(prefix="swisd-test-failover-")
procs = []
failures = 0
checks = 0


def check(cond, what):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print("FAIL:", what, flush=True)


def start(name, args, prefix):
    log = open(os.path.join(logdir, name + ".log"), "w")
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
    procs.append(p)
    deadline = time.time() + 20
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return p, line[len(prefix):].strip()
    raise RuntimeError(f"{name} did not start; see {log.name}")


prompts = ["Once upon a time", "Lily and Tom", "Mom said", "The sun was"]
N = 300
local = {}
for p in prompts:
    r = subprocess.run([swisd, "run", "-m", model, "-p", p, "-n", str(N), "--temp", "0", "-t", "1", "--ignore-eos"],
                       capture_output=True, timeout=120)
    local[p] = r.stdout.decode("utf-8", "replace")

try:
    _, ep = start("broker", [broker_bin, "--bind", "tcp://127.0.0.1:*", "--heartbeat-ms", "200", "--expiry-ms", "1000"],
                  "swisd-broker: listening on")
    stages = {}
    for name, layers in (("a1", "0-2"), ("a2", "0-2"), ("b1", "3-4"), ("b2", "3-4")):
        stages[name], _ = start("stage-" + name, [stage_bin, "--broker", ep, "--model", model, "--layers", layers,
                                                  "--threads", "1", "--heartbeat-ms", "200"], "swisd-stage:")
    _, rpc = start("gateway", [gateway_bin, "--broker", ep, "--model", model, "--rpc", "tcp://127.0.0.1:*"],
                   "swisd-gateway: rpc on")
    # wait until servable
    deadline = time.time() + 20
    while time.time() < deadline:
        r = subprocess.run([swisd, "generate", "--gateway", rpc, "-p", "Once", "-n", "1", "--temp", "0"],
                           capture_output=True, timeout=30)
        if r.returncode == 0:
            break
        time.sleep(0.3)
    gens = {p: subprocess.Popen([swisd, "generate", "--gateway", rpc, "-p", p, "-n", str(N), "--temp", "0",
                                 "--ignore-eos", "--timeout-ms", "60000"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE) for p in prompts}
    def cpu(name):
        """CPU ticks a stage process has used: the busy one of a pair is on the route."""
        with open(f"/proc/{stages[name].pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    before = {n: cpu(n) for n in stages}
    time.sleep(rng.uniform(0.15, 0.3))
    busy = {n: cpu(n) - before[n] for n in stages}
    victim = max(("a1", "a2"), key=lambda n: (busy[n], rng.random()))
    stages[victim].send_signal(signal.SIGKILL)
    time.sleep(rng.uniform(0.1, 0.3))
    busy = {n: cpu(n) - before[n] for n in ("b1", "b2")}
    frozen = max(("b1", "b2"), key=lambda n: (busy[n], rng.random()))
    stages[frozen].send_signal(signal.SIGSTOP)
    time.sleep(2.0)
    stages[frozen].send_signal(signal.SIGCONT)
    for p, g in gens.items():
        out, err = g.communicate(timeout=180)
        text = out.decode("utf-8", "replace")
        check(g.returncode == 0 and text == local[p],
              f"{p!r}: text differs after failover (rc {g.returncode})\n  got  {text[-120:]!r}\n"
              f"  want {local[p][-120:]!r}\n  {err.decode()[-300:]}")
    with open(os.path.join(logdir, "gateway.log")) as f:
        glog = f.read()
    check("replaying" in glog, "the gateway never failed over: the faults missed the generations")
    print(f"failover: killed {victim}, froze {frozen}; "
          f"{glog.count('replaying')} failovers in the gateway log", flush=True)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGCONT)
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
    procs.clear()

    # broker failure: two regional brokers under a root; every node knows both and
    # moves to the other when its broker stops answering
    hb = ["--heartbeat-ms", "200", "--expiry-ms", "1000"]
    _, root = start("root", [broker_bin, "--bind", "tcp://127.0.0.1:*", "--region", "root"] + hb,
                    "swisd-broker: listening on")
    brokers, eps = {}, {}
    for name in ("e1", "e2"):
        brokers[name], eps[name] = start("broker-" + name, [broker_bin, "--bind", "tcp://127.0.0.1:*", "--parent",
                                                            root, "--region", "eu"] + hb, "swisd-broker: listening on")
    both = eps["e1"] + "," + eps["e2"]
    for name, layers in (("a", "0-2"), ("b", "3-4")):
        start("stage2-" + name, [stage_bin, "--broker", both, "--model", model, "--layers", layers, "--threads", "1",
                                 "--heartbeat-ms", "200"], "swisd-stage:")
    _, rpc = start("gateway2", [gateway_bin, "--broker", both, "--model", model, "--rpc", "tcp://127.0.0.1:*"],
                   "swisd-gateway: rpc on")
    deadline = time.time() + 20
    while time.time() < deadline:
        r = subprocess.run([swisd, "generate", "--gateway", rpc, "-p", "Once", "-n", "1", "--temp", "0"],
                           capture_output=True, timeout=30)
        if r.returncode == 0:
            break
        time.sleep(0.3)
    p0 = prompts[0]
    g = subprocess.Popen([swisd, "generate", "--gateway", rpc, "-p", p0, "-n", str(N), "--temp", "0",
                          "--ignore-eos", "--timeout-ms", "60000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(rng.uniform(0.1, 0.2))
    brokers["e1"].send_signal(signal.SIGKILL)  # every node starts on e1, the first of its list
    out, err = g.communicate(timeout=180)
    text = out.decode("utf-8", "replace")
    check(g.returncode == 0 and text == local[p0],
          f"after the broker died: rc {g.returncode}, {err.decode()[-300:]}\n  got {text[-80:]!r}")
    with open(os.path.join(logdir, "gateway2.log")) as f:
        check("moving to broker" in f.read(), "the gateway never moved to the other broker")
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
    procs.clear()

    # rebalancing: the only host of layers 2-4 dies; a --layers auto stage (memory for 3
    # layers, so it started on 0-2, which another stage also holds) moves to cover 2-4
    _, ep3 = start("broker3", [broker_bin, "--bind", "tcp://127.0.0.1:*"] + hb, "swisd-broker: listening on")
    start("fixed01", [stage_bin, "--broker", ep3, "--model", model, "--layers", "0-1", "--heartbeat-ms", "200"],
          "swisd-stage:")
    f24, _ = start("fixed24", [stage_bin, "--broker", ep3, "--model", model, "--layers", "2-4", "--heartbeat-ms",
                               "200"], "swisd-stage:")
    time.sleep(0.6)
    _, line = start("auto", [stage_bin, "--broker", ep3, "--model", model, "--layers", "auto", "--mem", "560K",
                             "--heartbeat-ms", "200"], "swisd-stage:")
    check(line.endswith("layers 0-2"), f"the auto stage should start on 0-2: {line!r}")
    _, rpc3 = start("gateway3", [gateway_bin, "--broker", ep3, "--model", model, "--rpc", "tcp://127.0.0.1:*",
                                 "--route-wait-ms", "20000"], "swisd-gateway: rpc on")
    f24.send_signal(signal.SIGKILL)
    t0 = time.time()
    rc, out = 1, b""
    while time.time() - t0 < 30 and rc != 0:
        r = subprocess.run([swisd, "generate", "--gateway", rpc3, "-p", p0, "-n", str(N), "--temp", "0",
                            "--ignore-eos"], capture_output=True, timeout=60)
        rc, out = r.returncode, r.stdout
    check(rc == 0 and out.decode("utf-8", "replace") == local[p0],
          f"after rebalancing: rc {rc}, text {out.decode('utf-8', 'replace')[-80:]!r}")
    with open(os.path.join(logdir, "auto.log")) as f:
        check("rebalancing" in f.read(), "the auto stage never moved")
    print(f"failover: the swarm healed {time.time() - t0:.1f} s after losing the only host of 2-4", flush=True)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=10)
    procs.clear()

    # no host for some layers: after a bounded wait, a clear error naming them
    _, ep4 = start("broker4", [broker_bin, "--bind", "tcp://127.0.0.1:*"] + hb, "swisd-broker: listening on")
    start("only01", [stage_bin, "--broker", ep4, "--model", model, "--layers", "0-1"], "swisd-stage:")
    _, rpc4 = start("gateway4", [gateway_bin, "--broker", ep4, "--model", model, "--rpc", "tcp://127.0.0.1:*",
                                 "--route-wait-ms", "1500"], "swisd-gateway: rpc on")
    t0 = time.time()
    r = subprocess.run([swisd, "generate", "--gateway", rpc4, "-p", p0, "-n", "5"], capture_output=True, timeout=60)
    err = r.stderr.decode()
    check(r.returncode == 1 and "NO_ROUTE" in err and "2-4" in err, f"missing layers not named: {err[-300:]}")
    check(time.time() - t0 < 10, "the request without a route did not end within a bounded time")
finally:
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)
            except ProcessLookupError:
                pass
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

print(f"failover: {checks} checks, {failures} failed (seed {seed}, logs in {logdir})")
sys.exit(1 if failures else 0)
