#!/usr/bin/env python3
"""The dashboard and the chat page in headless Chromium, over a real swarm.

A root broker, two regional brokers (eu, us), three stages (layers 0-1 eu,
2-3 us, 4 eu) and a gateway serving the built dashboard (web/dist). A Node
script (tests/web/dashboard.mjs, playwright-core driving Debian's chromium)
checks that the dashboard lists exactly the stages that announced
themselves, grouped by region, with all layers covered; that a chat round
trip streams text into the page (seen growing) and ends with the text the
API answers for the same request; that when the us stage is killed the page
shows layers 2-3 missing; and that it reports an unreachable gateway.
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
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

broker_bin, stage_bin, gateway_bin, link_bin, web_src = sys.argv[1:6]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

model = harness.model_path()
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

procs = {}
logdir = tempfile.mkdtemp(prefix="swisd-web-test-")


def start(name, args, prefix, on_stderr=False):
    """Starts a process; returns the rest of its first output line holding prefix."""
    log = open(os.path.join(logdir, name + ".log"), "w")
    if on_stderr:
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.PIPE, text=True)
    else:
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
    procs[name] = p
    deadline = time.time() + 20
    while time.time() < deadline:
        line = (p.stderr if on_stderr else p.stdout).readline()
        if not line:
            break
        if prefix in line:
            if on_stderr:  # keep reading it, or a chatty process would block on a full pipe
                threading.Thread(target=lambda: [log.write(x) for x in p.stderr], daemon=True).start()
            return line[line.index(prefix) + len(prefix):].strip()
    raise RuntimeError(f"{name} did not start; see {log.name}")


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


rc = 1
try:
    root = start("broker-root", [broker_bin, "--bind", "tcp://127.0.0.1:*", "--region", "root"],
                 "swisd-broker: listening on")
    eu = start("broker-eu", [broker_bin, "--bind", "tcp://127.0.0.1:*", "--parent", root, "--region", "eu"],
               "swisd-broker: listening on")
    us = start("broker-us", [broker_bin, "--bind", "tcp://127.0.0.1:*", "--parent", root, "--region", "us"],
               "swisd-broker: listening on")
    far = start("link-us", [link_bin, "--listen", "127.0.0.1:0", "--connect", us.replace("tcp://", ""), "--delay", "15"],
                "listening on ", on_stderr=True).split()[0]
    stages = {}
    for name, ep, layers, region in (("stage-1", eu, "0-1", "eu"), ("stage-2", "tcp://" + far, "2-3", "us"),
                                     ("stage-3", eu, "4-4", "eu")):
        line = start(name, [stage_bin, "--broker", ep, "--model", model, "--layers", layers, "--region", region,
                            "--threads", "1"], "swisd-stage: ")
        stages[line.split()[0]] = region
    start("gateway", [gateway_bin, "--broker", eu, "--model", model, "--rpc", "tcp://127.0.0.1:*", "--region", "eu",
                      "--http", "127.0.0.1:0", "--http-rate", "100", "--web", web_dist], "swisd-gateway: rpc on")
    port = None
    while port is None:
        line = procs["gateway"].stdout.readline()
        if not line:
            raise RuntimeError("the gateway did not start its HTTP server")
        if line.startswith("swisd-gateway: http on port"):
            port = int(line.split()[-1])
    deadline = time.time() + 30
    while time.time() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/swarm", timeout=10) as r:
            if len(json.loads(r.read())["stages"]) == 3:
                break
        time.sleep(0.3)
    for i, p in enumerate(["Once upon a time", "The dog", "Lily and Ben", "One day", "The sun was", "A little bird"]):
        post(port, "/v1/completions", {"prompt": p, "max_tokens": 8 + 8 * i, "temperature": 0})  # plot points
    prompt, max_tokens = "Tell me a story about a cat", 24
    expected = post(port, "/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}],
                                                    "max_tokens": max_tokens, "temperature": 0})
    expected = expected["choices"][0]["message"]["content"]
    step_file = os.path.join(logdir, "step")
    open(step_file, "w").close()
    spec = {"base": f"http://127.0.0.1:{port}", "chromium": chromium, "stages": stages, "layers": 5,
            "prompt": prompt, "max_tokens": max_tokens, "expected_reply": expected, "step_file": step_file,
            "gap": "2-3", "gap_layers": 2, "screenshot": os.environ.get("SWISD_SCREENSHOT")}
    spec_file = os.path.join(logdir, "spec.json")
    with open(spec_file, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ, SWISD_WEB_MODULES=modules)
    node = subprocess.Popen(["node", os.path.join(os.path.dirname(os.path.abspath(__file__)), "web", "dashboard.mjs"),
                             spec_file], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while node.poll() is None and time.time() < deadline:
        step = open(step_file).read()
        if step == "kill-stage":
            procs["stage-2"].send_signal(signal.SIGKILL)  # vanishes without a goodbye: heartbeats time out
            open(step_file, "w").write("go")
        elif step == "kill-gateway":
            procs["gateway"].send_signal(signal.SIGTERM)
            open(step_file, "w").write("go")
        time.sleep(0.1)
    if node.poll() is None:
        node.kill()
    out = node.stdout.read()
    print(out, end="")
    fails = out.count("FAIL")
    oks = out.count("\nok ") + out.startswith("ok ")
    print(f"web: {oks + fails} checks, {fails} failed" + ("" if node.returncode == 0 else f" (node exit {node.returncode})"))
    rc = 0 if node.returncode == 0 and fails == 0 and oks >= 14 else 1
finally:
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs.values():
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    if rc == 0:
        shutil.rmtree(logdir, ignore_errors=True)
    else:
        print("logs in", logdir)
sys.exit(rc)
