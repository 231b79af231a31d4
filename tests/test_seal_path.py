#!/usr/bin/env python3
"""Sealed activations end to end (docs/security.md, "Sealed activations"),
with real processes over real sockets:

1. a swarm of a broker, a gateway and two stages (keys on every link, so
   sealing on) reproduces the local run's text exactly;
2. a stage that registers with its key but seals its answers with another key
   (tests/attacker.c wrong-seal: a reply forged under that stage's routing
   identity by someone without its key), announcing every layer at near-zero
   cost: every answer it gives is rejected and counted
   (swisd_unsealed_replies_total and the per-node count on /metrics), it is
   never admitted, and generations keep their exact text;
3. a replayed sealed ForwardRequest body (the same bytes under another
   request id) is refused by the stage with BAD_SEAL, while the original is
   served (tests/swarm_poke.c, which seals as a gateway does).
SKIPs (exit 77) when run with SWISD_INSECURE=1: nothing is sealed then.
usage: test_seal_path.py ATTACKER SWARM_POKE   (binaries from $SWISD_BUILD)
"""
import os
import re
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Bins, Harness, generate, model_path, node_key, run_local,  # noqa: E402
                     start_broker, start_gateway, start_stage, wait_servable, wait_until)

attacker, poke = sys.argv[1], sys.argv[2]
bins = Bins()
h = Harness("seal-path")
PROMPTS = ["Once upon a time", "Lily and Tom", "The little dog"]


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def body(h):
    if h.insecure:
        print("SKIP: SWISD_INSECURE=1 runs without keys, so without sealing")
        sys.exit(77)
    want = {p: run_local(bins, p, 30) for p in PROMPTS}
    _, ep = start_broker(h, bins, "broker")
    start_stage(h, bins, "s0", ep, "0-1")
    _, sid1 = start_stage(h, bins, "s1", ep, "2-4")
    gw, rpc, port = start_gateway(h, bins, "gateway", ep, http=True)
    h.check(wait_servable(bins, rpc), "the sealed swarm never became servable")
    # 1. exact text through sealed hops
    for p in PROMPTS:
        rc, o, e = generate(bins, rpc, p, 30, 120)
        h.check(rc == 0 and o == want[p], f"sealed swarm: {p!r}: {rc} {o!r} != {want[p]!r} {e[-200:]}")
    h.check("swisd_unsealed_replies_total 0" in metrics(port), "honest stages' replies were counted as unsealed")

    # 2. answers sealed under another key: rejected, counted per node, never admitted
    ws, ws_id = h.start("wrong-seal", [attacker, "wrong-seal", ep, model_path(), 0, 4, 0.001, 12],
                        ready="wrong-seal ")
    h.check(wait_until(lambda: re.search(r"swisd_unsealed_replies_total [1-9]", metrics(port)), 10, 0.2),
            "the gateway never counted the forged answers")
    for p in PROMPTS:
        rc, o, e = generate(bins, rpc, p, 30, 120)
        h.check(rc == 0 and o == want[p], f"with a forger: {p!r}: {rc} {o!r} {e[-200:]}")
    m = metrics(port)
    h.check(re.search(r"swisd_unsealed_replies_total [1-9]", m) is not None, f"no unsealed reply counted: {m[-600:]}")
    h.check(re.search(r'swisd_unsealed_replies_by_node_total\{node="%s"\} [1-9]' % ws_id, m) is not None,
            f"the forger's node is not counted: {m[-600:]}")
    h.check(f"from stage {ws_id[:16]} does not open with its key" in gw.output("err"),
            "the gateway did not log the rejected reply")
    ws.stop()
    out = ws.output("out")
    h.check("sessions swallowed 0," in out, f"a real session was routed to the forger: {out}")

    # 3. a replayed sealed body is refused; the original is served
    r = subprocess.run([poke, "stage", ep, sid1, "2", "5", "64", node_key(h, bins, "s1")], capture_output=True,
                       text=True, timeout=60)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("probe")]
    h.check(len(lines) == 6 and lines[4].endswith(": reply"), f"a sealed step was not served: {r.stdout} {r.stderr}")
    h.check(len(lines) == 6 and "BAD_SEAL" in lines[5], f"a replayed sealed body was not refused: {r.stdout}")
    rc, o, e = generate(bins, rpc, PROMPTS[0], 30, 120)
    h.check(rc == 0 and o == want[PROMPTS[0]], f"after the replay: {rc} {e[-200:]}")


h.run(body)
