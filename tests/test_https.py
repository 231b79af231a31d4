#!/usr/bin/env python3
"""The gateway's HTTP API over TLS (--https-cert, --https-key), with a real
TLS client (Python's ssl) and a self-signed certificate made by `openssl req
-x509` in the test.

Checks: bad certificate set-ups stop the gateway at start with a clear
reason (a missing file, a file that is not PEM, a key of another
certificate, one of the two options alone); completions over HTTPS (whole
and streamed) give `swisd run`'s greedy text, the certificate verifies
against itself; a plain-HTTP request to the TLS port fails (no HTTP answer)
and the server keeps serving; garbage handshakes (random bytes, a truncated
ClientHello, connections that send nothing) do not stop it from answering a
real client at once, while those connections are still open.
usage: test_https.py SWISD SWISD_BROKER SWISD_STAGE SWISD_GATEWAY
"""
import http.client
import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Bins, Harness, run_local, start_broker, start_stage, wait_until  # noqa: E402

bins = Bins()
bins.swisd, bins.broker, bins.stage, bins.gateway = sys.argv[1:5]
prompt = "Once upon a time"


def make_cert(folder, name):
    """A self-signed certificate for 127.0.0.1 and its key: (cert path, key path)."""
    cert, key = os.path.join(folder, name + ".pem"), os.path.join(folder, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return cert, key


def gateway_argv(h, ep, *args):
    """A gateway's command line, with a key its broker lists for the gateway role (harness.key_args)."""
    return [bins.gateway, "--broker", ep, "--model", harness.model_path(), "--rpc", "tcp://127.0.0.1:*",
            "--http", "127.0.0.1:0", "--web", ""] + harness.key_args(h, bins, "gateway", trusted=True) + list(args)


def https(port, ctx, path, body=None, timeout=60):
    """(status, body text) of one request over TLS."""
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=timeout)
    try:
        c.request("POST" if body is not None else "GET", path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def body(h):
    check = h.check
    if not shutil.which("openssl"):
        check(not harness.in_ci(), "openssl is installed (Debian package openssl)")
        print("SKIP: no openssl to make a certificate")
        return
    tmp = tempfile.mkdtemp(prefix="swisd-https-")
    cert, key = make_cert(tmp, "server")
    other_cert, other_key = make_cert(tmp, "other")
    not_pem = os.path.join(tmp, "junk.pem")
    with open(not_pem, "wb") as f:
        f.write(os.urandom(300))
    local = run_local(bins, prompt, 30, timeout=60)[len(prompt):]
    _, ep = start_broker(h, bins, "broker")
    start_stage(h, bins, "stage", ep, "0-4")

    # set-up mistakes: refused at start, each with its reason
    for name, args, want in [
            ("missing", ["--https-cert", os.path.join(tmp, "nope.pem"), "--https-key", key], "No such file"),
            ("not-pem", ["--https-cert", not_pem, "--https-key", key], "not PEM"),
            ("mismatch", ["--https-cert", cert, "--https-key", other_key], "does not belong"),
            ("cert-only", ["--https-cert", cert], "both --https-cert and --https-key")]:
        p, _ = h.start("gateway-" + name, gateway_argv(h, ep, *args))
        p.p.wait(timeout=30)
        check(p.p.returncode not in (0, None) and p.has(want), f"{name}: exit {p.p.returncode}, {p.tail(3)}")

    gw, _ = h.start("gateway", gateway_argv(h, ep, "--https-cert", cert, "--https-key", key, "--http-rate", "1000",
                                            "--http-max-conn-per-addr", "200"), ready="swisd-gateway: rpc on")
    rest = gw.wait_line("swisd-gateway: https on port")
    check(rest is not None, "the gateway serves HTTPS")
    port = int(rest)
    ctx = ssl.create_default_context(cafile=cert)  # verifies the chain and the name 127.0.0.1
    req = {"prompt": prompt, "max_tokens": 30, "temperature": 0}
    ok = wait_until(lambda: https(port, ctx, "/v1/completions", req)[0] == 200, 60, 0.3)
    check(ok, "completions over HTTPS")
    st, text = https(port, ctx, "/v1/completions", req)
    j = json.loads(text) if st == 200 else {}
    check(st == 200 and j["choices"][0]["text"] == local, f"HTTPS completion text: {st} {text[:200]} vs {local!r}")
    st, text = https(port, ctx, "/v1/completions", dict(req, stream=True))
    events = [l[6:] for l in text.split("\n") if l.startswith("data: ")]
    streamed = "".join(json.loads(e)["choices"][0]["text"] for e in events if e != "[DONE]")
    check(st == 200 and events[-1:] == ["[DONE]"] and streamed == local, f"HTTPS stream: {st} {streamed!r}")
    bad_ctx = ssl.create_default_context(cafile=other_cert)
    try:
        https(port, bad_ctx, "/healthz")
        check(False, "a client that trusts another certificate must refuse the server")
    except ssl.SSLError:
        pass

    # plain HTTP to the TLS port: no HTTP answer, and the server goes on
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/healthz")
        r = c.getresponse()
        plain = f"status {r.status}"
    except (http.client.HTTPException, OSError) as e:
        plain = f"failed: {type(e).__name__}"
    c.close()
    check(plain.startswith("failed"), f"plain HTTP to the TLS port gets no HTTP answer: {plain}")
    check(https(port, ctx, "/healthz")[0] == 200, "the server serves after a plain-HTTP request")

    # garbage handshakes and silent connections, held open while a real client is served
    rng = random.Random(5)
    held = []
    hello = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]) + bytes(20)  # cut short
    for i in range(60):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if i % 3 == 0:
            s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 2000))))
        elif i % 3 == 1:
            s.sendall(hello)
        held.append(s)
    t0 = time.monotonic()
    st, text = https(port, ctx, "/v1/completions", req, timeout=20)
    took = time.monotonic() - t0
    check(st == 200 and json.loads(text)["choices"][0]["text"] == local and took < 10,
          f"a real client is served while 60 garbage connections are open: {st} in {took:.1f} s")
    for s in held:
        s.close()
    check(gw.alive(), "the gateway survived the garbage")
    check(https(port, ctx, "/healthz")[0] == 200, "and still serves")


if __name__ == "__main__":
    sys.exit(Harness("test_https").run(body))
