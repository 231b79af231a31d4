#!/usr/bin/env python3
"""The gateway's key options and display names (issue 11), with real
processes over CURVE:

1. --name: a stage's display name is in the broker's log line, in
   /api/swarm beside its fingerprint, and a name with control bytes is
   refused at start;
2. --trusted-keys DIR --trusted-layers 2: while only an untrusted stage
   holds layers 0-1 they are a gap (no route); a stage whose key is in DIR
   closes it and the text equals `swisd run`; when the trusted stage leaves,
   the untrusted one is still never planned;
3. --rpc-allow DIR: `swisd generate --key K` is served when K is in DIR,
   another key (or the per-user default client key, made on first use) gets
   no answer, with a message that says why, and the gateway logs the refused
   handshake with the key's id and reason; the HTTP front (the gateway's own
   key) keeps serving;
4. option errors: --trusted-layers without --trusted-keys, --rpc-allow with
   --insecure, --key with a plain gateway endpoint.
usage: test_gateway_keys.py   (binaries from $SWISD_BUILD)
"""
import json
import os
import shutil
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Bins, Harness, model_path, node_key, run_local, start_broker, start_gateway,  # noqa: E402
                     start_stage, wait_until)

bins = Bins()
h = Harness("gateway_keys", verbose=True)
PROMPT = "Once upon a time"


def gen(rpc, *args, n=30, timeout=60):
    """`swisd generate` greedy: (status, stdout, stderr)."""
    r = subprocess.run([bins.swisd, "generate", "--gateway", rpc, "-p", PROMPT, "-n", str(n), "--temp", "0"]
                       + list(args), capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def swarm(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/swarm", timeout=10) as r:
        return json.loads(r.read())


def copy_public(key, folder):
    os.makedirs(folder, exist_ok=True)
    shutil.copy(key, os.path.join(folder, os.path.basename(key)))


def body(_h):
    check = h.check
    b, ep = start_broker(h, bins, "broker")
    trusted = os.path.join(h.logdir, "trusted-stages")
    clients = os.path.join(h.logdir, "rpc-clients")
    os.makedirs(trusted)
    alice = node_key(h, bins, "alice")  # a client key the operator lists
    copy_public(alice, clients)
    bob = node_key(h, bins, "bob")      # one it does not

    # 1) display names
    mark = b.mark()
    _, untrusted_id = start_stage(h, bins, "volunteer", ep, "0-1", "--name", "alice laptop")
    _, tail_id = start_stage(h, bins, "tail", ep, "2-4")
    check(b.wait_line(f'stage {untrusted_id} "alice laptop" registered', 10, stream="err", start=mark) is not None,
          "1) the broker logs the stage's display name beside its id")
    r = subprocess.run([bins.stage, "--broker", ep, "--model", model_path(), "--layers", "0-1", "--key",
                        node_key(h, bins, "badname"), "--name", "bell\x07name"], capture_output=True, text=True,
                       timeout=30)
    check(r.returncode != 0 and "display name" in r.stderr,
          f"1) a display name with a control byte is refused at start ({r.returncode}: {r.stderr.strip()[-160:]})")

    gw, rpc, port = start_gateway(h, bins, "gateway", ep, "--trusted-keys", trusted, "--trusted-layers", "2",
                                  "--rpc-allow", clients, "--route-wait-ms", "1500", http=True)
    check(wait_until(lambda: len(swarm(port)["stages"]) == 2, 20, 0.3), "the gateway sees both stages")
    sw = swarm(port)
    names = {s["node_id"]: s["display_name"] for s in sw["stages"]}
    check(names.get(untrusted_id) == "alice laptop" and names.get(tail_id) == "",
          f"1) /api/swarm gives each stage's display name ({names})")
    check(all(s.get("unsealed_replies") == 0 for s in sw["stages"]) and sw.get("unsealed_replies_total") == 0,
          "/api/swarm counts unsealed replies per stage and in total (0 here)")

    # 2) layers 0-1 only on trusted keys
    check(not sw["servable"] and {"begin": 0, "end": 2} in sw["gaps"],
          f"2) layers 0-1 held only by an untrusted key are a gap ({sw['gaps']})")
    rc, _, err = gen(rpc, "--key", alice, timeout=60)
    check(rc != 0 and "NO_ROUTE" in err, f"2) no route while only an untrusted stage holds 0-1 ({err.strip()[-200:]})")
    trusted_key = node_key(h, bins, "trusted-head")
    copy_public(trusted_key, trusted)
    head, head_id = start_stage(h, bins, "trusted-head", ep, "0-1")
    check(wait_until(lambda: swarm(port)["servable"], 20, 0.3), "2) a trusted stage closes the gap")
    want = run_local(bins, PROMPT, 30)
    rc, out, err = gen(rpc, "--key", alice)
    check(rc == 0 and out == want, f"2) the text through the trusted stage equals swisd run ({rc}, {err[-200:]})")
    h.stop(head)
    check(wait_until(lambda: not swarm(port)["servable"], 20, 0.3),
          "2) with the trusted stage gone, layers 0-1 are a gap again (the untrusted stage is never planned)")
    rc, _, err = gen(rpc, "--key", alice, timeout=60)
    check(rc != 0 and "NO_ROUTE" in err, f"2) and no generation runs through the untrusted stage ({err[-160:]})")
    head, _ = start_stage(h, bins, "trusted-head", ep, "0-1")
    check(wait_until(lambda: swarm(port)["servable"], 20, 0.3), "2) the trusted stage is back")

    # 3) --rpc-allow
    rc, out, err = gen(rpc, "--key", alice)
    check(rc == 0 and out == want, f"3) a listed client key is served ({rc}, {err[-160:]})")
    mark = gw.mark()
    rc, out, err = gen(rpc, "--key", bob, "--timeout-ms", "3000")
    check(rc != 0 and "--rpc-allow" in err, f"3) an unlisted key gets no answer, and is told why ({err.strip()[-240:]})")
    show = subprocess.run([bins.swisd, "keygen", "--show", bob], capture_output=True, text=True).stdout
    bob_id = show.split("node-id:", 1)[1].split()[0]
    check(gw.wait_line(f"(key {bob_id}): key is not on the allowlist", 10, stream="err", start=mark) is not None,
          "3) the gateway logs the refused handshake with the key's id and the reason")
    rc, out, err = gen(rpc, "--timeout-ms", "3000")
    check(rc != 0 and "created a new key" in err and os.path.exists(
          os.path.join(os.environ["XDG_CONFIG_HOME"], "swisd", "client.key")),
          f"3) without --key: the per-user client key, made on first use, is not listed either ({err.strip()[-240:]})")
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", method="POST",
                                 data=json.dumps({"prompt": PROMPT, "max_tokens": 30, "temperature": 0}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        text = json.loads(r.read())["choices"][0]["text"]
    check(PROMPT + text == want, "3) the HTTP front, dialling its own RPC with the gateway's key, keeps serving")

    # 4) option errors, each with its reason
    for argv, needle in [
        ([bins.gateway, "--broker", ep, "--model", model_path(), "--rpc", "tcp://127.0.0.1:*", "--key",
          node_key(h, bins, "gw2", trusted=True), "--trusted-layers", "2"], "--trusted-keys"),
        ([bins.gateway, "--broker", ep.split("#")[0], "--model", model_path(), "--rpc", "tcp://127.0.0.1:*",
          "--insecure", "--rpc-allow", clients], "--rpc-allow"),
        ([bins.swisd, "generate", "--gateway", rpc.split("#")[0], "-p", "x", "--key", alice], "--key"),
    ]:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        check(r.returncode != 0 and needle in r.stderr,
              f"4) {os.path.basename(argv[0])} refuses ({needle}): {r.returncode} {r.stderr.strip()[-200:]}")


h.run(body)
