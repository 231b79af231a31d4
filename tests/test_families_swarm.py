#!/usr/bin/env python3
"""Every architecture of $SWISD_TEST_DATA/refs/families in a real swarm, and
refusals at load time in every process.

  a) for the f16 file of each family (regenerated as test_families.py does
     when the folder leaves it out): a broker, two stages splitting the
     blocks (gemma3: 0-2 and 3-5, so local and global blocks sit in
     different stages; others 0-0 and 1-1) and a gateway (embeddings,
     Gemma's embedding scale, final norm, head, soft-capping). The greedy
     text through the swarm equals `swisd run`'s on the same file, whose
     logits test_families.py checks against the independent engine;
  b) copies of reference files with an unknown architecture ("gemma9"), an
     unsupported tensor type (token_embd as IQ2_XXS) and an invalid
     metadata value (gemma2.attn_logit_softcapping = -5) are refused by
     `swisd run`, swisd-stage and swisd-gateway, each exiting with an error
     that names what it refused.
usage: test_families_swarm.py SWISD SWISD_BROKER SWISD_STAGE SWISD_GATEWAY
Python 3 standard library only.
"""
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import families  # noqa: E402
from harness import (Bins, Harness, generate, in_ci, key_args, run_local, start_broker,  # noqa: E402
                     start_gateway, start_stage, test_data, wait_servable)

bins = Bins()
bins.swisd, bins.broker, bins.stage, bins.gateway = sys.argv[1:5]
PROMPT = "Once upon a time, there was a little girl"
FAMILIES = ["llama", "mixtral", "qwen2", "qwen3", "qwen3moe", "gemma2", "gemma3", "phi3"]


def patched(src, dst, edits):
    """dst = src with each (old bytes, new bytes) of edits replaced (same
    lengths, so every offset stays valid)."""
    with open(src, "rb") as f:
        b = f.read()
    for old, new in edits:
        assert len(old) == len(new) and old in b, (src, old)
        b = b.replace(old, new)
    with open(dst, "wb") as f:
        f.write(b)


def type_edit(path, tensor, new_type):
    """The edit that sets the GGUF type of 2-D `tensor` to new_type: its info
    is name (u64 length + bytes), u32 n_dims, 2 x u64 dims, u32 type."""
    name = tensor.encode()
    with open(path, "rb") as f:
        b = f.read()
    i = b.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
    old = b[i:i + 4 + 16 + 4]
    return old, old[:20] + struct.pack("<I", new_type)


def swarm(h, check, folder, sums):
    _, broker = start_broker(h, bins, "broker")
    for fam in FAMILIES:
        model, err = families.model_file(folder, fam + "-f16", sums)
        if not check(model is not None, f"{fam}: {err}"):
            continue
        local = run_local(bins, PROMPT, 24, "--ignore-eos", model=model)
        check(local.startswith(PROMPT) and len(local) > len(PROMPT), f"{fam}: swisd run gave {local!r}")
        split = ("0-2", "3-5") if fam == "gemma3" else ("0-0", "1-1")
        procs = []
        for i, layers in enumerate(split):
            p, _ = start_stage(h, bins, f"{fam}-stage{i}", broker, layers, model=model)
            procs.append(p)
        gw, rpc, _ = start_gateway(h, bins, f"{fam}-gateway", broker, model=model)
        procs.append(gw)
        if check(wait_servable(bins, rpc), f"{fam}: the swarm never became servable"):
            rc, out, err = generate(bins, rpc, PROMPT, 24, 120, "--ignore-eos")
            check(rc == 0 and out == local, f"{fam}: swarm text differs from swisd run's\n  swarm {out!r}\n"
                                            f"  local {local!r}\n  {err[-300:]}")
        for p in procs:
            h.stop(p)


def refusals(h, check, folder, tmp):
    cases = []
    dst = os.path.join(tmp, "arch.gguf")
    patched(os.path.join(folder, "gemma2-f16.gguf"), dst, [(b"gemma2", b"gemma9")])
    cases.append(("unknown architecture", dst, "unknown architecture 'gemma9'"))
    dst = os.path.join(tmp, "type.gguf")
    src = os.path.join(folder, "llama-f16.gguf")
    patched(src, dst, [type_edit(src, "token_embd.weight", 16)])
    cases.append(("unsupported tensor type", dst, "unsupported tensor type 16 (IQ2_XXS)"))
    dst = os.path.join(tmp, "meta.gguf")
    key = b"gemma2.attn_logit_softcapping"
    patched(os.path.join(folder, "gemma2-f16.gguf"), dst,
            [(key + struct.pack("<If", 6, 5.0), key + struct.pack("<If", 6, -5.0))])
    cases.append(("invalid metadata value", dst, "gemma2.attn_logit_softcapping = -5 is invalid"))
    _, broker = start_broker(h, bins, "broker-refusals")
    for what, model, want in cases:
        r = subprocess.run([bins.swisd, "run", "-m", model, "-p", "x", "-n", "1"],
                           capture_output=True, text=True, errors="replace", timeout=60)
        check(r.returncode == 1 and want in r.stderr, f"swisd run, {what}: exit {r.returncode}, {r.stderr[-300:]!r}")
        for role, argv in (("stage", [bins.stage, "--broker", broker, "--model", model, "--layers", "0-0"]),
                           ("gateway", [bins.gateway, "--broker", broker, "--model", model, "--rpc",
                                        "tcp://127.0.0.1:*"])):
            name = f"refuse-{role}-{os.path.basename(model)[:-5]}"
            p, _ = h.start(name, argv + key_args(h, bins, name, trusted=role == "gateway"))
            try:
                rc = p.p.wait(timeout=30)
            except Exception:
                rc = None
            h.stop(p)
            check(rc not in (0, None) and p.has(want),
                  f"swisd-{role}, {what}: exit {rc}, wanted an error holding {want!r}:\n{p.tail()}")


def body(h):
    readme = test_data("refs/families/README.md", "the family swarm and refusal checks")
    if readme is None:
        h.check(not in_ci(), "refs/families is missing (CI=true)")
        return
    folder = os.path.dirname(readme)
    sums = families.readme_sha256(folder)
    refusals(h, h.check, folder, h.logdir)
    swarm(h, h.check, folder, sums)


Harness("families_swarm").run(body)
