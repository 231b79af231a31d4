#!/usr/bin/env python3
"""A ban reaches every broker (issue 12, docs/security.md "Bans that reach
every broker"), with real processes:

A tree of three secure brokers (root, eu and us below it), one stage serving
every layer in each region, a gateway in eu with an admin token. The
operator bans the us stage at the gateway's /admin/ban; then:
1. within 2 s every broker logs the ban (naming the gateway and the reason),
   the us broker drops the stage, and a new process with the banned key is
   refused at the handshake by each of the three brokers, the refusal logged
   with the reason;
2. a generation running through the swarm during the ban ends with the text
   of `swisd run`, and generations after it go through the eu stage only;
3. a broker that joins the tree later gets the bans held from its parent
   (each broker sends its bans to a child that registers and to its parent
   when it registers there); the us broker, restarted on the same port,
   reads the ban back from its --ban-state file (the per-user default) and
   still refuses the key;
4. a BanNotice sent by a plain stage is refused (UNAUTHORIZED to it, a
   logged refusal) and bans nobody;
5. forged and oversized notices from a listed gateway key (an id that is
   not a fingerprint, a key that is not the id's, an end 10 years ahead, a
   key of 31 bytes, a reason of 300 bytes, a 100 KiB body) are refused with
   a reason and crash nothing: the swarm still gives the same text;
6. /admin/unban lifts the ban at every broker, and the formerly banned key
   registers again (a restarted stage: libzmq does not dial again after a
   refused handshake); a broker that was down during the unban comes back
   with the ban in its file, gets the lift from its parent, and its stale
   ban changes nothing elsewhere (the later decision wins);
7. an --insecure broker takes a ban from any node in the gateway role (no
   keys there), refuses the id at Hello and keeps it in --ban-state.
usage: test_ban_propagation.py BROKER_PEER   (other binaries from $SWISD_BUILD)
"""
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Bins, Harness, model_path, node_key, run_local, start_broker, start_gateway, start_generate,  # noqa: E402
                     start_stage, wait_servable, wait_until)

peer_bin = sys.argv[1]
bins = Bins()
h = Harness("ban_propagation", verbose=True)
PROMPT = "Once upon a time"
N = 200


# ---- protobuf encoding of a Body{ban_notice} (protos/node.proto), by hand

def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def fb(field, data):
    data = data.encode() if isinstance(data, str) else data
    return varint(field << 3 | 2) + varint(len(data)) + data


def ban_body(node_id, until, reason="", key=b""):
    notice = fb(1, node_id) + (fb(2, key) if key else b"") + varint(3 << 3) + varint(until) + fb(4, reason)
    return fb(14, notice)


def call(port, path, body=None, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode() if body else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def broker(name, *args, **kw):
    b, ep = start_broker(h, bins, name, *args, **kw)
    b.endpoint = ep
    b.id = b.wait_line("swisd-broker: id", 5).split()[0]
    return b


def peer(name, endpoint, *args):
    """A broker_peer (tests/broker_peer.c) registered at endpoint."""
    p, _ = h.start(name, [peer_bin, "--broker", endpoint] + list(args), stdin=True)
    ready = p.next_event(lambda e: e.get("ev") == "ready", 10)
    p.id = ready and ready["id"]
    p.reg = p.next_event(lambda e: e.get("ev") == "registered", 10)
    return p


def public_z85(key_path):
    with open(key_path) as f:
        return f.read().split('public-key = "', 1)[1].split('"', 1)[0]


def body(h):
    check = h.check
    root = broker("broker-root")
    eu = broker("broker-eu", parent=root.endpoint, region="eu")
    us = broker("broker-us", parent=root.endpoint, region="us")
    brokers = [root, eu, us]
    for b in brokers:
        check(b.wait_line("swisd-broker: ban state in", 5) is not None, f"{b.name} says where it keeps its bans")
    stage_eu, eu_id = start_stage(h, bins, "stage-eu", eu.endpoint, "0-4", region="eu")
    stage_us, us_id = start_stage(h, bins, "stage-us", us.endpoint, "0-4", region="us")
    token_file = os.path.join(h.logdir, "admin.token")
    gw, rpc, port = start_gateway(h, bins, "gateway", eu.endpoint, "--admin-token-file", token_file, "--state-db",
                                  os.path.join(h.logdir, "state.db"), "--http-rate", "1000", http=True)
    token = open(token_file).read().strip()
    check(wait_servable(bins, rpc, 60), "the two-region swarm serves")
    check(us.wait_line(f"stage {us_id} registered", 10, "err") is not None, "the us stage is registered in us")
    local = run_local(bins, PROMPT, N, "--ignore-eos")

    # an id that is no key's fingerprint: the gateway bans it locally, its broker refuses the notice, and the
    # gateway says so in its log
    st, text = call(port, "/admin/ban", {"node": "not-a-fingerprint", "reason": "typo"}, token)
    check(st == 200, f"/admin/ban of a free id: {st} {text}")
    line = gw.wait_line("our broker refused a message of ours (BAD_REQUEST): ban notice", 5, "err")
    check(line is not None and "16 lowercase hex" in line, f"the gateway logs the broker's refusal: {line}")
    call(port, "/admin/unban", {"node": "not-a-fingerprint"}, token)

    # 1-2. ban the us stage while a generation runs
    g = start_generate(bins, rpc, PROMPT, N, "--ignore-eos", "--timeout-ms", "120000")
    check(g.wait_output(len(PROMPT) + 4, 60), "the generation started")
    marks = [b.mark() for b in brokers]
    t0 = time.monotonic()
    st, text = call(port, "/admin/ban", {"node": us_id, "reason": "lied in an audit", "duration_s": 3600}, token)
    check(st == 200 and json.loads(text)["banned"], f"/admin/ban: {st} {text}")
    for b, m in zip(brokers, marks):
        line = b.wait_line(f"node {us_id} banned", 5, "err", m)
        took = time.monotonic() - t0
        check(line is not None and "lied in an audit" in line, f"{b.name} holds the ban ({line})")
        check(line is not None and took < 2.0, f"{b.name} got the ban within 2 s ({took:.2f} s)")
    check(us.wait_line(f"stage {us_id} is banned; dropped", 5, "err", marks[2]) is not None,
          "the us broker dropped the banned stage")
    rc, out, err = g.finish()
    check(rc == 0 and out.rstrip() == local.rstrip(),
          f"the generation across the ban gives swisd run's text: rc {rc}, {out[-60:]!r} vs {local[-60:]!r} {err[-200:]}")
    start = gw.mark()
    for i in range(3):
        st, text = call(port, "/v1/completions", {"prompt": f"Lily {i}", "max_tokens": 6, "temperature": 0})
        check(st == 200, f"a completion after the ban: {st} {text[:200]}")
    with gw._cv:
        routes = [m.group(1) for m in (re.search(r"done \(.*via (\S+)", l) for _, l in gw.lines[start:]) if m]
    check(routes and all(r == eu_id[:16] for r in routes), f"after the ban every route is the eu stage: {routes}")

    # the banned key, in a new process, at each broker: refused at the handshake with the reason
    for b in brokers:
        m = b.mark()
        p, _ = h.start(f"banned-at-{b.name}", [bins.stage, "--broker", b.endpoint, "--model", model_path(),
                                               "--layers", "0-4", "--key", node_key(h, bins, "stage-us"),
                                               "--threads", "1"])
        line = b.wait_line(f"(key {us_id}): key is banned", 10, "err", m)
        check(line is not None and "lied in an audit" in line, f"{b.name} refuses the banned key: {line}")
        check(b.wait_line(f"stage {us_id} registered", 1.0, "err", m) is None,
              f"the banned key does not register at {b.name}")
        h.stop(p)

    # a broker that joins the tree after the ban learns it from its parent
    t0 = time.monotonic()
    asia = broker("broker-asia", parent=root.endpoint, region="asia")
    line = asia.wait_line(f"node {us_id} banned", 5, "err")
    check(line is not None and "lied in an audit" in line and time.monotonic() - t0 < 5,
          f"a broker joining later holds the ban ({time.monotonic() - t0:.2f} s after its start): {line}")
    check(root.wait_line("sent the 1 bans held to child broker " + asia.id, 5, "err") is not None,
          "the root sent its bans to the new child")
    m = asia.mark()
    p, _ = h.start("banned-at-asia", [bins.stage, "--broker", asia.endpoint, "--model", model_path(), "--layers",
                                       "0-4", "--key", node_key(h, bins, "stage-us"), "--threads", "1"])
    check(asia.wait_line(f"(key {us_id}): key is banned", 10, "err", m) is not None,
          "the new broker refuses the banned key")
    h.stop(p)

    # 3. restart the us broker (same key, same port): the ban is read back from its file
    us_bind = us.endpoint.split("#", 1)[0]
    h.stop(us)
    us = broker("broker-us", parent=root.endpoint, region="us", bind=us_bind)
    brokers[2] = us
    check(us.wait_line("1 bans read back", 5, "err") is not None, "the restarted us broker reads its ban back")
    line = us.wait_line(f"(key {us_id}): key is banned", 10, "err")
    check(line is not None, f"the restarted us broker refuses the banned stage's reconnect: {line}")

    # 4. a ban notice from a plain stage: refused, logged, and bans nobody
    victim = peer("victim", eu.endpoint, "--role", "stage", "--model", "m", "--checksum", "c", "--layers", "0-1",
                  "--key", node_key(h, bins, "victim"))
    rogue = peer("rogue", eu.endpoint, "--role", "stage", "--model", "m", "--checksum", "c", "--layers", "0-1",
                 "--key", node_key(h, bins, "rogue"))
    check(victim.reg and rogue.reg, "two plain stages registered")
    m = eu.mark()
    rogue.send_line(f"send {eu.id} " + ban_body(victim.id, int(time.time()) + 600, "I say so").hex())
    ev = rogue.next_event(lambda e: e.get("kind") == "error", 5)
    check(ev and ev.get("code") == "UNAUTHORIZED", f"the rogue stage is told UNAUTHORIZED: {ev}")
    check(eu.wait_line(f"refused a ban notice from stage {rogue.id}", 5, "err", m) is not None,
          "the refusal is logged")
    time.sleep(1.0)
    check(not any(b.has(f"node {victim.id} banned", "err") for b in brokers), "nobody banned the victim")
    victim.send_line("status")
    ev = victim.next_event(lambda e: e.get("ev") == "status", 5)
    check(ev and ev.get("registered"), f"the victim is still registered: {ev}")

    # 5. forged and oversized notices from a gateway key on the list
    fake = peer("fake-gw", eu.endpoint, "--role", "gateway", "--key", node_key(h, bins, "fake-gw", trusted=True))
    check(fake.reg, "a listed gateway key registers")
    key32 = bytes(range(32))
    now = int(time.time())
    forged = [("not a fingerprint", ban_body("STAGE-1", now + 60), "BAD_REQUEST"),
              ("a key that is not the id's", ban_body(victim.id, now + 60, key=key32), "BAD_REQUEST"),
              ("ten years ahead", ban_body(victim.id, now + 3650 * 86400), "BAD_REQUEST"),
              ("a key of 31 bytes", ban_body(victim.id, now + 60, key=key32[:31]), "BAD_FRAME"),
              ("a reason of 300 bytes", ban_body(victim.id, now + 60, "x" * 300), "BAD_FRAME"),
              ("a 100 KiB body", ban_body(victim.id, now + 60, "y" * 100000), "BAD_FRAME"),
              ("a truncated body", ban_body(victim.id, now + 60, "z")[:-3], "BAD_FRAME")]
    for what, b, code in forged:
        fake.send_line(f"send {eu.id} " + b.hex())
        ev = fake.next_event(lambda e: e.get("kind") == "error", 5)
        check(ev and ev.get("code") == code, f"{what}: refused with {code}: {ev}")
    time.sleep(0.5)
    check(not any(b.has(f"node {victim.id} banned", "err") for b in brokers), "no forged notice banned anybody")
    check(all(b.alive() for b in brokers), "every broker is still running")
    st, text = call(port, "/v1/completions", {"prompt": PROMPT, "max_tokens": 24, "temperature": 0})
    ref = run_local(bins, PROMPT, 24)
    got = json.loads(text)["choices"][0]["text"] if st == 200 else ""
    check(st == 200 and ref.rstrip().endswith(got.rstrip()) and got.strip(),
          f"the swarm still gives swisd run's text: {got!r} vs {ref!r}")

    # 6. unban: lifted at every broker (asia is down meanwhile); the banned key registers again
    asia_bind = asia.endpoint.split("#", 1)[0]
    h.stop(asia)
    marks = [b.mark() for b in brokers]
    st, text = call(port, "/admin/unban", {"node": us_id}, token)
    check(st == 200 and not json.loads(text)["banned"], f"/admin/unban: {st} {text}")
    for b, m in zip(brokers, marks):
        check(b.wait_line(f"ban of node {us_id} lifted", 5, "err", m) is not None, f"{b.name} lifted the ban")
    # a node refused at the handshake does not dial again by itself (libzmq does not reconnect after a
    # ZAP refusal): the operator restarts it, and now it registers
    h.stop(stage_us)
    stage_us, again = start_stage(h, bins, "stage-us", us.endpoint, "0-4", region="us")
    check(again == us_id and us.wait_line(f"stage {us_id} registered", 15, "err", marks[2]) is not None,
          "the formerly banned key registers again at the us broker")
    # asia comes back with the ban in its file: the later lift wins, and the old ban does not come back
    asia = broker("broker-asia", parent=root.endpoint, region="asia", bind=asia_bind)
    check(asia.wait_line("1 bans read back", 5, "err") is not None, "asia comes back holding the old ban")
    check(asia.wait_line(f"ban of node {us_id} lifted", 5, "err") is not None, "its parent's lift reaches it")
    time.sleep(1.0)
    check(not any(b.wait_line(f"node {us_id} banned", 0.1, "err", m) for b, m in zip(brokers, marks)),
          "the stale ban asia sent up changed nothing elsewhere")
    check(us.wait_line(f"stage {us_id} is banned", 0.1, "err", marks[2]) is None, "the stage stays registered")

    insecure(h)


def insecure(h):
    """7. --insecure (docs/security.md): no keys, so any node in the gateway role may ban any id; the ban
    refuses that id at Hello, drops it, and is kept in --ban-state."""
    check = h.check
    h.insecure = True  # start_broker without keys
    try:
        state = os.path.join(h.logdir, "insecure-bans.txt")
        b = broker("broker-insecure", "--ban-state", state)
    finally:
        h.insecure = False
    gw = peer("insecure-gw", b.endpoint, "--role", "gateway", "--id", "gw-1")
    st = peer("insecure-stage", b.endpoint, "--role", "stage", "--id", "stage-x", "--model", "m", "--checksum", "c",
              "--layers", "0-1")
    check(gw.reg and st.reg, "plain nodes registered at the insecure broker")
    gw.send_line(f"send {b.id} " + ban_body("stage-x", int(time.time()) + 60, "insecure test").hex())
    check(b.wait_line("node stage-x banned", 5, "err") is not None, "an insecure broker takes a gateway-role ban")
    check(b.wait_line("stage stage-x is banned; dropped", 5, "err") is not None, "and drops the node")
    again = peer("insecure-stage-again", b.endpoint, "--role", "stage", "--id", "stage-x", "--model", "m",
                 "--checksum", "c", "--layers", "0-1")
    check(not again.reg and b.wait_line("node stage-x is banned until", 5, "err") is not None,
          "a new Hello under the banned id is refused")
    with open(state) as f:
        check(f.read().count("stage-x ") == 1, "the ban is kept in --ban-state")


h.run(body)
