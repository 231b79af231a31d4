#!/usr/bin/env python3
"""No prompt in clear on the wire (issue 11): captures every packet on the
loopback interface (an AF_PACKET socket: needs root or CAP_NET_RAW, else the
test is skipped) while a prompt goes through a swarm (broker, two stages, a
gateway) and checks the prompt's bytes never appear. The same run with
--insecure must show them (the capture itself works).
usage: test_capture.py   (binaries from $SWISD_BUILD)
"""
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Bins, Harness, generate, start_broker, start_gateway, start_stage, wait_servable  # noqa: E402

ETH_P_ALL = 0x0003
try:
    probe = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    probe.close()
except (PermissionError, AttributeError, OSError) as e:
    print(f"SKIP: cannot capture packets on loopback ({e})")
    sys.exit(77)

bins = Bins()
h = Harness("capture", verbose=True)


class Capture:
    """Every packet on "lo" from start() to stop(), as one bytes blob."""

    def __init__(self):
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.s.bind(("lo", 0))
        self.s.settimeout(0.2)
        self.chunks = []
        self.running = True
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while self.running:
            try:
                self.chunks.append(self.s.recv(65536))
            except socket.timeout:
                pass

    def stop(self):
        self.running = False
        self.t.join()
        self.s.close()
        return b"\n".join(self.chunks)


def one_run(tag, insecure):
    h.insecure = insecure
    prompt = f"Once upon a time the quokka {tag} sang"
    _, ep = start_broker(h, bins, f"broker-{tag}")
    start_stage(h, bins, f"stage-a-{tag}", ep, "0-2")
    start_stage(h, bins, f"stage-b-{tag}", ep, "3-4")
    _, rpc, _ = start_gateway(h, bins, f"gateway-{tag}", ep)
    h.check(wait_servable(bins, rpc), f"{tag}: the swarm becomes servable")
    cap = Capture()
    rc, out, err = generate(bins, rpc, prompt, 20)
    blob = cap.stop()
    h.check(rc == 0, f"{tag}: generation works ({err[-200:]})")
    h.stop_all()
    return prompt.encode() in blob, len(blob)


def body(_h):
    seen, n = one_run("plain", True)
    h.check(seen, f"--insecure: the prompt is seen in clear on loopback (capture works; {n} bytes captured)")
    seen, n = one_run("curve", False)
    h.check(not seen, f"with keys: the prompt never appears on loopback ({n} bytes captured)")


h.run(body)
