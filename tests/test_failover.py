#!/usr/bin/env python3
"""Generation survives stages dying mid-sequence (short, seeded).

A broker; two stages for layers 0-2 and two for 3-4 (redundant coverage); a
gateway. Four greedy generations run at once; once each has printed its first
token, the busier stage of the first range is killed (SIGKILL) and, once the
gateway logged a failover (or after 15 s), the busier one of the second is
frozen (SIGSTOP) until the gateway has failed over again or the generations
ended, then thawed (SIGCONT). Each generation must finish with exactly its single-process text,
and the gateway must have failed over (its log says so), or the test proves
nothing.
Then: a regional broker killed while a generation is in flight (every node
knows two; the gateway must move to the other); a --layers auto stage that
moves to cover the layers of a dead stage; a request without a route ends
with a clear error within a bounded time.
Every wait follows an observed event (a log line, a generation's first
token, a successful request, a process's CPU time), with a deadline; the seed
only breaks ties between equally busy stages. Under CPU load the events come
later and the test still holds.
usage: test_failover.py SWISD SWISD_BROKER SWISD_STAGE SWISD_GATEWAY [SEED]
"""
import os
import random
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Bins, Harness, generate, node_key, run_local, start_broker, start_gateway,  # noqa: E402
                     start_generate, start_stage, wait_servable, wait_until)

bins = Bins()
bins.swisd, bins.broker, bins.stage, bins.gateway = sys.argv[1:5]
seed = int(sys.argv[5]) if len(sys.argv) > 5 else 7
rng = random.Random(seed)
prompts = ["Once upon a time", "Lily and Tom", "Mom said", "The sun was"]
N = 300
HB = ["--heartbeat-ms", "200"]
WAIT = 60.0  # deadline of any one event; generous, since a loaded machine is slow, never reached when all is well


def cpu(proc):
    """CPU ticks a process has used: the busy one of a pair of stages is on a route."""
    try:
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def busiest(stages, names, before, min_ticks=2):
    """The stage of `names` that used the most CPU since `before` (ties broken
    by the seed), once one of them used at least `min_ticks` (or after WAIT s)."""
    wait_until(lambda: max(cpu(stages[n]) - before[n] for n in names) >= min_ticks, WAIT, 0.02)
    busy = {n: cpu(stages[n]) - before[n] for n in names}
    return max(names, key=lambda n: (busy[n], rng.random()))


def first_tokens(clients):
    """Waits until every client printed its prompt and one token (or ended)."""
    for p, g in clients.items():
        g.wait_output(len(p.encode()) + 1, WAIT)


def stage_failover(h, local):
    _, ep = start_broker(h, bins, "broker", expiry_ms=1000)
    stages = {}
    for name, layers in (("a1", "0-2"), ("a2", "0-2"), ("b1", "3-4"), ("b2", "3-4")):
        stages[name], _ = start_stage(h, bins, "stage-" + name, ep, layers, *HB)
    # the stages' keys are the operator's: not audited (audits would keep the idle stage of each pair busy too,
    # and "busiest" must find the one on a route; audits have their own test, test_audit.py)
    args = []
    if not h.insecure:
        operator = os.path.join(h.logdir, "operator-keys")
        os.makedirs(operator, exist_ok=True)
        for name in stages:
            shutil.copy(node_key(h, bins, "stage-" + name), operator)
        args = ["--trusted-keys", operator]
    gw, rpc, _ = start_gateway(h, bins, "gateway", ep, *args)
    h.check(wait_servable(bins, rpc, WAIT), "stage failover: the swarm never became servable")
    before = {n: cpu(p) for n, p in stages.items()}
    gens = {p: start_generate(bins, rpc, p, N, "--ignore-eos", "--timeout-ms", "60000") for p in prompts}
    first_tokens(gens)
    victim = busiest(stages, ("a1", "a2"), before)

    def running():
        return any(g.running() for g in gens.values())
    stages[victim].signal(signal.SIGKILL)
    # the next fault once the gateway routed around this one (15 s at most: the victim
    # may have carried no session, then the freeze has to hit one)
    wait_until(lambda: gw.has("replaying") or not running(), 15, 0.05)
    frozen = busiest(stages, ("b1", "b2"), before)
    mark = gw.mark()
    stages[frozen].signal(signal.SIGSTOP)
    # frozen until the gateway routed around it (or nothing is left to route)
    wait_until(lambda: gw.wait_line("replaying", 0, "any", mark) is not None or not running(), WAIT, 0.05)
    stages[frozen].signal(signal.SIGCONT)
    for p, g in gens.items():
        rc, text, err = g.finish(180)
        h.check(rc == 0 and text == local[p],
                f"{p!r}: text differs after failover (rc {rc})\n  got  {text[-120:]!r}\n"
                f"  want {local[p][-120:]!r}\n  {err[-300:]}")
    h.check(gw.has("replaying"), "the gateway never failed over: the faults missed the generations")
    print(f"failover: killed {victim}, froze {frozen}; {gw.count('replaying')} failovers in the gateway log",
          flush=True)
    h.stop_all()


def broker_failover(h, local):
    """Two regional brokers under a root; every node knows both and moves to
    the other when its broker stops answering."""
    _, root = start_broker(h, bins, "root", region="root", expiry_ms=1000)
    brokers, eps = {}, {}
    for name in ("e1", "e2"):
        brokers[name], eps[name] = start_broker(h, bins, "broker-" + name, parent=root, region="eu", expiry_ms=1000)
    both = eps["e1"] + "," + eps["e2"]
    for name, layers in (("a", "0-2"), ("b", "3-4")):
        start_stage(h, bins, "stage2-" + name, both, layers, *HB)
    gw, rpc, _ = start_gateway(h, bins, "gateway2", both)
    h.check(wait_servable(bins, rpc, WAIT), "broker failover: the swarm never became servable")
    p0 = prompts[0]
    mark = gw.mark()
    g = start_generate(bins, rpc, p0, N, "--ignore-eos", "--timeout-ms", "60000")
    g.wait_output(len(p0.encode()) + 1, WAIT)
    in_flight = g.running()
    brokers["e1"].signal(signal.SIGKILL)  # every node starts on e1, the first of its list
    rc, text, err = g.finish(180)
    h.check(rc == 0 and text == local[p0], f"after the broker died: rc {rc}, {err[-300:]}\n  got {text[-80:]!r}")
    # the gateway notices the silence after the expiry, perhaps after the generation ended
    h.check(gw.wait_line("moving to broker", WAIT, "any", mark) is not None,
            "the gateway never moved to the other broker")
    if not in_flight:
        print("failover: note: the generation had ended before the broker died", flush=True)
    h.check(wait_servable(bins, rpc, WAIT), "the swarm does not serve through the other broker")
    h.stop_all()


def rebalancing(h, local):
    """The only host of layers 2-4 dies; a --layers auto stage (memory for 3
    layers, so it started on 0-2, which another stage also holds) moves to
    cover 2-4."""
    p0 = prompts[0]
    _, ep3 = start_broker(h, bins, "broker3", expiry_ms=1000)
    fixed = [start_stage(h, bins, name, ep3, layers, *HB, threads=None)[0]
             for name, layers in (("fixed01", "0-1"), ("fixed24", "2-4"))]
    for p in fixed:  # both in the directory before the auto stage asks
        h.check(p.wait_line("registered with broker", WAIT, "any") is not None, f"{p.name} never registered")
    auto, _ = start_stage(h, bins, "auto", ep3, "auto", "--mem", "560K", *HB, threads=None)
    h.check(auto.ready.endswith("layers 0-2"), f"the auto stage should start on 0-2: {auto.ready!r}")
    _, rpc3, _ = start_gateway(h, bins, "gateway3", ep3, "--route-wait-ms", "20000")
    fixed[1].signal(signal.SIGKILL)
    t0 = time.monotonic()
    last = [1, "", ""]

    def healed():
        last[:] = generate(bins, rpc3, p0, N, 60, "--ignore-eos")
        return last[0] == 0
    wait_until(healed, WAIT, 0)
    h.check(last[0] == 0 and last[1] == local[p0], f"after rebalancing: rc {last[0]}, text {last[1][-80:]!r}")
    h.check(auto.wait_line("rebalancing", WAIT, "any") is not None, "the auto stage never moved")
    print(f"failover: the swarm healed {time.monotonic() - t0:.1f} s after losing the only host of 2-4", flush=True)
    h.stop_all()


def no_route(h):
    """No host for some layers: after a bounded wait, a clear error naming them."""
    _, ep4 = start_broker(h, bins, "broker4", expiry_ms=1000)
    start_stage(h, bins, "only01", ep4, "0-1", threads=None)
    _, rpc4, _ = start_gateway(h, bins, "gateway4", ep4, "--route-wait-ms", "1500")
    t0 = time.monotonic()
    rc, _, err = generate(bins, rpc4, prompts[0], 5, 60)
    h.check(rc == 1 and "NO_ROUTE" in err and "2-4" in err, f"missing layers not named: {err[-300:]}")
    h.check(time.monotonic() - t0 < 10, "the request without a route did not end within a bounded time")


def body(h):
    local = {p: run_local(bins, p, N, "--ignore-eos") for p in prompts}
    stage_failover(h, local)
    broker_failover(h, local)
    rebalancing(h, local)
    no_route(h)
    print(f"failover: seed {seed}", flush=True)


Harness("failover").run(body)
