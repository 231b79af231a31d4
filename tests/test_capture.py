#!/usr/bin/env python3
"""No prompt in clear on the wire (issue 11): captures every packet on the
loopback interface (an AF_PACKET socket: needs root or CAP_NET_RAW, else the
test is skipped) while a prompt goes through a swarm (broker, two stages, a
gateway) and checks the prompt's bytes, the generated text and the
activations never appear: an activation is looked for as any 16-byte run
(at a 4-byte step) of the f32 embedding row of BOS, read from the GGUF
(tests/gguf_rows.py): the first row of the prompt's first step, which the
gateway sends to the first stage (sealed: docs/security.md). The same run with
--insecure must show the prompt and that row (the capture and the search work).
The client's RPC runs over loopback too (CURVE with keys), so it is in the capture.
usage: test_capture.py   (binaries from $SWISD_BUILD)
"""
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Bins, Harness, generate, model_path, start_broker, start_gateway, start_stage,  # noqa: E402
                     wait_servable)
from gguf_rows import Gguf  # noqa: E402

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
    return blob, prompt, out


def row_runs(blob, row):
    """How many 16-byte runs of `row` (at a 4-byte step) occur in blob."""
    return sum(1 for i in range(0, len(row) - 15, 4) if row[i:i + 16] in blob)


def body(_h):
    g = Gguf(model_path())
    bos = int(g.kv.get("tokenizer.ggml.bos_token_id", 1))
    row = g.embedding_row(bos)
    h.check(row is not None and len(row) >= 16, "the test model's token_embd is f32 or f16 (BOS row readable)")
    blob, prompt, _ = one_run("plain", True)
    h.check(prompt.encode() in blob,
            f"--insecure: the prompt is seen in clear on loopback (capture works; {len(blob)} bytes captured)")
    h.check(row_runs(blob, row) > 0, "--insecure: the BOS activation row is seen in clear (the search works)")
    blob, prompt, out = one_run("curve", False)
    h.check(prompt.encode() not in blob, f"with keys: the prompt never appears on loopback ({len(blob)} bytes captured)")
    h.check(len(out) < 8 or out.strip().encode() not in blob, "with keys: the generated text never appears")
    n = row_runs(blob, row)
    h.check(n == 0, f"with keys: no 16-byte run of the BOS activation row appears ({n} found)")


h.run(body)
