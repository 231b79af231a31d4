#!/usr/bin/env python3
"""The dashboard and the chat page in headless Chromium, over a real swarm.

A root broker, two regional brokers (eu, us), three stages (layers 0-1 eu,
2-3 us, 4 eu) and a gateway serving the built dashboard (web/dist). A Node
script (tests/web/dashboard.mjs, playwright-core driving Debian's chromium)
checks that the dashboard lists exactly the stages that announced
themselves, grouped by region, with all layers covered; that a chat round
trip streams text into the page (seen growing) and ends with the text the
API answers for the same request; that when the us stage is killed the page
shows layers 2-3 missing; and that it reports an unreachable gateway. The
Contributors card lists each stage key with the credit its work earned
(proportional to its layers), its display name, audit rate and badge.
With SWISD_SCREENSHOT=FILE it also saves a screenshot of the dashboard.
Skipped (exit 77) when node, chromium, web/dist or playwright-core is missing
(`scripts/dev build` installs and builds them); under CI=true that fails.
The us stage reaches its broker through swisd-link with 15 ms of one-way
delay, so tokens arrive over time as they would over a WAN.
usage: test_web.py SWISD_BROKER SWISD_STAGE SWISD_GATEWAY SWISD_LINK WEB_DIR
"""
import json
import os
import shutil
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Bins, Harness, start_broker, start_gateway, start_link, start_stage, wait_until  # noqa: E402

bins = Bins()
bins.broker, bins.stage, bins.gateway, bins.link, web_src = sys.argv[1:6]
web_dist = os.path.join(web_src, "dist")
modules = os.path.join(web_src, "node_modules")
chromium = shutil.which("chromium") or "/usr/bin/chromium"
missing = [what for what, ok in (("node", shutil.which("node")), ("chromium", os.path.exists(chromium)),
                                 ("web/dist (npm run build)", os.path.exists(os.path.join(web_dist, "index.html"))),
                                 ("playwright-core (npm ci in web/)",
                                  os.path.exists(os.path.join(modules, "playwright-core")))) if not ok]
if missing:
    print("test_web: missing " + ", ".join(missing) + " (scripts/dev build installs them)")
    sys.exit(1 if os.environ.get("CI") else 77)  # in CI the dashboard must have been built and tested


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def stage_count(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/swarm", timeout=10) as r:
        return len(json.loads(r.read())["stages"])


def body(h):
    _, root = start_broker(h, bins, "broker-root", region="root", heartbeat_ms=None, expiry_ms=None)
    _, eu = start_broker(h, bins, "broker-eu", parent=root, region="eu", heartbeat_ms=None, expiry_ms=None)
    _, us = start_broker(h, bins, "broker-us", parent=root, region="us", heartbeat_ms=None, expiry_ms=None)
    _, far = start_link(h, "link-us", bins, us, "--delay", "15")
    stages, procs, names, stage_layers = {}, {}, {}, {}
    for name, ep, layers, region in (("stage-1", eu, "0-1", "eu"), ("stage-2", far, "2-3", "us"),
                                     ("stage-3", eu, "4-4", "eu")):
        # a display name (--name) is shown beside the key's fingerprint
        procs[name], sid = start_stage(h, bins, name, ep, layers, "--name", f"volunteer {name}", region=region)
        stages[sid] = region
        names[sid] = f"volunteer {name}"
        a, b = layers.split("-")
        stage_layers[sid] = int(b) - int(a) + 1
    gw, _, port = start_gateway(h, bins, "gateway", eu, "--region", "eu", "--http-rate", "100", "--web", web_dist,
                                http=True)
    h.check(wait_until(lambda: stage_count(port) == 3, 30, 0.3), "the gateway never saw the 3 stages")
    for i, p in enumerate(["Once upon a time", "The dog", "Lily and Ben", "One day", "The sun was", "A little bird"]):
        post(port, "/v1/completions", {"prompt": p, "max_tokens": 8 + 8 * i, "temperature": 0})  # plot points
    prompt, max_tokens = "Tell me a story about a cat", 24
    expected = post(port, "/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}],
                                                    "max_tokens": max_tokens, "temperature": 0})
    expected = expected["choices"][0]["message"]["content"]
    step_file = os.path.join(h.logdir, "step")
    open(step_file, "w").close()
    spec = {"base": f"http://127.0.0.1:{port}", "chromium": chromium, "stages": stages, "names": names,
            "stage_layers": stage_layers, "layers": 5,
            "prompt": prompt, "max_tokens": max_tokens, "expected_reply": expected, "step_file": step_file,
            "gap": "2-3", "gap_layers": 2, "screenshot": os.environ.get("SWISD_SCREENSHOT")}
    spec_file = os.path.join(h.logdir, "spec.json")
    with open(spec_file, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, SWISD_WEB_MODULES=modules)
    node, _ = h.start("node", ["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "web",
                                                    "dashboard.mjs"), spec_file], env=env)
    # the page script asks for faults through the step file, and waits for "go"
    deadline = time.monotonic() + 240
    while node.alive() and time.monotonic() < deadline:
        step = open(step_file).read()
        if step == "kill-stage":
            procs["stage-2"].signal(signal.SIGKILL)  # vanishes without a goodbye: heartbeats time out
            open(step_file, "w").write("go")
        elif step == "kill-gateway":
            gw.signal(signal.SIGTERM)
            open(step_file, "w").write("go")
        time.sleep(0.1)
    if node.alive():
        node.p.kill()
    rc = node.stop()
    out = node.output("any")
    print(out, end="")
    fails = out.count("FAIL")
    oks = out.count("\nok ") + out.startswith("ok ")
    print(f"web: {oks + fails} checks, {fails} failed" + ("" if rc == 0 else f" (node exit {rc})"))
    h.check(rc == 0 and fails == 0 and oks >= 17, f"the dashboard checks: {oks} ok, {fails} failed, node exit {rc}")


Harness("web").run(body)
