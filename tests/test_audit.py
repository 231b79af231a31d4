#!/usr/bin/env python3
"""Audits catch lying stages (issue 12; docs/security.md "Verification"),
with real processes: honest stages, lying stages (tests/liar_stage.c) that
present the honest model's identity, several concurrent clients.

1. An operator's audit stage decides: layers 0-2 are served by an honest
   stage and a liar (noise), 3-4 by an honest stage; an audit stage per range
   has its key in the gateway's --trusted-keys. Three clients at once run
   greedy generations: every delivered text equals `swisd run`'s; the liar is
   named in the gateway's log and in /api/swarm's audit.caught, its sessions
   started again elsewhere; no honest stage is caught; the honest stages have
   verified steps; the liar's ban reaches the broker (it is refused).
2. Two of three, no operator: a second gateway (no --trusted-keys) on a
   swarm with two honest hosts of 0-2 and a liar that skips its layers
   (identity) catches it through a third host.
3. A liar that first earns trust (--lie-after: honest for its first
   requests, noise after) behind a gateway with --audit-hold all and a short
   --audit-trust: every delivered text still equals `swisd run`'s (text
   waits for its audit whatever the stage's trust), the liar is caught, and
   it did lie (its exit line counts lies).
usage: test_audit.py LIAR_STAGE   (other binaries from $SWISD_BUILD)
"""
import json
import os
import shutil
import sys
import threading
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Bins, Harness, generate, key_args, model_path, node_key, run_local, start_broker,  # noqa: E402
                     start_gateway, start_stage, wait_until)

liar_bin = sys.argv[1]
bins = Bins()
h = Harness("audit", verbose=True)
PROMPTS = ["Once upon a time", "Lily and Tom", "The little dog", "One day, a bird", "Sam had a red ball",
           "The sun was"]
N = 40


def api(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/swarm", timeout=10) as r:
        return json.loads(r.read())


def admin(port, path, body, token):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def liar(name, ep, layers, *args):
    argv = [liar_bin, "--broker", ep, "--model", model_path(), "--layers", layers, "--threads", "1"] + \
        key_args(h, bins, name) + list(args)
    p, rest = h.start(name, argv, ready="liar_stage:")
    return p, rest.split()[0]


def clients(rpc, refs, rounds):
    """Three clients at once, `rounds` generations each: [(prompt, rc, out, err)]."""
    results, lock = [], threading.Lock()

    def run(k):
        for r in range(rounds):
            p = PROMPTS[(k + r) % len(PROMPTS)]
            rc, out, err = generate(bins, rpc, p, N)
            with lock:
                results.append((p, rc, out, err))
    ts = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results


def body(_h):
    check = h.check
    refs = {p: run_local(bins, p, N) for p in PROMPTS}

    # 1. an operator's audit stage decides
    b, ep = start_broker(h, bins, "broker")
    operator = os.path.join(h.logdir, "operator-keys")
    os.makedirs(operator)
    _, honest0 = start_stage(h, bins, "honest-0", ep, "0-2")
    start_stage(h, bins, "honest-3", ep, "3-4")
    for lo, hi in ((0, 2), (3, 4)):
        shutil.copy(node_key(h, bins, f"audit-{lo}"), operator)
        start_stage(h, bins, f"audit-{lo}", ep, f"{lo}-{hi}", "--audit")
    token_file = os.path.join(h.logdir, "admin.token")
    gw, rpc, port = start_gateway(h, bins, "gateway", ep, "--trusted-keys", operator, "--admin-token-file",
                                  token_file, "--state-db", os.path.join(h.logdir, "state.db"), http=True)
    token = open(token_file).read().strip()
    lp, lid = liar("liar-noise", ep, "0-2", "--lie", "noise")
    check(wait_until(lambda: len(api(port)["stages"]) == 5, 20, 0.3), "the gateway sees 5 stages")
    # the honest host of 0-2 is drained, so sessions go through the liar; once the liar is caught it takes the
    # sessions that start again
    check(admin(port, "/admin/drain", {"node": honest0}, token) == 200, "the honest host of 0-2 is drained")

    def undrain_when_caught():
        wait_until(lambda: lid in api(port)["audit"]["caught"], 60, 0.05)
        admin(port, "/admin/undrain", {"node": honest0}, token)
    watcher = threading.Thread(target=undrain_when_caught)
    watcher.start()
    results = clients(rpc, refs, 4)
    watcher.join()
    bad = [(p, rc, err[-200:]) for p, rc, out, err in results if rc != 0 or out != refs[p]]
    check(not bad, f"1) every delivered text equals swisd run's ({len(results)} generations; wrong: {bad[:2]})")
    sw = api(port)
    check(lid in sw["audit"]["caught"], f"1) the liar {lid[:8]} is caught: {sw['audit']}")
    check(gw.wait_line(f"stage {lid} failed an audit", 5, stream="err") is not None,
          "1) the gateway's log names it")
    check(len(sw["audit"]["caught"]) == 1, f"1) no honest stage is caught: {sw['audit']['caught']}")
    check(b.wait_line(f"{lid}", 5, stream="err") is not None and
          wait_until(lambda: not any(s["node_id"] == lid for s in api(port)["stages"]), 10, 0.2),
          "1) the liar's ban reached the broker: it is gone from the directory")
    honest = [s["node_id"] for s in sw["stages"] if s["node_id"] != lid and not s.get("audit_stage")]

    def verified():  # the gateway writes verified results to its state database once a second
        trust = {s["node_id"]: s.get("trust", {}) for s in api(port)["stages"]}
        return [trust.get(i, {}).get("verified", 0) for i in honest]
    check(honest and wait_until(lambda: all(v > 0 for v in verified()), 5, 0.2),
          f"1) the honest stages have verified steps: {verified()}")
    check(sw["audit"]["chain_breaks"] == 0 and sw["audit"]["max_agreeing_distance"] < sw["audit"]["threshold"],
          f"1) honest comparisons agree well below the threshold: {sw['audit']}")
    rc, out, err = generate(bins, rpc, PROMPTS[0], N)
    check(rc == 0 and out == refs[PROMPTS[0]], f"1) after the ban the swarm serves the exact text ({rc})")

    # 2. two of three: no operator; a third honest host decides. Both honest hosts of 0-2 are drained (no
    # user work, audits still), so sessions go through the liar; undrained once it is caught.
    b2, ep2 = start_broker(h, bins, "broker-2")
    _, ha = start_stage(h, bins, "h2-a", ep2, "0-2")
    _, hb = start_stage(h, bins, "h2-b", ep2, "0-2")
    start_stage(h, bins, "h2-c", ep2, "3-4")
    start_stage(h, bins, "h2-d", ep2, "3-4")
    token_file2 = os.path.join(h.logdir, "admin2.token")
    gw2, rpc2, port2 = start_gateway(h, bins, "gateway-2", ep2, "--admin-token-file", token_file2, "--state-db",
                                     os.path.join(h.logdir, "state2.db"), http=True)
    token2 = open(token_file2).read().strip()
    lp2, lid2 = liar("liar-identity", ep2, "0-2", "--lie", "identity")
    check(wait_until(lambda: len(api(port2)["stages"]) == 5, 20, 0.3), "2) the second gateway sees 5 stages")
    for node in (ha, hb):
        admin(port2, "/admin/drain", {"node": node}, token2)

    def undrain2():
        wait_until(lambda: lid2 in api(port2)["audit"]["caught"], 60, 0.05)
        for node in (ha, hb):
            admin(port2, "/admin/undrain", {"node": node}, token2)
    watcher2 = threading.Thread(target=undrain2)
    watcher2.start()
    results = clients(rpc2, refs, 4)
    watcher2.join()
    bad = [(p, rc, err[-200:]) for p, rc, out, err in results if rc != 0 or out != refs[p]]
    check(not bad, f"2) every delivered text equals swisd run's ({len(results)}; wrong: {bad[:2]})")
    sw2 = api(port2)
    caught = sw2["audit"]["caught"]
    check(caught == [lid2] or (lid2 in caught and len(caught) == 1),
          f"2) the liar that skips its layers is caught by two of three, nobody else: {caught}")
    if lid2 in caught:
        check(gw2.wait_line("asking a third host", 1, stream="err") is not None or
              gw2.wait_line(f"stage {lid2} failed an audit", 1, stream="err") is not None,
              "2) the gateway asked a third host or decided")


    # 3. a liar that lies only after earning trust, behind --audit-hold all. The honest host of 0-2 is drained
    # (sessions go through the liar) until the liar is caught.
    b3, ep3 = start_broker(h, bins, "broker-3")
    _, head3 = start_stage(h, bins, "h3-head", ep3, "0-2")
    start_stage(h, bins, "h3-tail", ep3, "3-4")
    operator3 = os.path.join(h.logdir, "operator-keys-3")
    os.makedirs(operator3)
    for lo, hi in ((0, 2), (3, 4)):
        shutil.copy(node_key(h, bins, f"audit3-{lo}"), operator3)
        start_stage(h, bins, f"audit3-{lo}", ep3, f"{lo}-{hi}", "--audit")
    token_file3 = os.path.join(h.logdir, "admin3.token")
    gw3, rpc3, port3 = start_gateway(h, bins, "gateway-3", ep3, "--trusted-keys", operator3, "--audit-hold", "all",
                                     "--audit-trust", "3", "--admin-token-file", token_file3,
                                     "--state-db", os.path.join(h.logdir, "state3.db"), http=True)
    token3 = open(token_file3).read().strip()
    lp3, lid3 = liar("liar-later", ep3, "0-2", "--lie", "noise", "--lie-after", "3000")
    check(wait_until(lambda: len(api(port3)["stages"]) == 5, 20, 0.3), "3) the third gateway sees 5 stages")
    admin(port3, "/admin/drain", {"node": head3}, token3)
    trust3, caught3 = [], threading.Event()

    def undrain3():
        def caught():
            sw3 = api(port3)
            trust3.extend(s.get("trust", {}) for s in sw3["stages"] if s["node_id"] == lid3)
            return lid3 in sw3["audit"]["caught"]
        wait_until(caught, 90, 0.25)  # /api/swarm is under the fair-use limits too
        admin(port3, "/admin/undrain", {"node": head3}, token3)
        caught3.set()
    watcher3 = threading.Thread(target=undrain3)
    watcher3.start()
    wrong = []
    for r in range(200):  # ~70 generations of N tokens reach the liar's 3000 requests (seconds: trust is written once a second)
        p = PROMPTS[r % len(PROMPTS)]
        rc, out, err = generate(bins, rpc3, p, N)
        if rc != 0 or out != refs[p]:
            wrong.append((p, rc, err[-200:]))
        if caught3.is_set():
            break
    watcher3.join()
    trusted_seen = any(t.get("trusted") for t in trust3)
    check(trusted_seen, f"3) the liar earned trust before it lied (its trust as seen: {sorted(set(map(str, trust3)))[:8]})")
    check(not wrong, f"3) with --audit-hold all every delivered text equals swisd run's (wrong: {wrong[:2]})")
    check(lid3 in api(port3)["audit"]["caught"], f"3) the liar that lied after earning trust is caught: "
          f"{api(port3)['audit']}")
    h.stop(lp3)
    m = lp3.wait_match(r"liar_stage: (\d+) requests, (\d+) lies", 5, "out")
    check(m is not None and int(m.group(2)) > 0, f"3) it did lie: {m.group(0) if m else 'no exit line'}")

h.run(body)
