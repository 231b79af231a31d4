#!/usr/bin/env python3
"""Functional tests of swisd-broker and the broker client library.

Runs real `swisd-broker` processes on loopback (free ports) and drives them
with `broker_peer` (tests/broker_peer.c: a sw_broker_client, or with --raw a
bare DEALER, scripted by lines on stdin, events as JSON lines on stdout).
Wire frames made here are encoded by hand from the .proto field numbers (an
independent encoder), so a relayed body can be compared byte for byte.

  a) registration: HelloAck (broker id, region), heartbeat round trip measured
  b) directory: a stage is listed with its fields; model/checksum filters; load
  c) relay: body byte-identical, src set by the broker (spoofed src replaced),
     hops counted; echo back; a garbage body is relayed undecoded and the
     receiving client answers BAD_FRAME
  d) unknown destination -> Error UNREACHABLE
  e) non-Hello from an unregistered peer -> Error UNKNOWN_NODE
  f) malformed frames (frame count, garbage header/body, version 2, oversize
     header, hop limit, 65 MiB frame) -> Error, and the broker keeps serving
  g) expiry after --expiry-ms of silence (SIGSTOP) and re-admission (SIGCONT)
  h) broker restart: clients get UNKNOWN_NODE and re-register by themselves;
     SIGTERM exits with status 0
  i) two tiers: root + regions a, b: region b's stage is in region a's
     directory (after a's own), a message a -> b -> a round-trips; an unknown
     destination is answered by the root; a stopped regional broker expires
     at the root and its stages vanish from a's directory, then come back
usage: test_broker.py [SWISD_BROKER [BROKER_PEER]]
   (default $SWISD_BUILD/broker/swisd-broker and $SWISD_BUILD/tests/broker_peer)
Python 3 standard library only; ~20 s.
"""
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Bins, Harness, start_broker  # noqa: E402

BUILD = os.environ.get("SWISD_BUILD", "build")
BROKER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(BUILD, "broker", "swisd-broker")
PEER = sys.argv[2] if len(sys.argv) > 2 else os.path.join(BUILD, "tests", "broker_peer")
HB, EXP = 100, 400  # heartbeat and expiry (ms) used by the brokers under test

H = Harness("broker", verbose=True)
# broker_peer registers under chosen ids (routing and id ownership are tested
# here): the plain-TCP mode, where a broker does not bind ids to keys.
# tests/test_auth.py tests the keys.
H.insecure = True
failures = H.failed       # what each failed check said
procs = H.started         # every process started, in order
logdir = H.logdir


def check(cond, what):
    return H.check(cond, what)


# ------------------------------------------------------------ protobuf encoding

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def fv(field, value):  # varint field (kept even when 0: a re-encoder would drop it)
    return varint(field << 3) + varint(value)


def fb(field, data):  # length-delimited field
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def header(src="", dst="", hops=0, major=1):
    return fv(1, major) + fv(2, 0) + fb(3, src) + fb(4, dst) + fv(5, hops)


def body_heartbeat(seq=1):
    return fb(4, fv(2, seq) + fv(3, 12345))


def body_query(model=""):
    return fb(7, fb(1, model))


def body_forward_reply(session, request_id, payload):
    act = fv(1, 0) + fv(2, 1) + fv(3, 16) + fv(8, 64) + fb(9, payload)
    return fb(11, fb(1, session) + fv(2, request_id) + fb(3, act))


# ------------------------------------------------------------ processes

def start(name, argv, json_lines=True):
    """A harness process with a stdin for commands; `json_lines`: it prints
    one JSON event a line (broker_peer), read with next_event."""
    p, _ = H.start(name, argv, stdin=True)
    p.json = json_lines
    return p


def broker(name, bind="tcp://127.0.0.1:*", parent=None, region=None, hwm=None, hb=HB, exp=EXP):
    """A swisd-broker (harness.start_broker) with .endpoint and .id (from its "id" line)."""
    bins = Bins()
    bins.broker = BROKER
    try:
        b, ep = start_broker(H, bins, name, *(["--hwm", hwm] if hwm else []), parent=parent, region=region,
                             heartbeat_ms=hb, expiry_ms=exp, bind=bind)
    except RuntimeError as e:
        raise SystemExit("FAIL broker %s did not start: %s" % (name, e))
    idl = b.wait_line("swisd-broker: id", 5)
    if not idl:
        raise SystemExit("FAIL broker %s printed no id (see %s)" % (name, b.log_path))
    b.json = False
    b.endpoint = ep.split()[-1]
    b.id = idl.split()[0]
    return b


def peer(name, endpoint, *args, registered=True):
    p = start(name, [PEER, "--broker", endpoint, "--hb", str(HB)] + list(args))
    ready = p.next_event(lambda e: e.get("ev") == "ready", 5)
    if not ready:
        raise SystemExit("FAIL peer %s did not start (see %s)" % (name, p.log_path))
    p.id = ready["id"]
    p.reg = p.next_event(lambda e: e.get("ev") == "registered", 3) if registered else None
    return p


def msg_pred(**kw):
    return lambda e: e.get("ev") == "msg" and all(e.get(k) == v for k, v in kw.items())


def query(p, model="-", checksum="-", timeout=2.0):
    p.send_line("query %s %s" % (model, checksum))
    r = p.next_event(msg_pred(kind="directory_reply"), timeout)
    return r["stages"] if r else None


def ids(stages):
    return [s["node_id"] for s in (stages or [])]


def poll_dir(p, cond, timeout=4.0, model="-"):
    end = time.time() + timeout
    st = None
    while time.time() < end:
        st = query(p, model)
        if st is not None and cond(st):
            return st
        time.sleep(0.1)
    return st


# ------------------------------------------------------------ the tests

def test_single():
    b = broker("root")
    # a) registration
    st = peer("st1", b.endpoint, "--role", "stage", "--id", "st1", "--region", "r1", "--model", "m1",
              "--checksum", "abc", "--layers", "0-2")
    check(st.reg is not None and st.reg["broker"] == b.id and st.reg["region"] == "default",
          "a) stage registered: HelloAck carries the broker id %s and region" % b.id[:8])
    time.sleep(3 * HB / 1000)
    st.send_line("status")
    s = st.next_event(lambda e: e.get("ev") == "status")
    check(s and s["registered"] and 0 < s["rtt_ms"] < 100, "a) heartbeats acknowledged, rtt measured (%s ms)"
          % (s and s["rtt_ms"]))
    gw = peer("gw1", b.endpoint, "--role", "gateway", "--id", "gw1", "--region", "r1")
    check(gw.reg is not None, "a) gateway registered")

    # b) directory
    st.send_line("load 3")
    time.sleep(2.5 * HB / 1000)
    stages = query(gw, "m1")
    ent = [x for x in (stages or []) if x["node_id"] == "st1"]
    check(len(ent) == 1 and ent[0]["region"] == "r1" and ent[0]["model"] == "m1" and ent[0]["checksum"] == "abc"
          and ent[0]["begin"] == 0 and ent[0]["end"] == 2 and ent[0]["broker_id"] == b.id
          and ent[0]["topic"] == "model/m1/layers/0-1" and ent[0]["age_ms"] <= EXP,
          "b) directory lists st1 with region, model, checksum, layers [0,2), broker, topic: %s" % ent)
    check(len(ent) == 1 and ent[0]["active_sessions"] == 3, "b) directory carries the heartbeat load")
    check(ids(query(gw, "m1", "abc")) == ["st1"], "b) filter by model id + checksum keeps it")
    check(query(gw, "m1", "other") == [] and query(gw, "m2") == [], "b) other checksum / model filtered out")
    check("gw1" not in ids(query(gw)), "b) gateways are not listed as stages")

    # c) relay
    payload = bytes(random.getrandbits(8) for _ in range(3000))
    body = body_forward_reply("sess-1", 77, payload)
    gw.send_line("send st1 " + body.hex())
    m = st.next_event(msg_pred(kind="forward_reply"))
    check(m is not None and m["body"] == body.hex() and m["src"] == "gw1" and m["dst"] == "st1" and m["hops"] == 1,
          "c) relayed body byte-identical, src gw1, hops 1")
    gw.send_line("raw %s %s" % (header("mallory", "st1").hex(), body.hex()))
    m = st.next_event(msg_pred(kind="forward_reply"))
    check(m is not None and m["src"] == "gw1", "c) a spoofed src is replaced by the sender's node id (%s)"
          % (m and m["src"]))
    echo = peer("echo1", b.endpoint, "--role", "stage", "--id", "echo1", "--model", "m1", "--layers", "2-5",
                "--echo")
    gw.send_line("send echo1 " + body.hex())
    m = gw.next_event(msg_pred(kind="forward_reply", src="echo1"))
    check(m is not None and m["body"] == body.hex(), "c) round trip gw -> echo stage -> gw intact")
    garbage = b"\x0a\xff\xff\xff\xff\x0f garbage"
    gw.send_line("raw %s %s" % (header("gw1", "st1").hex(), garbage.hex()))
    m = gw.next_event(msg_pred(kind="error", src="st1"))
    check(m is not None and m["code"] == "BAD_FRAME",
          "c) garbage body relayed undecoded; the receiving client answers BAD_FRAME")

    # d) unknown destination
    gw.send_line("send nosuch " + body.hex())
    m = gw.next_event(msg_pred(kind="error"))
    check(m is not None and m["code"] == "UNREACHABLE" and "nosuch" in m["text"] and m["src"] == b.id,
          "d) unknown destination -> Error UNREACHABLE from the broker")

    # e) unregistered peer
    raw = peer("raw1", b.endpoint, "--raw", registered=False)
    raw.send_line("raw %s %s" % (header("ghost", "").hex(), body_heartbeat().hex()))
    m = raw.next_event(msg_pred(kind="error"))
    check(m is not None and m["code"] == "UNKNOWN_NODE" and m["dst"] == "ghost",
          "e) heartbeat from an unregistered peer -> Error UNKNOWN_NODE")
    raw.send_line("raw %s %s" % (header("ghost", "st1").hex(), body.hex()))
    m = raw.next_event(msg_pred(kind="error"))
    check(m is not None and m["code"] == "UNKNOWN_NODE", "e) relay attempt from an unregistered peer refused")
    check(st.next_event(msg_pred(src="ghost"), 0.3) is None, "e) ... and not delivered")

    # f) malformed frames
    cases = [
        ("one frame", [header("x", "")], "BAD_FRAME"),
        ("three frames", [header("x", ""), body_heartbeat(), b"extra"], "BAD_FRAME"),
        ("garbage header", [b"\xff\xff\xff\xff", body_heartbeat()], "BAD_FRAME"),
        ("empty header", [b"", body_heartbeat()], "BAD_FRAME"),
        ("garbage body", [header("x", ""), b"\x0a\xff\xff\xff\xff\x0f"], "BAD_FRAME"),
        ("body with no message", [header("x", ""), b""], "BAD_FRAME"),
        ("major version 2", [header("x", "", major=2), body_heartbeat()], "UNSUPPORTED_VERSION"),
        ("oversize header", [header("x" * 1100, ""), body_heartbeat()], "BAD_FRAME"),
        ("hop limit", [header("x", "st1", hops=9), body_heartbeat()], "BAD_FRAME"),
        ("src too long", [header("y" * 65, ""), body_heartbeat()], "BAD_FRAME"),
    ]
    for what, frames, code in cases:
        raw.send_line("raw " + " ".join(f.hex() if f else "-" for f in frames))
        m = raw.next_event(lambda e: e.get("ev") in ("msg", "bad"))
        check(m is not None and m.get("kind") == "error" and m.get("code") == code,
              "f) %s -> Error %s (%s)" % (what, code, m and m.get("text")))
    gw.send_line("raw %s %s" % (header("gw1", "").hex(), garbage.hex()))
    m = gw.next_event(msg_pred(kind="error", src=b.id))
    check(m is not None and m["code"] == "BAD_FRAME", "f) garbage body to the broker from a registered node -> BAD_FRAME")
    gw.send_line("raw %s %s" % (header("gw1", "").hex(), fb(20, fb(3, "hi")).hex()))
    m = gw.next_event(msg_pred(kind="error", src=b.id))
    check(m is not None and m["code"] == "BAD_REQUEST", "f) a message the broker does not serve -> BAD_REQUEST")
    # a 65 MiB frame: ZeroMQ's MAXMSGSIZE drops that connection; the broker goes on
    raw.send_line("rawbig %s %d" % (header("x", "").hex(), 65 << 20))
    check(raw.next_event(lambda e: e.get("ev") == "ok", 10) is not None, "f) 65 MiB frame sent")
    time.sleep(0.3)
    check(b.p.poll() is None and sorted(ids(query(gw, "m1"))) == ["echo1", "st1"],
          "f) broker still serving after all malformed frames")
    raw.send_line("raw %s %s" % (header("ghost", "").hex(), body_heartbeat().hex()))
    m = raw.next_event(msg_pred(kind="error"), 3)
    check(m is not None and m["code"] == "UNKNOWN_NODE", "f) ... also to the peer that sent the big frame")

    # g) expiry and re-admission
    st.signal(signal.SIGSTOP)
    t0 = time.time()
    stages = poll_dir(gw, lambda s: "st1" not in ids(s), 3, "m1")
    gone_after = time.time() - t0
    check("st1" not in ids(stages) and gone_after >= EXP / 1000 * 0.8,
          "g) stopped stage expired after %.2f s (expiry %.1f s)" % (gone_after, EXP / 1000))
    check("echo1" in ids(stages), "g) the live stage stays")
    st.signal(signal.SIGCONT)
    r = st.next_event(lambda e: e.get("ev") == "registered" and e["n"] == 2, 3)
    check(r is not None, "g) resumed stage re-registered by itself")
    check("st1" in ids(poll_dir(gw, lambda s: "st1" in ids(s), 2, "m1")), "g) re-admitted stage listed again")

    # h) broker restart on the same port: nodes re-register (UNKNOWN_NODE -> Hello)
    port_ep = b.endpoint
    rc = b.terminate(3)
    check(rc == 0, "h) SIGTERM: broker exits cleanly (status %s)" % rc)
    b2 = broker("root2", bind=port_ep)
    r = st.next_event(lambda e: e.get("ev") == "registered" and e["broker"] == b2.id, 4)
    check(r is not None, "h) stage re-registered with the restarted broker")
    r = gw.next_event(lambda e: e.get("ev") == "registered" and e["broker"] == b2.id, 4)
    check(r is not None, "h) gateway re-registered with the restarted broker")
    check(st.has("does not know us", "err"), "h) ... after the broker answered UNKNOWN_NODE")
    check(sorted(ids(poll_dir(gw, lambda s: len(s) == 2, 3, "m1"))) == ["echo1", "st1"],
          "h) directory rebuilt after the restart")
    for p in (st, gw, echo, raw, b2):
        p.stop()




def test_tiers():
    root = broker("t-root", region="root")
    ba = broker("t-a", parent=root.endpoint, region="a")
    bb = broker("t-b", parent=root.endpoint, region="b")
    sa = peer("t-sa", ba.endpoint, "--role", "stage", "--id", "sa", "--region", "a", "--model", "m1",
              "--layers", "0-3")
    sb = peer("t-sb", bb.endpoint, "--role", "stage", "--id", "sb", "--region", "b", "--model", "m1",
              "--layers", "3-5", "--echo")
    ga = peer("t-ga", ba.endpoint, "--role", "gateway", "--id", "ga", "--region", "a")
    gb = peer("t-gb", bb.endpoint, "--role", "gateway", "--id", "gb", "--region", "b")
    check(all(p.reg for p in (sa, sb, ga, gb)), "i) nodes registered with their regional brokers")
    st = poll_dir(ga, lambda s: "sb" in ids(s), 4, "m1")
    ent = [x for x in (st or []) if x["node_id"] == "sb"]
    check(len(ent) == 1 and ent[0]["region"] == "b" and ent[0]["broker_id"] == bb.id and ent[0]["begin"] == 3
          and ent[0]["end"] == 5, "i) region b's stage is in region a's directory with its broker: %s" % ent)
    check(ids(st)[:1] == ["sa"], "i) local stages first (%s)" % ids(st))
    st = poll_dir(gb, lambda s: "sa" in ids(s), 4, "m1")
    check(ids(st) == ["sb", "sa"], "i) and region a's stage in region b's (%s)" % ids(st))
    payload = bytes(random.getrandbits(8) for _ in range(5000))
    body = body_forward_reply("s-x", 9, payload)
    ga.send_line("send sb " + body.hex())
    m = sb.next_event(msg_pred(kind="forward_reply"))
    check(m is not None and m["src"] == "ga" and m["body"] == body.hex() and m["hops"] == 3,
          "i) a -> root -> b delivered intact, src ga, hops 3 (%s)" % (m and m["hops"]))
    m = ga.next_event(msg_pred(kind="forward_reply", src="sb"))
    check(m is not None and m["body"] == body.hex() and m["hops"] == 3, "i) ... and the echo came back to ga")
    ga.send_line("send nowhere " + body.hex())
    m = ga.next_event(msg_pred(kind="error"))
    check(m is not None and m["code"] == "UNREACHABLE" and m["src"] == root.id,
          "i) unknown destination across tiers -> UNREACHABLE from the root")
    # a stopped regional broker: the root forgets it, its stages leave a's directory
    bb.signal(signal.SIGSTOP)
    st = poll_dir(ga, lambda s: "sb" not in ids(s), 3, "m1")
    check("sb" not in ids(st) and "sa" in ids(st), "i) stopped region b expired at the root (%s)" % ids(st))
    ga.send_line("send sb " + body.hex())
    m = ga.next_event(msg_pred(kind="error"))
    check(m is not None and m["code"] == "UNREACHABLE", "i) ... and its stages are unreachable")
    bb.signal(signal.SIGCONT)
    st = poll_dir(ga, lambda s: "sb" in ids(s), 4, "m1")
    check("sb" in ids(st), "i) region b re-registered and its stage is back (%s)" % ids(st))
    ga.send_line("send sb " + body.hex())
    m = ga.next_event(msg_pred(kind="forward_reply", src="sb"))
    check(m is not None and m["body"] == body.hex(), "i) round trip a -> b -> a works again")
    for p in (sa, sb, ga, gb, ba, bb, root):
        p.stop()


def main():
    for path in (BROKER, PEER):
        if not os.access(path, os.X_OK):
            print("FAIL missing executable %s" % path)
            return 1
    t0 = time.time()
    try:
        test_single()
        test_tiers()
    finally:
        for p in procs:
            try:
                p.signal(signal.SIGCONT)
            except OSError:
                pass
            p.stop()
    print("%d failures, %.1f s (logs in %s)" % (len(failures), time.time() - t0, logdir))
    for f in failures:
        print("  FAILED: " + f)
    return H.finish()


if __name__ == "__main__":
    sys.exit(main())
