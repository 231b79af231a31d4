#!/usr/bin/env python3
"""Reputation and credits (issue 12), with real processes over CURVE:

1. a swarm of two stage keys (layers 0-1 and 2-4) and a gateway with
   --audit-window-s 8: after greedy generations, GET /api/credits lists each
   stage key with pending credit of layers x tokens x factor, where the
   tokens are the rows the stages computed (prompt + generated - 1 per
   generation) and the factor is the parameters of one block in billions,
   summed here from the tensor shapes `swisd inspect` prints; the display
   name is the stage's --name; once the window closes the same credit is
   granted and none is pending;
2. `swisd token` with a stage's key gets a token; a key that did no work,
   and a plain endpoint, get none;
3. fair use with --http-rate 1 (burst 2): an address without a token gets
   429 within six quick requests; the token holder, whose granted credit
   earns the whole --http-credit-boost 4 (x5: burst 10), passes eight; an
   unknown token is refused 401 (authentication_error) and an OpenAI SDK's
   placeholder key is ignored;
4. the gateway restarted on the same --state-db: the leaderboard is
   unchanged and the token still works;
5. a second host of each layer range joins: the gateway's audit engine
   (--audit-trust 3) compares sessions with them, and its verified results
   reach the persisted reputation: keys with verified results, consecutive
   equal to verified (nobody failed), and trusted with a lower audit rate
   once they pass 3.
usage: test_credits.py   (binaries from $SWISD_BUILD)
"""
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Bins, Harness, model_path, node_key, start_broker, start_gateway, start_stage,  # noqa: E402
                     wait_servable, wait_until)

bins = Bins()
h = Harness("credits", verbose=True)
PROMPTS = ["Once upon a time", "The little dog"]
N = 24
WINDOW_S = 8


def http(port, path, token=None):
    """GET path: (status, parsed JSON body or None)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, None


def credits(port):
    status, body = http(port, "/api/credits")
    return {c["node_id"]: c for c in body["contributors"]} if status == 200 else {}


def block_params():
    """Parameters of block 0 from the tensor shapes `swisd inspect` lists."""
    out = subprocess.run([bins.swisd, "inspect", model_path()], capture_output=True, text=True, check=True).stdout
    total = 0
    for m in re.finditer(r"^\s*\d+\s+blk\.0\.\S+\s+\S+\s+\[([0-9, ]+)\]", out, re.M):
        n = 1
        for d in m.group(1).split(","):
            n *= int(d)
        total += n
    return total


def body(_h):
    check = h.check
    if h.insecure:
        print("SKIP: credits are per key; SWISD_INSECURE=1 runs without keys")
        return
    factor = block_params() / 1e9
    check(factor > 0, f"the model's factor from its block-0 tensors: {factor:.9g} billion parameters per block")
    state_db = os.path.join(h.logdir, "gateway-state.db")
    b, ep = start_broker(h, bins, "broker")
    _, front = start_stage(h, bins, "front", ep, "0-1", "--name", "front box")
    _, back = start_stage(h, bins, "back", ep, "2-4")
    gw_args = ["--state-db", state_db, "--audit-window-s", str(WINDOW_S), "--http-rate", "1", "--http-read-rate",
               "200", "--http-credit-boost", "4", "--http-credit-full", "0.001", "--route-wait-ms", "3000",
               "--audit-trust", "3"]
    gw, rpc, port = start_gateway(h, bins, "gateway", ep, *gw_args, http=True)
    wait_servable(bins, rpc, 30)  # which generates a token: the baseline below holds its credit
    total = lambda c, k: c[k]["pending"] + c[k]["granted"] if k in c else -1  # noqa: E731
    check(wait_until(lambda: all(total(credits(port), k) > 0 for k in (front, back)), 5, 0.2),
          "the probe generation's credit is recorded")
    time.sleep(1.5)  # the gateway writes work sums once a second
    base = {k: total(credits(port), k) for k in (front, back)}

    # 1) generations, then pending credit = layers x rows x factor per key
    rows = 0
    for p in PROMPTS:
        r = subprocess.run([bins.swisd, "generate", "--gateway", rpc, "-p", p, "-n", str(N), "--temp", "0"],
                           capture_output=True, text=True, timeout=120)
        m = re.search(r"(\d+) prompt \+ (\d+) generated tokens", r.stderr)
        check(r.returncode == 0 and m, f"a generation through the swarm ({m.group(0) if m else r.stderr[-200:]})")
        if m:
            rows += int(m.group(1)) + int(m.group(2)) - 1  # the last token sampled is never fed back
    want = {front: base[front] + 2 * rows * factor, back: base[back] + 3 * rows * factor}
    check(wait_until(lambda: all(abs(total(credits(port), k) - v) <= 1e-9 * v for k, v in want.items()), 5, 0.2),
          f"/api/credits holds layers x {rows} rows x factor more for each stage key: {want}, got "
          f"{ {k: total(credits(port), k) for k in want} }")
    c = credits(port)
    check(front in c and c[front]["pending"] > 0 and c[front]["display_name"] == "front box",
          f"the front stage's credit is pending and shows its display name ({c.get(front)})")
    check(all(k in c and c[k]["verified"] == 0 and c[k]["failed"] == 0 and c[k]["audit_rate"] == 1.0 and
              not c[k]["trusted"] for k in want), "no audit verdicts yet: rate 1, not trusted")
    check(wait_until(lambda: all(credits(port).get(k, {}).get("pending", 1) == 0 for k in want), WINDOW_S + 5, 0.3),
          "the audit window closes: nothing pending")
    c = credits(port)
    check(all(abs(c[k]["granted"] - v) <= 1e-9 * v for k, v in want.items()),
          f"the same credit granted ({ {k: c[k]['granted'] for k in want} })")
    order = [x["node_id"] for x in http(port, "/api/credits")[1]["contributors"]]
    check(order.index(back) < order.index(front), "the leaderboard is sorted by granted credit (3 layers > 2)")

    # 2) tokens for contributors' keys only
    r = subprocess.run([bins.swisd, "token", "--gateway", rpc, "--key", node_key(h, bins, "front")],
                       capture_output=True, text=True, timeout=30)
    token = r.stdout.strip()
    check(r.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}", token) and front in r.stderr,
          f"`swisd token` with the front stage's key ({r.returncode}: {r.stderr.strip()[-160:]})")
    r = subprocess.run([bins.swisd, "token", "--gateway", rpc, "--key", node_key(h, bins, "stranger")],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and "no work" in r.stderr and not r.stdout.strip(),
          f"a key that did no work gets no token ({r.stderr.strip()[-160:]})")
    r = subprocess.run([bins.swisd, "token", "--gateway", rpc.split("#")[0]], capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 2 and "#KEY" in r.stderr, "a plain endpoint is refused at once")

    # 3) fair use: anonymous at the base rate, the contributor's token boosted x5
    codes = [http(port, "/v1/models")[0] for _ in range(6)]
    check(429 in codes and codes[0] == 200, f"anonymous, --http-rate 1 (burst 2): 429 within 6 requests ({codes})")
    codes = [http(port, "/v1/models", token)[0] for _ in range(8)]
    check(codes == [200] * 8, f"the contributor's token (boost x5, burst 10): 8 requests pass ({codes})")
    status, err = http(port, "/v1/models", secrets.token_hex(32))
    check(status in (401, 429) and (status == 429 or err["error"]["type"] == "authentication_error"),
          f"an unknown token: 401 authentication_error, charged to the address ({status} {err})")
    time.sleep(2.5)  # the address's bucket refills (1 per second, burst 2)
    status, err = http(port, "/v1/models", secrets.token_hex(32))
    check(status == 401 and err["error"]["type"] == "authentication_error",
          f"an unknown token after the address refilled: 401 ({status} {err})")
    status, _ = http(port, "/v1/models", "sk-no-key-required")
    check(status in (200, 429), f"an OpenAI SDK's placeholder key is anonymous, not refused ({status})")

    # 4) restart: the same leaderboard and the token still works
    before = http(port, "/api/credits")[1]["contributors"]
    h.stop(gw)
    gw, rpc, port = start_gateway(h, bins, "gateway-2", ep, *gw_args, http=True)
    after = http(port, "/api/credits")[1]["contributors"]
    moving = ("trusted", "audit_rate", "last_seen")  # change with the clock, not with a restart
    strip = lambda rows: [{k: v for k, v in x.items() if k not in moving} for x in rows]  # noqa: E731
    same = [x for x in strip(after) if x["node_id"] in want] == [x for x in strip(before) if x["node_id"] in want]
    check(same, f"the leaderboard survives a restart of the gateway ({before} / {after})")
    check(http(port, "/v1/models", token)[0] == 200, "the token survives the restart")

    # 5) audits: a second host of each range; the audit engine's verdicts reach the reputation
    start_stage(h, bins, "front-2", ep, "0-1")
    start_stage(h, bins, "back-2", ep, "2-4")
    check(wait_until(lambda: len(http(port, "/api/swarm")[1].get("stages", [])) == 4, 20, 0.3),
          "the gateway sees 4 stages")
    for i in range(6):
        r = subprocess.run([bins.swisd, "generate", "--gateway", rpc, "-p", PROMPTS[i % 2], "-n", str(N), "--temp",
                            "0"], capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, f"generation {i} with audits ({r.stderr.strip()[-160:]})")
    verified = lambda: [c for c in credits(port).values() if c["verified"] > 0]  # noqa: E731
    check(wait_until(lambda: len(verified()) >= 2, 20, 0.5),
          f"audits gave verified results to stage keys in the reputation ({list(credits(port).values())})")
    v = verified()
    check(all(c["consecutive"] == c["verified"] and c["failed"] == 0 and c["clawed_back"] == 0 for c in v),
          f"every verified key has a clean run ({v})")
    check(all(c["trusted"] == (c["verified"] >= 3) and (c["audit_rate"] < 1) == (c["verified"] > 3) for c in v),
          f"trusted from 3 in a row, audit rate below 1 after ({[(c['verified'], c['audit_rate']) for c in v]})")


h.run(body)
