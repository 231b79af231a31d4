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
  d) a client killed mid-generation does not disturb a concurrent one.
usage: test_swarm.py SWISD SWISD_BROKER SWISD_STAGE SWISD_GATEWAY SWARM_POKE
Python 3 standard library only.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

swisd, broker_bin, stage_bin, gateway_bin, poke = sys.argv[1:6]
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

model = harness.model_path()
rows = harness.greedy_refs()

failures = 0
checks = 0


def check(cond, what):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print("FAIL:", what, flush=True)


procs = []
logdir = tempfile.mkdtemp(prefix="swisd-test-swarm-")


def start(name, args, prefix=None):
    log = open(os.path.join(logdir, name + ".log"), "w")
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
    procs.append(p)
    if prefix is None:
        return p, None
    deadline = time.time() + 20
    while time.time() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            return p, line[len(prefix):].strip()
    raise RuntimeError(f"{name} did not start; see {log.name}")


def run_local(prompt, n=100):
    r = subprocess.run([swisd, "run", "-m", model, "-p", prompt, "-n", str(n), "--temp", "0", "-t", "1"],
                       capture_output=True, timeout=120)
    return r.stdout.decode("utf-8", "replace")


def generate(rpc, prompt, n=100, timeout=120):
    r = subprocess.run([swisd, "generate", "--gateway", rpc, "-p", prompt, "-n", str(n), "--temp", "0"],
                       capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def wait_servable(rpc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rc, out, err = generate(rpc, "Once", 1, timeout=30)
        if rc == 0:
            return True
        time.sleep(0.3)
    return False


def stop_all():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    procs.clear()


local = {p: run_local(p) for p, _ in rows}
for p, want in rows:
    check(local[p].strip() == want.strip(), f"swisd run differs from the reference for {p!r}")

try:
    for split_name, split in (("2+2+1", [("0-1", "eu"), ("2-3", "us"), ("4-4", "eu")]),
                              ("1+1+3", [("0-0", "us"), ("1-1", "eu"), ("2-4", "us")])):
        _, root = start("root", [broker_bin, "--bind", "tcp://127.0.0.1:*", "--region", "root",
                                 "--heartbeat-ms", "200", "--expiry-ms", "1500"], "swisd-broker: listening on")
        eps = {}
        for region in ("eu", "us"):
            _, eps[region] = start("broker-" + region, [broker_bin, "--bind", "tcp://127.0.0.1:*", "--parent", root,
                                                        "--region", region, "--heartbeat-ms", "200",
                                                        "--expiry-ms", "1500"], "swisd-broker: listening on")
        stage_ids = []
        for i, (layers, region) in enumerate(split):
            _, sid = start(f"stage{i}-{split_name}", [stage_bin, "--broker", eps[region], "--model", model,
                                                      "--layers", layers, "--region", region, "--threads", "1"],
                           "swisd-stage:")
            stage_ids.append((sid.split()[0], eps[region]))
        _, rpc = start("gateway-" + split_name, [gateway_bin, "--broker", eps["eu"], "--model", model, "--rpc",
                                                 "tcp://127.0.0.1:*", "--region", "eu"], "swisd-gateway: rpc on")
        check(wait_servable(rpc), f"{split_name}: the swarm never became servable")
        # a) every reference prompt, greedy, 100 tokens
        for p, want in rows:
            rc, out, err = generate(rpc, p)
            check(rc == 0 and out == local[p], f"{split_name} {p!r}: swarm text differs\n  swarm {out!r}\n"
                                               f"  local {local[p]!r}\n  {err[-300:]}")
            check(out.strip() == want.strip(), f"{split_name} {p!r}: swarm text differs from the reference")
        if split_name != "2+2+1":
            stop_all()
            continue
        # speculative decoding: greedy output identical to plain greedy, with a q4_0
        # copy and an early-exit (4 of 5 blocks) draft made by `swisd draft`
        for dname, dargs in (("q4_0", ["--type", "q4_0"]), ("early-exit", ["--layers", "4"])):
            dpath = os.path.join(logdir, f"draft-{dname}.gguf")
            subprocess.run([swisd, "draft", model, dpath] + dargs, check=True, capture_output=True)
            _, rpc_spec = start("gateway-spec-" + dname, [gateway_bin, "--broker", eps["eu"], "--model", model,
                                                          "--rpc", "tcp://127.0.0.1:*", "--draft", dpath],
                                "swisd-gateway: rpc on")
            check(wait_servable(rpc_spec), f"speculative gateway ({dname}) never became servable")
            for p, want in rows:
                rc, out, err = generate(rpc_spec, p)
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
        want8 = {p: run_local(p, 60) for p in prompts}
        gens = [subprocess.Popen([swisd, "generate", "--gateway", rpc, "-p", p, "-n", "60", "--temp", "0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for p in prompts]
        for p, g in zip(prompts, gens):
            out, err = g.communicate(timeout=120)
            check(g.returncode == 0 and out.decode() == want8[p],
                  f"concurrent {p!r}: {out.decode()!r} != {want8[p]!r} ({err.decode()[-200:]})")
        # c) malformed frames get errors, and the swarm keeps serving
        r = subprocess.run([poke, "rpc", rpc], capture_output=True, text=True, timeout=60)
        lines = [l for l in r.stdout.splitlines() if l.startswith("probe")]
        check(len(lines) == 6 and all("error" in l for l in lines), f"gateway probes: {r.stdout} {r.stderr}")
        sid, sep = stage_ids[1]
        r = subprocess.run([poke, "stage", sep, sid, "2", "4"], capture_output=True, text=True, timeout=60)
        lines = [l for l in r.stdout.splitlines() if l.startswith("probe")]
        check(len(lines) == 4 and all("error" in l for l in lines), f"stage probes: {r.stdout} {r.stderr}")
        check(len(lines) == 4 and "BAD_REQUEST" in lines[2], f"a bad activation was not refused: {r.stdout}")
        check(len(lines) == 4 and "KV_MISSING" in lines[3], f"stage did not answer KV_MISSING: {r.stdout}")
        p0, want0 = rows[0]
        rc, out, err = generate(rpc, p0)
        check(rc == 0 and out == local[p0], f"after the probes the swarm text differs: {out!r} {err[-300:]}")
        # d) a client killed mid-generation; another one in flight is unaffected
        victim = subprocess.Popen([swisd, "generate", "--gateway", rpc, "-p", "Lily and Tom", "-n", "400",
                                   "--temp", "0.8", "--ignore-eos"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        other = subprocess.Popen([swisd, "generate", "--gateway", rpc, "-p", p0, "-n", "100", "--temp", "0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.05)
        victim.kill()
        victim.wait()
        out, err = other.communicate(timeout=120)
        check(other.returncode == 0 and out.decode() == local[p0], f"killed client disturbed another: {err[-300:]}")
        stop_all()
    # e) --layers auto fills the gap, and per-link codecs (a stage asking for f16 on its
    #    link, the gateway sending bf16) keep the greedy text (both measured lossless on
    #    these prompts by bench_codec)
    _, b1 = start("auto-broker", [broker_bin, "--bind", "tcp://127.0.0.1:*", "--heartbeat-ms", "200"],
                  "swisd-broker: listening on")
    start("auto-s1", [stage_bin, "--broker", b1, "--model", model, "--layers", "0-1", "--codec", "f16"],
          "swisd-stage:")
    start("auto-s3", [stage_bin, "--broker", b1, "--model", model, "--layers", "4-4"], "swisd-stage:")
    time.sleep(0.6)  # both registered before the auto stage asks
    _, line = start("auto-s2", [stage_bin, "--broker", b1, "--model", model, "--layers", "auto", "--mem", "400K"],
                    "swisd-stage:")
    check(line.endswith("serving layers 2-3"), f"--layers auto chose: {line!r}")
    _, rpc = start("auto-gw", [gateway_bin, "--broker", b1, "--model", model, "--rpc", "tcp://127.0.0.1:*",
                               "--codec", "bf16"], "swisd-gateway: rpc on")
    check(wait_servable(rpc), "the auto-filled swarm never became servable")
    p0, want0 = rows[0]
    rc, out, err = generate(rpc, p0)
    check(rc == 0 and out == local[p0], f"auto swarm with mixed codecs differs: {out!r} {err[-300:]}")
    stop_all()
finally:
    stop_all()

print(f"swarm: {checks} checks, {failures} failed (logs in {logdir})")
sys.exit(1 if failures else 0)
