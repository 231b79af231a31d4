#!/usr/bin/env python3
"""The swarm end to end: real brokers, stages and a gateway on loopback.

Topology: a root broker and two regional brokers (eu, us) under it; three
stages split over the two regions; a gateway in eu. Checks:
  a) for every prompt of tests/data/stories260K_greedy.tsv, greedy text
     through the swarm equals `swisd run`'s (same binary, one process) and
     the reference text, for the splits 2+2+1 and 1+1+3 (the second ends in
     the other region, so replies cross the root);
  b) 8 concurrent sessions with different prompts each equal their
     single-process text;
  c) malformed frames to the gateway and to a stage each get an Error, and the
     swarm keeps serving (a generation after them is still exact);
  d) a client killed mid-generation (after its first token) does not
     disturb a concurrent one;
  e) a --layers auto stage fills the gap (started once the others logged
     their registration), with per-link codecs.
usage: test_swarm.py SWISD SWISD_BROKER SWISD_STAGE SWISD_GATEWAY SWARM_POKE
Python 3 standard library only.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Bins, Harness, generate, greedy_refs, model_path, run_local,  # noqa: E402
                     start_broker, start_gateway, start_generate, start_stage, wait_servable, node_key)

bins = Bins()
bins.swisd, bins.broker, bins.stage, bins.gateway = sys.argv[1:5]
poke = sys.argv[5]
swisd = bins.swisd
rows = greedy_refs()


def body(h):
    check = h.check
    local = {p: run_local(bins, p, 100) for p, _ in rows}
    for p, want in rows:
        check(local[p].strip() == want.strip(), f"swisd run differs from the reference for {p!r}")
    swarm_splits(h, check, local)
    auto_fill(h, check, local)


def swarm_splits(h, check, local):
    for split_name, split in (("2+2+1", [("0-1", "eu"), ("2-3", "us"), ("4-4", "eu")]),
                              ("1+1+3", [("0-0", "us"), ("1-1", "eu"), ("2-4", "us")])):
        _, root = start_broker(h, bins, "root-" + split_name, region="root")
        eps = {}
        for region in ("eu", "us"):
            _, eps[region] = start_broker(h, bins, f"broker-{region}-{split_name}", parent=root, region=region)
        stage_ids = []
        for i, (layers, region) in enumerate(split):
            _, sid = start_stage(h, bins, f"stage{i}-{split_name}", eps[region], layers, region=region)
            stage_ids.append((sid, eps[region], f"stage{i}-{split_name}"))
        _, rpc, _ = start_gateway(h, bins, "gateway-" + split_name, eps["eu"], "--region", "eu")
        check(wait_servable(bins, rpc), f"{split_name}: the swarm never became servable")
        # a) every reference prompt, greedy, 100 tokens
        for p, want in rows:
            rc, out, err = generate(bins, rpc, p, 100)
            check(rc == 0 and out == local[p], f"{split_name} {p!r}: swarm text differs\n  swarm {out!r}\n"
                                               f"  local {local[p]!r}\n  {err[-300:]}")
            check(out.strip() == want.strip(), f"{split_name} {p!r}: swarm text differs from the reference")
        if split_name != "2+2+1":
            h.stop_all()
            continue
        # speculative decoding: greedy output identical to plain greedy, with a q4_0
        # copy and an early-exit (4 of 5 blocks) draft made by `swisd draft`
        for dname, dargs in (("q4_0", ["--type", "q4_0"]), ("early-exit", ["--layers", "4"])):
            dpath = os.path.join(h.logdir, f"draft-{dname}.gguf")
            subprocess.run([swisd, "draft", model_path(), dpath] + dargs, check=True, capture_output=True)
            _, rpc_spec, _ = start_gateway(h, bins, "gateway-spec-" + dname, eps["eu"], "--draft", dpath)
            check(wait_servable(bins, rpc_spec), f"speculative gateway ({dname}) never became servable")
            for p, want in rows:
                rc, out, err = generate(bins, rpc_spec, p, 100)
                check(rc == 0 and out == local[p], f"speculative ({dname}) {p!r}: text differs\n  spec  {out!r}\n"
                                                   f"  local {local[p]!r}\n  {err[-300:]}")
                check("draft acceptance" in err, f"speculative ({dname}): no acceptance reported: {err[-200:]}")
        # sampling: speculative keeps the target's distribution. 3-token completions (the 2nd
        # and 3rd tokens come from verification rounds) over 160 seeds, plain vs speculative,
        # compared with a two-sample chi-square test (rare outcomes pooled), at p = 0.001.
        def samples(endpoint, n_runs):
            out = []
            for seed in range(n_runs):
                r = subprocess.run([swisd, "generate", "--gateway", endpoint, "-p", "Once upon a time", "-n", "3",
                                    "--temp", "1", "--top-k", "0", "--top-p", "1", "--min-p", "0", "--seed",
                                    str(seed), "--ignore-eos"], capture_output=True, timeout=60)
                out.append(r.stdout.decode("utf-8", "replace")[len("Once upon a time"):])
            return out
        plain, spec = samples(rpc, 160), samples(rpc_spec, 160)
        def chi2_two_sample(a, b):
            cats = {}
            for x in a + b:
                cats[x] = cats.get(x, 0) + 1
            common = [c for c, n in cats.items() if n >= 10]
            def hist(xs):
                h = {c: 0 for c in common + ["other"]}
                for x in xs:
                    h[x if x in common else "other"] += 1
                return h
            ha, hb = hist(a), hist(b)
            stat, df = 0.0, -1
            for c in ha:
                tot = ha[c] + hb[c]
                if tot == 0:
                    continue
                df += 1
                for h, n in ((ha, len(a)), (hb, len(b))):
                    e = tot * n / (len(a) + len(b))
                    stat += (h[c] - e) ** 2 / e
            return stat, max(df, 1)
        # critical values of chi-square at p = 0.001 for df 1..30
        crit = [10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59, 31.26, 32.91, 34.53, 36.12,
                37.70, 39.25, 40.79, 42.31, 43.82, 45.31, 46.80, 48.27, 49.73, 51.18, 52.62, 54.05, 55.48, 56.89,
                58.30, 59.70]
        stat, df = chi2_two_sample(plain, spec)
        check(stat < crit[min(df, 30) - 1], f"speculative sampling changes the distribution: chi2 {stat:.1f}, df {df}")
        check(len(set(plain)) > 5, f"sampling produced too few distinct texts to test: {set(plain)}")
        # b) 8 concurrent sessions with different prompts
        prompts = [p for p, _ in rows] + ["Tom had a dog", "The sun was", "Sue and Ben", "One day, a bird",
                                          "There was a big tree"]
        prompts = prompts[:8]
        want8 = {p: run_local(bins, p, 60) for p in prompts}
        gens = [start_generate(bins, rpc, p, 60) for p in prompts]
        for p, g in zip(prompts, gens):
            rc, out, err = g.finish(120)
            check(rc == 0 and out == want8[p], f"concurrent {p!r}: {out!r} != {want8[p]!r} ({err[-200:]})")
        # c) malformed frames get errors, and the swarm keeps serving
        r = subprocess.run([poke, "rpc", rpc], capture_output=True, text=True, timeout=60)
        lines = [l for l in r.stdout.splitlines() if l.startswith("probe")]
        check(len(lines) == 6 and all("error" in l for l in lines), f"gateway probes: {r.stdout} {r.stderr}")
        sid, sep, sname = stage_ids[1]
        # with keys the valid activations are sealed for the stage (its key file), and a sealed
        # body replayed under another request id must be refused (docs/security.md)
        seal_args = [] if h.insecure else ["64", node_key(h, bins, sname)]
        r = subprocess.run([poke, "stage", sep, sid, "2", "4"] + seal_args, capture_output=True, text=True,
                           timeout=60)
        lines = [l for l in r.stdout.splitlines() if l.startswith("probe")]
        n_probes = 4 if h.insecure else 6
        check(len(lines) == n_probes and all("error" in l for l in lines[:4]), f"stage probes: {r.stdout} {r.stderr}")
        check(len(lines) == n_probes and "BAD_REQUEST" in lines[2], f"a bad activation was not refused: {r.stdout}")
        check(len(lines) == n_probes and "KV_MISSING" in lines[3], f"stage did not answer KV_MISSING: {r.stdout}")
        if not h.insecure:
            check(len(lines) == 6 and lines[4].endswith(": reply"), f"a sealed step was not answered: {r.stdout}")
            check(len(lines) == 6 and "BAD_SEAL" in lines[5], f"a replayed sealed body was not refused: {r.stdout}")
        p0, want0 = rows[0]
        rc, out, err = generate(bins, rpc, p0, 100)
        check(rc == 0 and out == local[p0], f"after the probes the swarm text differs: {out!r} {err[-300:]}")
        # d) a client killed mid-generation; another one in flight is unaffected
        victim = start_generate(bins, rpc, "Lily and Tom", 400, "--ignore-eos", temp="0.8")
        other = start_generate(bins, rpc, p0, 100)
        check(victim.wait_output(len("Lily and Tom") + 1, 60), "the victim client never printed a token")
        victim.kill()
        rc, out, err = other.finish(120)
        check(rc == 0 and out == local[p0], f"killed client disturbed another: {err[-300:]}")
        h.stop_all()


def auto_fill(h, check, local):
    # e) --layers auto fills the gap, and per-link codecs (a stage asking for f16 on its
    #    link, the gateway sending bf16) keep the greedy text (both measured lossless on
    #    these prompts by bench_codec)
    _, b1 = start_broker(h, bins, "auto-broker", expiry_ms=None)
    fixed = [start_stage(h, bins, "auto-s1", b1, "0-1", "--codec", "f16", threads=None)[0],
             start_stage(h, bins, "auto-s3", b1, "4-4", threads=None)[0]]
    for p in fixed:  # both registered before the auto stage asks
        check(p.wait_line("registered with broker", 30, "any") is not None, f"{p.name} never registered")
    s2, _ = start_stage(h, bins, "auto-s2", b1, "auto", "--mem", "400K", threads=None)
    check(s2.ready.endswith("serving layers 2-3"), f"--layers auto chose: {s2.ready!r}")
    _, rpc, _ = start_gateway(h, bins, "auto-gw", b1, "--codec", "bf16")
    check(wait_servable(bins, rpc), "the auto-filled swarm never became servable")
    p0, want0 = rows[0]
    rc, out, err = generate(bins, rpc, p0, 100)
    check(rc == 0 and out == local[p0], f"auto swarm with mixed codecs differs: {out!r} {err[-300:]}")
    h.stop_all()


Harness("swarm").run(body)
