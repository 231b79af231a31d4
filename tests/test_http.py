#!/usr/bin/env python3
"""The gateway's OpenAI-compatible HTTP API over a real swarm (urllib only).

Checks: /healthz; /v1/models; /v1/completions greedy text equals `swisd run`'s
continuation; streaming (server-sent events ending "data: [DONE]") gives the
same text; /v1/chat/completions answers in OpenAI's shape; malformed JSON,
wrong types, a 2 MiB body, unknown paths and wrong methods get 4xx in
OpenAI's error shape and the gateway keeps serving; the per-address rate
limit answers 429 with Retry-After.
usage: test_http.py SWISD SWISD_BROKER SWISD_STAGE SWISD_GATEWAY
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

swisd, broker_bin, stage_bin, gateway_bin = sys.argv[1:5]
models = os.environ.get("SWISD_SHARED_MODELS", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models"))
model = os.path.join(models, "stories260K", "stories260K.f32.gguf")
procs, failures, checks = [], 0, 0


def check(cond, what):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print("FAIL:", what, flush=True)


def start(args, prefix):
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(p)
    lines = []
    while True:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError(f"{args[0]} did not start: {lines}")
        lines.append(line)
        if line.startswith(prefix):
            return line[len(prefix):].strip()


def call(port, path, body=None, method=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), dict(e.headers)


prompt = "Once upon a time"
local = subprocess.run([swisd, "run", "-m", model, "-p", prompt, "-n", "40", "--temp", "0", "-t", "1"],
                       capture_output=True, timeout=60).stdout.decode()[len(prompt):]
try:
    ep = start([broker_bin, "--bind", "tcp://127.0.0.1:*"], "swisd-broker: listening on")
    start([stage_bin, "--broker", ep, "--model", model, "--layers", "0-4", "--threads", "1"], "swisd-stage:")
    p = subprocess.Popen([gateway_bin, "--broker", ep, "--model", model, "--rpc", "tcp://127.0.0.1:*", "--http",
                          "127.0.0.1:0", "--http-rate", "1000"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    procs.append(p)
    port = None
    while port is None:
        line = p.stdout.readline()
        if not line:
            raise RuntimeError("the gateway did not start")
        if line.startswith("swisd-gateway: http on port"):
            port = int(line.split()[-1])
    st, body, _ = call(port, "/healthz")
    check(st == 200 and body.strip() == "ok", f"healthz: {st} {body}")
    deadline = time.time() + 20
    while time.time() < deadline:
        st, body, _ = call(port, "/v1/models")
        if st == 200 and json.loads(body)["data"][0]["servable"]:
            break
        time.sleep(0.3)
    check(st == 200 and json.loads(body)["data"][0]["id"] == "stories260K", f"models: {st} {body}")
    req = {"prompt": prompt, "max_tokens": 40, "temperature": 0}
    st, body, _ = call(port, "/v1/completions", req)
    j = json.loads(body) if st == 200 else {}
    check(st == 200 and j.get("choices", [{}])[0].get("text") == local, f"completion: {st} {body[:300]}")
    check(j.get("usage", {}).get("completion_tokens") == 40 and j.get("object") == "text_completion",
          f"usage/object: {body[:300]}")
    st, body, hdr = call(port, "/v1/completions", dict(req, stream=True))
    events = [l[6:] for l in body.split("\n") if l.startswith("data: ")]
    text = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1] if e != "[DONE]")
    check(st == 200 and events and events[-1] == "[DONE]" and text == local,
          f"stream: {st} {text!r} vs {local!r}")
    check(hdr.get("Content-Type", "").startswith("text/event-stream"), f"stream content type: {hdr}")
    st, body, _ = call(port, "/v1/chat/completions",
                       {"messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 10})
    j = json.loads(body) if st == 200 else {}
    check(st == 200 and j["choices"][0]["message"]["role"] == "assistant"
          and isinstance(j["choices"][0]["message"]["content"], str), f"chat: {st} {body[:300]}")
    bad = [("/v1/completions", None, b"{not json", 400), ("/v1/completions", {"prompt": 3}, None, 400),
           ("/v1/completions", {"prompt": "x", "max_tokens": "many"}, None, 400),
           ("/v1/completions", {"prompt": "x", "temperature": 9}, None, 400),
           ("/v1/chat/completions", {"messages": "hi"}, None, 400),
           ("/v1/completions", None, b"{\"prompt\": \"" + b"a" * (2 << 20) + b"\"}", 413),
           ("/v1/nothing", {"prompt": "x"}, None, 404)]
    for path, body_obj, raw, want in bad:
        st, body, _ = call(port, path, body_obj, raw=raw)
        ok = st == want
        try:
            ok = ok and "message" in json.loads(body)["error"]
        except (ValueError, KeyError):
            ok = False
        check(ok, f"{path} {str(body_obj or raw[:20])[:40]}: want {want} with an OpenAI error, got {st} {body[:200]}")
    st, _, _ = call(port, "/v1/completions", method="GET")
    check(st == 405, f"GET /v1/completions: {st}")
    st, body, _ = call(port, "/v1/completions", req)
    check(st == 200 and json.loads(body)["choices"][0]["text"] == local, "the gateway stopped serving after bad input")
    # the official OpenAI Node client (npm "openai"), when node and the npm registry are there
    node_dir = os.path.join(os.environ.get("SWISD_BUILD", "/tmp"), "openai-client")
    if shutil.which("node") and shutil.which("npm"):
        os.makedirs(node_dir, exist_ok=True)
        if not os.path.exists(os.path.join(node_dir, "node_modules", "openai")):
            subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", node_dir, "openai@4"],
                           capture_output=True, timeout=300)
        if os.path.exists(os.path.join(node_dir, "node_modules", "openai")):
            script = os.path.join(node_dir, "client.mjs")
            shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "http_openai_client.mjs"), script)
            expected = os.path.join(node_dir, "expected.txt")
            with open(expected, "w") as f:
                f.write(local)
            r = subprocess.run(["node", script, f"http://127.0.0.1:{port}/v1", expected], capture_output=True,
                               text=True, timeout=120)
            check(r.returncode == 0 and r.stdout.count("ok ") == 6, f"OpenAI Node client: {r.stdout} {r.stderr[-400:]}")
        else:
            print("note: npm could not install 'openai'; the Node client check was skipped", flush=True)
    st, body, _ = call(port, "/metrics")
    metrics = {l.split()[0]: l.split()[-1] for l in body.splitlines() if l and not l.startswith("#")}
    check(st == 200 and int(metrics.get("swisd_tokens_generated_total", 0)) >= 90,
          f"metrics tokens: {st} {body[:400]}")
    check(int(metrics.get('swisd_time_to_first_token_seconds_bucket{le="+Inf"}', 0)) >= 3, f"ttft histogram: {body[:600]}")
    check(metrics.get('swisd_stages{region="default"}') == "1", f"stages by region: {body[-400:]}")
    procs.pop().send_signal(signal.SIGTERM)
    # rate limit: 1 request/s, burst 2
    p = subprocess.Popen([gateway_bin, "--broker", ep, "--model", model, "--rpc", "tcp://127.0.0.1:*", "--http",
                          "127.0.0.1:0", "--http-rate", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    procs.append(p)
    while True:
        line = p.stdout.readline()
        if line.startswith("swisd-gateway: http on port") or not line:
            port = int(line.split()[-1])
            break
    codes = [call(port, "/v1/models") for _ in range(6)]
    limited = [c for c in codes if c[0] == 429]
    check(limited and "Retry-After" in limited[0][2], f"no 429 with Retry-After: {[c[0] for c in codes]}")
    time.sleep(1.1)
    st, body, _ = call(port, "/metrics")
    metrics = {l.split()[0]: l.split()[-1] for l in body.splitlines() if l and not l.startswith("#")}
    check(st == 200 and int(metrics.get("swisd_rate_limited_total", 0)) >= 1,
          f"rate-limited requests not counted: {st} {body[:300]}")
finally:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
print(f"http: {checks} checks, {failures} failed")
sys.exit(1 if failures else 0)
