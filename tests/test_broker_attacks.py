#!/usr/bin/env python3
"""Attacks on swisd-broker (issue 19: one hostile client must not take the
swarm down). Real broker processes on loopback; the attacker is a real
process (tests/broker_peer, or a bare DEALER with --raw) speaking the real
protocol over real ZeroMQ sockets. Frames are encoded here by hand from the
.proto field numbers (see test_broker.py).

  1) id takeover: a real swisd-stage is registered; an attacker sends Hello
     with its id hundreds of times, from one connection and from many, then
     Hello + Goodbye. The stage stays registered, bound to its own connection
     (frames to it reach it, none reach the attacker), the attacker gets Error
     UNAUTHORIZED each time, the broker's log of refusals stays short. A stage
     that restarts with the same id is admitted: at once when its old
     connection is gone, after expiry when the old one is stopped.
  2) roles and src: Hello with role 99 or 0 -> Error BAD_REQUEST, not
     registered; a 100 KB Hello -> BAD_FRAME before unpacking; Hello with
     the broker's own id -> UNAUTHORIZED; a plain
     node's forged src is overwritten; registration traffic (HelloAck,
     UNKNOWN_NODE) a node sends to another through the broker is ignored by
     the receiving client library; a node registered as BROKER cannot
     claim the src of a local node or of a node another child broker reported,
     and cannot steal such a node's route by reporting it.
  3) slow reader: a stage that never reads while a flooder sends it frames,
     and a gateway that floods directory queries and never reads. The broker's
     stderr stays under 50 lines, the flooder gets OVERLOADED at most once per
     second, another gateway's directory queries are all answered, the drops
     are counted per peer in the broker's log, the peer that does not read is
     dropped from the registry.
  4) SIGTERM during such a flood ends the broker with status 0 within 10 s.
  5) a squatter on a dead broker's port: a regional broker dies and another
     process (a gateway's RPC socket) takes its port and answers every frame.
     A stage that knows two brokers still moves to the second one: only
     frames relayed by its broker or signed with its broker's id count as a
     sign of life.

Parts can be run alone: SWISD_ATTACKS=takeover,roles,flood,squat (the default
is all).

usage: test_broker_attacks.py SWISD_BROKER BROKER_PEER SWISD_STAGE SWISD_GATEWAY
Python 3 standard library only.
"""
import os
import re
import signal
import sys
import time

import test_broker as tb
from harness import model_path  # noqa: E402
from test_broker import (start, broker, check, fb, fv, header, ids, msg_pred, peer, poll_dir, query,
                         body_forward_reply)

STAGE = sys.argv[3] if len(sys.argv) > 3 else os.path.join(tb.BUILD, "stage", "swisd-stage")
GATEWAY = sys.argv[4] if len(sys.argv) > 4 else os.path.join(tb.BUILD, "gateway", "swisd-gateway")
MODEL = model_path()  # the repository's stories260K (models/), so a bare clone runs this test too
HB, EXP = tb.HB, tb.EXP


# ------------------------------------------------------------ bodies

def body_hello(node_id, role=1, region="", model="m1", begin=0, end=5):
    h = fv(1, role) + fb(2, node_id) + fb(3, region)
    if model is not None:
        h += fb(4, fb(1, model) + fb(2, "") + fv(3, 5) + fv(4, 64)) + fb(5, fv(1, begin) + fv(2, end))
    return fb(2, h)


def body_goodbye(reason="bye"):
    return fb(6, fb(1, reason))


def body_report(region, stages=(), nodes=()):
    r = fb(1, region)
    for sid, model, begin, end in stages:
        r += fb(2, fb(1, sid) + fb(2, region) + fb(3, fb(1, model) + fv(3, 5) + fv(4, 64))
                + fb(4, fv(1, begin) + fv(2, end)))
    for n in nodes:
        r += fb(3, n)
    return fb(9, r)


def body_hello_ack(broker_id, heartbeat_ms, expiry_ms):
    return fb(3, fb(1, broker_id) + fb(2, "x") + fv(3, heartbeat_ms) + fv(4, expiry_ms))


def body_error(code, text):
    return fb(1, fv(1, code) + fb(2, text))


def raw_cmd(src, dst, body):
    return "raw %s %s" % (header(src, dst).hex(), body.hex())


def err_lines(proc):
    return proc.output("err").splitlines()


def drain(p, seconds):
    """Events p printed within `seconds` (waits the whole time)."""
    end = time.time() + seconds
    out = []
    while True:
        e = p.next_event(lambda e: True, max(0.0, end - time.time()))
        if e is None:
            return out
        out.append(e)


# ------------------------------------------------------------ 1) id takeover

def test_takeover():
    b = broker("tk-root")
    st = start("tk-stage", [STAGE, "--broker", b.endpoint, "--model", MODEL, "--layers", "0-4", "--insecure", "--id", "st-real",
                           "--threads", "1"], json_lines=False)
    if st.wait_line("swisd-stage: st-real", 20) is None:
        check(False, "1) real stage started (see %s)" % st.log_path)
        return
    gw = peer("tk-gw", b.endpoint, "--role", "gateway", "--id", "tk-gw")
    listed = poll_dir(gw, lambda s: "st-real" in ids(s), 5)
    check("st-real" in ids(listed), "1) real swisd-stage st-real registered and listed")
    before = [s for s in listed if s["node_id"] == "st-real"]
    model = before[0]["model"] if before else None

    # from one connection, many times; then from 20 new connections
    atk = peer("tk-atk", b.endpoint, "--raw", registered=False)
    hello = raw_cmd("st-real", "", body_hello("st-real", model="evil", begin=0, end=5))
    replies = lambda e: e.get("ev") == "msg"
    atk.send_line("rep 166 " + hello)
    evs = [atk.next_event(replies, 3) for _ in range(166)]
    for _ in range(21):
        atk.send_line("reconnect")
        atk.send_line(hello)
        evs.append(atk.next_event(replies, 3))
    # Hello + Goodbye (from the last connection), the eviction of the issue
    atk.send_line(raw_cmd("st-real", "", body_goodbye("evict")))
    evs = [e for e in evs if e] + drain(atk, 1.0)
    acks = [e for e in evs if e.get("kind") == "hello_ack"]
    refusals = [e for e in evs if e.get("kind") == "error" and e.get("code") == "UNAUTHORIZED"]
    check(not acks, "1) the attacker got no HelloAck for st-real (%d acks)" % len(acks))
    check(len(refusals) == 187, "1) ... but an Error UNAUTHORIZED for each of its 187 Hellos (%d; %s)"
          % (len(refusals), refusals[0]["text"] if refusals else [e.get("kind") for e in evs[:3]]))

    listed = poll_dir(gw, lambda s: True, 2)
    after = [s for s in (listed or []) if s["node_id"] == "st-real"]
    check(len(after) == 1 and after[0]["model"] == model and model is not None,
          "1) st-real is still listed with its own model %s (listed: %s)" % (model, after and after[0]["model"]))
    # frames to st-real reach the real stage: a garbage body is answered BAD_FRAME by its client library
    garbage = b"\x0a\xff\xff\xff\xff\x0f garbage"
    gw.send_line(raw_cmd("tk-gw", "st-real", garbage))
    m = gw.next_event(msg_pred(kind="error", src="st-real"), 3)
    check(m is not None and m["code"] == "BAD_FRAME", "1) a frame to st-real reaches the real stage (it answers %s)"
          % (m and m["code"]))
    check(not [e for e in drain(atk, 0.5) if e.get("dst") == "st-real" and e.get("src") == "tk-gw"],
          "1) ... and nothing addressed to st-real reaches the attacker")
    st_log = st.output("err")
    check(st_log.count("registered with broker") == 1 and "does not know us" not in st_log,
          "1) the real stage was never knocked out (registered %d time(s))" % st_log.count("registered with broker"))
    refused_lines = [l for l in err_lines(b) if "st-real" in l and "refused" in l]
    check(1 <= len(refused_lines) <= 10, "1) the broker logged the refusals, rate-limited (%d lines for 187)"
          % len(refused_lines))

    # a node that restarts with the same id: after the old one's connection is gone -> at once
    st.p.kill()
    st.p.wait()
    st2 = start("tk-stage2", [STAGE, "--broker", b.endpoint, "--model", MODEL, "--layers", "0-4", "--insecure", "--id", "st-real",
                             "--threads", "1"], json_lines=False)
    st2.wait_line("swisd-stage: st-real", 20)
    ok = st2.wait_line("registered with broker", 10, "err") is not None
    check(ok, "1) a restarted st-real (old process killed) registers again")
    # ... while the old holder is alive (stopped, connection open): refused until it expires, then admitted
    st2.signal(signal.SIGSTOP)
    st3 = start("tk-stage3", [STAGE, "--broker", b.endpoint, "--model", MODEL, "--layers", "0-4", "--insecure", "--id", "st-real",
                             "--threads", "1"], json_lines=False)
    st3.wait_line("swisd-stage: st-real", 20)
    ok = st3.wait_line("registered with broker", 15, "err") is not None
    check(ok, "1) a second st-real is admitted once the stopped holder's registration expired")
    gw.send_line(raw_cmd("tk-gw", "st-real", garbage))
    m = gw.next_event(msg_pred(kind="error", src="st-real"), 3)
    check(m is not None and m["code"] == "BAD_FRAME", "1) ... and frames to st-real now reach it")
    st2.signal(signal.SIGCONT)
    for p in (st, st2, st3, gw, atk, b):  # peers first: a freed port may go to another test's broker
        p.stop()


# ------------------------------------------------------------ 2) roles and src

def test_roles_and_src():
    b = broker("rs-root")
    st = peer("rs-st", b.endpoint, "--role", "stage", "--id", "rs-st", "--model", "m1", "--layers", "0-5")
    gw = peer("rs-gw", b.endpoint, "--role", "gateway", "--id", "rs-gw")
    raw = peer("rs-raw", b.endpoint, "--raw", registered=False)
    for role in (99, 0):
        raw.send_line(raw_cmd("r%d" % role, "", body_hello("r%d" % role, role=role, model=None)))
        m = raw.next_event(lambda e: e.get("ev") == "msg", 3)
        check(m is not None and m["kind"] == "error" and m["code"] == "BAD_REQUEST" and "role" in m["text"],
              "2) Hello with role %d -> Error BAD_REQUEST (%s)" % (role, m and (m.get("code"), m.get("text"))))
        raw.send_line(raw_cmd("r%d" % role, "", tb.body_heartbeat()))
        m = raw.next_event(lambda e: e.get("ev") == "msg", 3)
        check(m is not None and m.get("code") == "UNKNOWN_NODE", "2) ... and the node is not registered (%s)"
              % (m and m.get("code")))
    # a Hello padded to 100 KB with a field the broker does not know (protobuf-c would keep it)
    raw.send_line(raw_cmd("fat", "", body_hello("fat", role=2, model=None) + fb(99, b"\0" * 100000)))
    m = raw.next_event(lambda e: e.get("ev") == "msg", 3)
    check(m is not None and m.get("code") == "BAD_FRAME" and "limit" in m.get("text", ""),
          "2) a 100 KB Hello is refused before unpacking (%s)" % str(m and (m.get("code"), m.get("text"))))
    raw.send_line(raw_cmd(b.id, "", body_hello(b.id, role=2, model=None)))
    m = raw.next_event(lambda e: e.get("ev") == "msg", 3)
    check(m is not None and m.get("code") == "UNAUTHORIZED", "2) Hello with the broker's own id -> UNAUTHORIZED (%s)"
          % (m and m.get("code")))

    # a plain node forging src: overwritten
    body = body_forward_reply("s", 1, b"x" * 64)
    gw.send_line(raw_cmd("rs-st", "rs-st", body))
    m = st.next_event(msg_pred(kind="forward_reply"), 3)
    check(m is not None and m["src"] == "rs-gw", "2) a gateway's forged src rs-st is overwritten with rs-gw (%s)"
          % (m and m["src"]))

    # registration traffic forged by a node and relayed: a HelloAck telling the stage to heartbeat
    # every 10 minutes (it would then expire), an UNKNOWN_NODE (it would re-register)
    gw.send_line("send rs-st " + body_error(3, "forged").hex())
    time.sleep(3 * HB / 1000)
    st.send_line("status")
    s_ = st.next_event(lambda e: e.get("ev") == "status", 3)
    check(s_ is not None and s_["registrations"] == 1, "2) a stage sent a forged UNKNOWN_NODE through the broker "
          "does not re-register (registrations: %s)" % (s_ and s_["registrations"]))
    gw.send_line("send rs-st " + body_hello_ack(b.id, 600000, 3600000).hex())
    time.sleep(4 * EXP / 1000)
    # (polled: on a loaded machine a stage may miss an expiry by itself and come back; with the
    # forged 600 s heartbeat it would not come back)
    check("rs-st" in ids(poll_dir(gw, lambda s: "rs-st" in ids(s), 3)), "2) a stage sent a forged HelloAck "
          "(heartbeat 600 s) through the broker is still registered %.1f s later" % (4 * EXP / 1000))
    check(st.has("that node 'rs-gw' sent through the broker", "err"), "2) ... and it logged the forgery")

    # a node registered as BROKER forging the src of a local node: refused
    evil = peer("rs-evil", b.endpoint, "--role", "broker", "--id", "rs-evil", "--region", "evil")
    check(evil.reg is not None, "2) a node registered with role BROKER")
    evil.send_line(raw_cmd("rs-st", "rs-gw", body))
    m = evil.next_event(msg_pred(kind="error"), 3)
    check(m is not None and m["code"] == "UNAUTHORIZED", "2) a BROKER node claiming src rs-st (a local stage) is "
          "refused (%s)" % str(m and (m["code"], m["text"])))
    check(gw.next_event(msg_pred(kind="forward_reply", src="rs-st"), 0.5) is None, "2) ... and the forged frame is not "
          "delivered")

    # a real child region: root <- ba <- stage sa. The fake broker reports sa and forges its src.
    ba = broker("rs-a", parent=b.endpoint, region="a")
    sa = peer("rs-sa", ba.endpoint, "--role", "stage", "--id", "rs-sa", "--region", "a", "--model", "m1",
              "--layers", "0-5", "--echo")
    poll_dir(gw, lambda s: "rs-sa" in ids(s), 5)
    evil.send_line(raw_cmd("rs-evil", "", body_report("evil", stages=[("rs-sa", "m1", 0, 5)], nodes=["rs-gw"])))
    time.sleep(3 * HB / 1000)
    evil.send_line(raw_cmd("rs-sa", "rs-gw", body))
    m = evil.next_event(msg_pred(kind="error"), 3)
    check(m is not None and m["code"] == "UNAUTHORIZED",
          "2) a BROKER node claiming src rs-sa (reported by region a's broker) is refused (%s)"
          % str(m and (m["code"], m["text"])))
    check(gw.next_event(msg_pred(kind="forward_reply", src="rs-sa"), 0.5) is None, "2) ... and not delivered")
    gw.send_line("send rs-sa " + body.hex())
    m = gw.next_event(msg_pred(kind="forward_reply", src="rs-sa"), 3)
    check(m is not None and m["hops"] == 2, "2) frames to rs-sa still go to the real one through region a "
          "(echo came back, hops %s)" % (m and m["hops"]))
    check(evil.next_event(msg_pred(dst="rs-sa"), 0.5) is None, "2) ... none reach the fake broker that reported it")
    # what a child broker may do: relay for ids nobody else holds
    evil.send_line(raw_cmd("evil-node", "rs-gw", body))
    m = gw.next_event(msg_pred(kind="forward_reply"), 3)
    check(m is not None and m["src"] == "evil-node", "2) a BROKER node may relay for an id nobody holds (%s)"
          % (m and m["src"]))
    for p in (sa, ba, evil, st, gw, raw, b):
        p.stop()


# ------------------------------------------------------------ 3) and 4) slow reader, flood, SIGTERM

def test_flood():
    b = broker("fl-root", hwm=50)
    sink = peer("fl-sink", b.endpoint, "--role", "stage", "--id", "fl-sink", "--model", "m1", "--layers", "0-5")
    flooder = peer("fl-flood", b.endpoint, "--role", "gateway", "--id", "fl-flood")
    qflood = peer("fl-qflood", b.endpoint, "--role", "gateway", "--id", "fl-qflood")
    watch = peer("fl-watch", b.endpoint, "--role", "gateway", "--id", "fl-watch")
    st = peer("fl-st", b.endpoint, "--role", "stage", "--id", "fl-st", "--model", "m1", "--layers", "0-5")
    check(all(p.reg for p in (sink, flooder, qflood, watch, st)), "3) sink, flooder, query flooder, watcher, stage "
          "registered")
    n0 = len(err_lines(b))
    sink.send_line("deaf")
    qflood.send_line("deaf")
    body = body_forward_reply("flood", 1, os.urandom(4096))
    flooder.send_line("flood fl-sink 3 " + body.hex())
    qflood.send_line("rep 20000 query - -")
    asked = answered = 0
    t0 = time.time()
    done = None
    while time.time() - t0 < 20:
        asked += 1
        if query(watch, "m1", timeout=5.0) is not None:
            answered += 1
        done = flooder.next_event(lambda e: e.get("ev") == "flooded", 0.2)
        if done:
            break
    check(done is not None, "3) flooder finished (%s)" % done)
    if not done:
        return
    over = done["errors"].get("OVERLOADED", 0)
    print("     flood: %s" % done, flush=True)
    check(done["sent"] > 0 and over >= 1, "3) the flooder's frames were dropped and it was told OVERLOADED (%d)" % over)
    check(over <= done["seconds"] + 2, "3) ... at most once per second (%d errors in %.1f s, %d frames sent)"
          % (over, done["seconds"], done["sent"]))
    check(asked >= 3 and answered == asked, "3) the watcher's directory queries were all answered during the flood "
          "(%d of %d)" % (answered, asked))
    q = qflood.next_event(lambda e: e.get("ev") == "ok" and e.get("cmd") == "rep", 10)
    check(q is not None, "3) the query flooder sent its 20000 queries (%s)" % q)
    time.sleep(max(2 * EXP, 1000) / 1000)
    lines = err_lines(b)[n0:]
    check(len(lines) < 50, "3) broker stderr: %d lines during the flood (bound 50)" % len(lines))
    check(any("fl-sink" in l and "dropped" in l for l in lines), "3) the drops to fl-sink are counted in the "
          "broker's log: %s" % [l for l in lines if "dropped" in l][:2])
    check(any("fl-sink" in l and "not reading" in l for l in lines), "3) the peer that does not read was dropped "
          "from the registry")
    check(any("suppressed" in l for l in lines), "3) repeated lines are summarised as suppressed")
    check(b.p.poll() is None, "3) broker alive")

    # 4) SIGTERM in the middle of a flood
    flooder.send_line("flood fl-sink 8 " + body.hex())
    qflood.send_line("rep 50000 query - -")
    time.sleep(1.5)
    t0 = time.time()
    rc = b.terminate(10)
    took = time.time() - t0
    for p in (flooder, qflood):  # before they find another test's broker on the freed port
        p.p.kill()
    check(rc == 0, "4) SIGTERM during a flood: broker exited with status %s after %.1f s (bound 10 s)" % (rc, took))
    lines = err_lines(b)
    check(any("shutting down" in l and "dropped" in l for l in lines[-5:]), "4) the shutdown line gives the totals: %s"
          % lines[-1:])
    over = re.search(r"(\d+) requests over the rate", lines[-1] if lines else "")
    check(over is not None and int(over.group(1)) > 0, "3) the query flooder went over the 200 queries/s per node "
          "(%s refused)" % (over and over.group(1)))
    for p in (sink, flooder, qflood, watch, st):
        p.stop()


# ------------------------------------------------------------ 5) a squatter on a dead broker's port

def test_squatter():
    # slow heartbeats, so the squatter is up long before the stage would notice the silence
    ba = broker("sq-a", hb=1000, exp=5000)
    bb = broker("sq-b", hb=1000, exp=5000)
    st = start("sq-st", [tb.PEER, "--broker", ba.endpoint + "," + bb.endpoint, "--hb", "1000", "--role", "stage",
                        "--id", "sq-st", "--model", "m1", "--layers", "0-5"])
    r = st.next_event(lambda e: e.get("ev") == "registered", 5)
    check(r is not None and r["broker"] == ba.id, "5) stage registered with the first broker of its list")
    ba.p.kill()
    ba.p.wait()
    # another process takes the port and answers everything (a gateway's RPC socket replies with errors)
    gw = start("sq-squatter", [GATEWAY, "--broker", bb.endpoint, "--model", MODEL, "--insecure", "--rpc", ba.endpoint],
              json_lines=False)
    check(gw.wait_line("swisd-gateway: rpc on", 10) is not None,
          "5) a gateway now listens on the dead broker's port %s" % ba.endpoint)
    r = st.next_event(lambda e: e.get("ev") == "registered" and e.get("broker") == bb.id, 20)
    answers = [e for e in st.seen if e.get("ev") == "msg" and e.get("src") != ba.id]
    check(r is not None, "5) the stage still moved to the second broker (the squatter's %d answers are no sign of "
          "life of its broker)" % len(answers))
    for p in (st, gw, bb):
        p.stop()


def main():
    for path in (tb.BROKER, tb.PEER, STAGE, GATEWAY):
        if not os.access(path, os.X_OK):
            print("FAIL missing executable %s" % path)
            return 1
    if not os.path.exists(MODEL):
        print("FAIL missing model %s" % MODEL)
        return 1
    t0 = time.time()
    only = os.environ.get("SWISD_ATTACKS", "takeover,roles,flood,squat").split(",")
    try:
        if "takeover" in only:
            test_takeover()
        if "roles" in only:
            test_roles_and_src()
        if "flood" in only:
            test_flood()
        if "squat" in only:
            test_squatter()
    finally:
        for p in sorted(tb.procs, key=lambda p: not p.json):  # peers first, brokers last
            try:
                p.signal(signal.SIGCONT)
            except OSError:
                pass
            p.stop()
    print("%d failures, %.1f s (logs in %s)" % (len(tb.failures), time.time() - t0, tb.logdir))
    for f in tb.failures:
        print("  FAILED: " + f)
    return tb.H.finish()


if __name__ == "__main__":
    sys.exit(main())
