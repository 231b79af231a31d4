#!/usr/bin/env python3
"""The gateway's admin endpoints over a real swarm (urllib only).

A broker, two stages A and B serving the same layers (0-4), a gateway with
--admin-token-file (made by the gateway when absent) and --state-db.
Checks: a token file others may read is refused at start; without a token
the admin endpoints are 404; missing or wrong token 401 (counted in
/metrics), the right one 200; draining A makes new generations go through B
only (the gateway's "done ... via" log lines name each route); a ban of the
stage a running generation uses fails it over to the other stage and the
text stays identical to `swisd run`'s greedy text (A is frozen with SIGSTOP
once the generation printed text, so the ban lands mid-generation whatever
the load, and only the ban can move it within the 10 s the test waits: the broker's
expiry and the gateway's step time-out are 30 s); bans are listed and
survive a restart of the gateway on the same --state-db (new generations
avoid the banned stage after the restart); the fair-use limits read back,
bad values get 400 with the reason, and a lowered rate gives 429; refused
tokens spend the address's request budget (401 then 429).
usage: test_admin.py SWISD SWISD_BROKER SWISD_STAGE SWISD_GATEWAY
"""
import json
import os
import re
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (Bins, Harness, run_local, start_broker, start_gateway, start_generate,  # noqa: E402
                     start_stage, wait_until)

bins = Bins()
bins.swisd, bins.broker, bins.stage, bins.gateway = sys.argv[1:5]
N = 300
WAIT = 60.0


def call(port, path, body=None, method=None, token=None):
    """(status, body text, headers) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode(), dict(r.getheaders())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def routes(gw, start, n=1):
    """The routes (lists of node-id prefixes) of sessions the gateway finished
    since line `start`, once there are at least n (the log line follows the
    answer) or 10 s passed."""
    wait_until(lambda: len(_routes(gw, start)) >= n, 10, 0.05)
    return _routes(gw, start)


def _routes(gw, start):
    with gw._cv:
        lines = [l for _, l in gw.lines[start:]]
    return [m.group(1).split(",") for m in (re.search(r"done \(.*via (\S+)", l) for l in lines) if m]


def complete(port, prompt, n=8):
    return call(port, "/v1/completions", {"prompt": prompt, "max_tokens": n, "temperature": 0})


def body(h):
    check = h.check
    tmp = tempfile.mkdtemp(prefix="swisd-admin-")
    token_file = os.path.join(tmp, "admin.token")
    db = os.path.join(tmp, "state.db")
    _, ep = start_broker(h, bins, "broker", expiry_ms=30000)
    stage_a, a = start_stage(h, bins, "stage-a", ep, "0-4")
    _, b = start_stage(h, bins, "stage-b", ep, "0-4")

    # a token file that others may read: refused at start, with the fix in the message
    loose = os.path.join(tmp, "loose.token")
    with open(loose, "w") as f:
        f.write("x" * 32 + "\n")
    os.chmod(loose, 0o644)
    p, _ = h.start("gateway-loose", [bins.gateway, "--broker", ep, "--model", harness.model_path(), "--rpc",
                                     "tcp://127.0.0.1:*", "--http", "127.0.0.1:0", "--admin-token-file", loose])
    p.p.wait(timeout=30)
    said = p.wait_line("chmod 600", 5, "any") is not None  # the reader threads may lag the exit
    check(p.p.returncode == 1 and said, f"a 0644 token file: exit {p.p.returncode}, {p.tail(3)}")

    # no token configured: there are no admin endpoints
    plain, _, plain_port = start_gateway(h, bins, "gateway-plain", ep, http=True)
    st, _, _ = call(plain_port, "/admin/nodes", token="anything")
    check(st == 404, f"no admin token configured: /admin/nodes {st}")
    h.stop(plain)

    args = ["--http-rate", "1000", "--admin-token-file", token_file, "--state-db", db]
    gw, rpc, port = start_gateway(h, bins, "gateway", ep, *args, http=True)
    check(gw.has("admin token made in " + token_file), "the gateway says where it made the token")
    check(os.stat(token_file).st_mode & 0o777 == 0o600, f"token file mode {oct(os.stat(token_file).st_mode)}")
    token = open(token_file).read().strip()
    check(len(token) == 64, f"token of 64 hex digits: {len(token)}")
    check(token not in " ".join(gw.argv), "the token is not on the command line")

    # the token
    st, _, hdr = call(port, "/admin/nodes")
    check(st == 401 and "Bearer" in hdr.get("WWW-Authenticate", ""), f"no token: {st} {hdr}")
    st, _, _ = call(port, "/admin/nodes", token=token[:-1] + ("0" if token[-1] != "0" else "1"))
    check(st == 401, f"wrong token: {st}")
    st, text, _ = call(port, "/admin/nodes", token=token)
    check(st == 200 and json.loads(text) == {"nodes": []}, f"right token: {st} {text}")
    st, text, _ = call(port, "/metrics")
    m = re.search(r"^swisd_http_admin_refused_total (\d+)", text, re.M)
    check(m and int(m.group(1)) >= 2, f"refusals counted in /metrics: {m and m.group(0)}")
    check(gw.wait_line("refused an admin request from 127.0.0.1", 5, "any") is not None, "a refusal is logged")

    check(wait_until(lambda: complete(port, "Once")[0] == 200, WAIT, 0.3), "the swarm serves")

    # drain A: new generations go through B only
    st, text, _ = call(port, "/admin/drain", {"node": a, "reason": "maintenance"}, token=token)
    check(st == 200 and json.loads(text)["drained"], f"drain: {st} {text}")
    start = gw.mark()
    for i in range(4):
        st, text, _ = complete(port, f"Lily {i}")
        check(st == 200, f"completion while A is drained: {st} {text[:200]}")
    r = routes(gw, start, 4)
    check(len(r) >= 4 and all(hop == b[:16] for route in r for hop in route),
          f"while A ({a[:8]}) is drained every route is B ({b[:8]}): {r}")
    st, text, _ = call(port, "/admin/nodes", token=token)
    nodes = json.loads(text)["nodes"] if st == 200 else []
    check(len(nodes) == 1 and nodes[0]["node"] == a and nodes[0]["drained"] and not nodes[0]["banned"]
          and nodes[0]["reason"] == "maintenance", f"drains listed: {text}")

    # ban under a running generation: it fails over to the other stage, same text
    prompt = "Once upon a time"
    local = run_local(bins, prompt, N, "--ignore-eos")
    call(port, "/admin/undrain", {"node": a}, token=token)
    call(port, "/admin/drain", {"node": b}, token=token)  # the generation starts on A
    start = gw.mark()
    g = start_generate(bins, rpc, prompt, N, "--ignore-eos", "--timeout-ms", "120000")
    check(g.wait_output(len(prompt) + 4, WAIT), "the generation started")
    stage_a.signal(signal.SIGSTOP)  # A holds the generation where it is, whatever the machine's load
    call(port, "/admin/undrain", {"node": b}, token=token)
    st, text, _ = call(port, "/admin/ban", {"node": a, "reason": "test"}, token=token)
    check(st == 200 and json.loads(text)["banned"], f"ban: {st} {text}")
    t_ban = time.monotonic()
    moved = gw.wait_line(f"stage {a[:8]} left the swarm", 10, "any", start) is not None
    took = time.monotonic() - t_ban
    rc, out, err = g.finish()
    stage_a.signal(signal.SIGCONT)
    check(rc == 0 and out.rstrip() == local.rstrip(),
          f"the text after the ban is swarm-identical: rc {rc}, {out[-80:]!r} vs {local[-80:]!r} {err[-200:]}")
    check(moved and took < 10, f"the gateway failed the session over off the banned stage ({took:.1f} s)")
    r = routes(gw, start)
    check(r and all(hop == b[:16] for hop in r[-1]), f"the session ended on B: {r}")

    st, text, _ = call(port, "/api/swarm")
    flags = {x["node_id"]: (x.get("banned"), x.get("drained")) for x in json.loads(text)["stages"]} if st == 200 else {}
    # the ban also reaches the broker (BanNotice), which drops A's connection: A is then gone from the
    # directory, and /admin/nodes is where the operator sees the ban
    st2, text2, _ = call(port, "/admin/nodes", token=token)
    listed = [n for n in json.loads(text2)["nodes"] if n["node"] == a and n["banned"]] if st2 == 200 else []
    check((flags.get(a) == (True, False) or (a not in flags and listed)) and flags.get(b) == (False, False),
          f"/api/swarm shows the ban, or A is gone from it and /admin/nodes lists the ban: {flags} {text2[:200]}")

    # bans survive a restart on the same --state-db
    h.stop(gw)
    gw, rpc, port = start_gateway(h, bins, "gateway-again", ep, *args, http=True)
    check(gw.has("admin token read from " + token_file), "the restarted gateway reads the same token")
    st, text, _ = call(port, "/admin/nodes", token=token)
    nodes = json.loads(text)["nodes"] if st == 200 else []
    check(len(nodes) == 1 and nodes[0]["node"] == a and nodes[0]["banned"] and nodes[0]["reason"] == "test",
          f"the ban outlived the restart: {st} {text}")
    check(wait_until(lambda: complete(port, "Mom said")[0] == 200, WAIT, 0.3), "the restarted gateway serves")
    start = gw.mark()
    for i in range(3):
        complete(port, f"The sun {i}")
    r = routes(gw, start, 3)
    check(len(r) >= 3 and all(hop == b[:16] for route in r for hop in route), f"after the restart, only B: {r}")
    st, text, _ = call(port, "/admin/unban", {"node": a}, token=token)
    check(st == 200 and not json.loads(text)["banned"], f"unban: {st} {text}")
    st, text, _ = call(port, "/admin/ban", {"node": ""}, token=token)
    check(st == 400, f"an empty node id: {st} {text}")
    st, text, _ = call(port, "/admin/ban", {"id": a}, token=token)
    check(st == 400, f"no node field: {st} {text}")

    # fair-use limits at run time
    st, text, _ = call(port, "/admin/limits", token=token)
    lim = json.loads(text) if st == 200 else {}
    check(st == 200 and lim.get("rate") == 1000 and lim.get("max_concurrent") == 16, f"limits: {st} {text}")
    for bad in ({"rate": 0}, {"rate": "fast"}, {"nope": 1}, {"max_concurrent": 1.5}, {"token_rate": 1e12}, {}):
        st, text, _ = call(port, "/admin/limits", bad, token=token)
        check(st == 400 and "message" in json.loads(text).get("error", {}), f"bad limits {bad}: {st} {text}")
    st, text, _ = call(port, "/admin/limits", token=token)
    check(json.loads(text).get("rate") == 1000, f"bad values changed nothing: {text}")
    st, text, _ = call(port, "/admin/limits", {"rate": 1, "max_concurrent_per_addr": 2}, token=token)
    lim = json.loads(text) if st == 200 else {}
    check(st == 200 and lim.get("rate") == 1 and lim.get("max_concurrent_per_addr") == 2, f"set limits: {st} {text}")
    statuses = [call(port, "/v1/models")[0] for _ in range(6)]
    check(429 in statuses, f"a lowered rate gives 429: {statuses}")
    # refused tokens spend the budget: once it is gone even the right token waits
    time.sleep(2.5)  # the bucket refills to its burst (2 requests at rate 1)
    st1 = call(port, "/admin/nodes", token="wrong-token-0123456789")[0]
    st2 = call(port, "/admin/nodes", token=token)[0]
    check(st1 == 401 and st2 == 429, f"a refused token costs the address its burst: {st1} then {st2}")


if __name__ == "__main__":
    sys.exit(Harness("test_admin").run(body))
