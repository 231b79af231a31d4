#!/usr/bin/env python3
"""The lying stage (tests/liar_stage.c, issue 12) in a real swarm.

A secure broker, an honest stage for layers 0-1 and a gateway; layers 2-4
are held only by a liar_stage, started once per way of lying. For each:
1. it registers as the honest model: the broker logs it with the honest
   model's name and layers, and the gateway, which asks its directory for
   the honest file's checksum only, lists it in /api/swarm and plans it
   (the finished generation's route names it);
2. the greedy text through the chain is compared with `swisd run`'s on the
   honest file: identical for the honest controls (--lie none, a rate of 0,
   lying only after more requests than the test makes), different for every
   lie (noise, identity, other weights from `swisd synth`, the q4_0 copy
   from `swisd quantize` presented as the f32 file, lying on half of the
   requests, lying after 5 requests);
3. its exit line counts its lies: 0 for the controls, > 0 for the liars.
usage: test_liar.py LIAR_STAGE   (other binaries from $SWISD_BUILD)
"""
import json
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Bins, Harness, generate, key_args, lie_models, model_path, run_local, start_broker, start_gateway,  # noqa: E402
                     start_stage, wait_until)

liar_bin = sys.argv[1]
bins = Bins()
h = Harness("liar", verbose=True)
PROMPT = "Once upon a time"
N = 60


def swarm(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/swarm", timeout=10) as r:
            return json.loads(r.read())
    except OSError:
        return {}


def body(h):
    check = h.check
    model = model_path()
    synth, q4 = lie_models(h, bins, model)
    ref = run_local(bins, PROMPT, N)
    check(len(ref) > len(PROMPT) + 40, f"the reference text: {ref!r}")
    for other in (synth, q4):  # the lies are visible even alone: another text than the honest file's
        alone = run_local(bins, PROMPT, N, model=other)
        check(alone.strip() and alone != ref, f"{os.path.basename(other)} alone gives another text: {alone[:80]!r}")

    b, ep = start_broker(h, bins, "broker")
    start_stage(h, bins, "stage-a", ep, "0-1")
    gw, rpc, port = start_gateway(h, bins, "gateway", ep, http=True)
    cases = [  # (name, liar arguments, tells the truth)
        ("honest", ["--lie", "none"], True),
        ("noise at rate 0", ["--lie", "noise", "--lie-rate", "0"], True),
        ("identity after 100000", ["--lie", "identity", "--lie-after", "100000"], True),
        ("noise", ["--lie", "noise"], False),
        ("identity", ["--lie", "identity"], False),
        ("other weights", ["--lie", "weights:" + synth], False),
        ("lower precision", ["--lie", "precision:" + q4], False),
        ("noise at rate 0.5", ["--lie", "noise", "--lie-rate", "0.5", "--lie-seed", "3"], False),
        ("identity after 5", ["--lie", "identity", "--lie-after", "5"], False),
    ]
    for i, (name, args, honest) in enumerate(cases):
        who = f"liar-{i}"
        argv = [liar_bin, "--broker", ep, "--model", model, "--layers", "2-4", "--threads", "1"] + \
            key_args(h, bins, who) + args
        p, rest = h.start(who, argv, ready="liar_stage:")
        lid = rest.split()[0]
        line = b.wait_line(f"stage {lid} registered", 10, "err")
        check(line is not None and "model stories260K, layers [2, 5)" in line,
              f"{name}: registers as the honest model's layers 2-4: {line}")
        seen = wait_until(lambda: any(s.get("node_id") == lid and s.get("model_id") == "stories260K"
                                      for s in swarm(port).get("stages", [])), 20, 0.2)
        check(seen, f"{name}: the gateway (asking for the honest checksum) lists it")
        start = gw.mark()
        rc, out, err = generate(bins, rpc, PROMPT, N)
        check(rc == 0, f"{name}: the generation ends: rc {rc} {err[-300:]}")
        route = gw.wait_match(r"done \(.*via (\S+)", 10, "any", start)
        check(route is not None and lid[:16] in route.group(1).split(","),
              f"{name}: the gateway planned it: {route and route.group(1)}")
        if honest:
            check(out == ref, f"{name}: the reference text exactly: {out[-80:]!r} vs {ref[-80:]!r}")
        else:
            check(rc == 0 and out != ref, f"{name}: another text than the reference: {out[:100]!r}")
        h.stop(p)
        counts = p.wait_match(r"liar_stage: (\d+) requests, (\d+) lies", 5, "out")
        lies = int(counts.group(2)) if counts else -1
        check(counts and int(counts.group(1)) > 0 and ((lies == 0) if honest else (lies > 0)),
              f"{name}: its count of lies: {counts and counts.group(0)}")
        gone = wait_until(lambda: not any(s.get("node_id") == lid for s in swarm(port).get("stages", [])), 20, 0.2)
        check(gone, f"{name}: gone from the directory once stopped")


h.run(body)
