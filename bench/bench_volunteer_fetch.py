#!/usr/bin/env python3
"""`swisd volunteer` on an empty cache (issue 13): the time from its start to
its stage's ready line, and the bytes downloaded against the layers taken.

For each model: its manifest (signed with an operator key) and the GGUF on a
loopback HTTP server (tests/shard_server.py, which counts the body bytes of
the GGUF it sends; the manifest is on a second server, not counted), a fresh
broker with no stage, a bootstrap file naming the broker and the manifest URL
+ signer; then `swisd volunteer BOOTSTRAP --cache EMPTY` with its default
memory cap, timed from the start of the process to the "swisd-stage: NODE
serving layers" line of its stage (which the stage prints once registered).
Runs are interleaved across models, REPEAT times; prints the median and every
run as a Markdown table.

usage: bench_volunteer_fetch.py BUILD_DIR MODEL.gguf [MODEL.gguf ...] [--repeat 3] [--max-mem SIZE]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from harness import Bins, Harness, key_args, node_key, start_broker  # noqa: E402
from shard_server import ShardServer  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("models", nargs="+")
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--max-mem", default=None, help="the volunteer's --max-mem (default: its own, half of the memory)")
a = ap.parse_args()

bins = Bins(a.build)
h = Harness("bench-volunteer-fetch")
FETCHED = re.compile(r"fetched layers (\d+)-(\d+) of \S+: (\d+) bytes received in (\d+) ranges.*, ([0-9.]+) s \(")


def body(_h):
    d = tempfile.mkdtemp(prefix="swisd-bench-vol-", dir="/tmp")
    key = node_key(h, bins, "operator")
    setups = []
    for path in a.models:
        name = os.path.basename(path)
        man = os.path.join(d, name + ".manifest.json")
        gsrv = ShardServer({"/" + name: path})
        msrv = ShardServer({"/manifest.json": man})
        r = subprocess.run([bins.swisd, "manifest", path, "--url", gsrv.url("/" + name), "--key", key, "-o", man],
                           capture_output=True, text=True, check=True)
        signer = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("signer:")][0]
        m = json.load(open(man))
        setups.append({"name": name, "gsrv": gsrv, "msrv": msrv, "signer": signer, "m": m, "size": os.path.getsize(path),
                       "runs": []})
    for rep in range(a.repeat):
        for s in setups:
            _, ep = start_broker(h, bins, f"broker-{rep}-{s['name']}")
            boot = os.path.join(d, f"boot-{rep}-{s['name']}.json")
            with open(boot, "w") as f:
                json.dump({"brokers": [{"endpoint": ep}],
                           "models": [{"id": s["m"]["model_id"], "manifest": s["msrv"].url("/manifest.json"),
                                       "signer": s["signer"]}]}, f)
            cache = os.path.join(d, f"cache-{rep}-{s['name']}")
            argv = [bins.swisd, "volunteer", boot, "--cache", cache, "--nice", "0", "--pause-load", "0"]
            argv += key_args(h, bins, f"vol-{rep}-{s['name']}")
            if a.max_mem:
                argv += ["--max-mem", a.max_mem]
            s["gsrv"].reset()
            t0 = time.monotonic()
            p, _ = h.start(f"vol-{rep}-{s['name']}", argv, ready="swisd-stage: ", timeout=600)
            ready_s = time.monotonic() - t0
            line = next(ln for _, ln in p.lines if "fetched layers" in ln)
            g = FETCHED.search(line)
            first, last, received, ranges, fetch_s = int(g[1]), int(g[2]), int(g[3]), int(g[4]), float(g[5])
            layer_bytes = sum(x["bytes"] for x in s["m"]["layers"] if first <= x["layer"] <= last)
            s["runs"].append({"ready_s": ready_s, "fetch_s": fetch_s, "layers": f"{first}-{last}",
                              "layer_bytes": layer_bytes, "header": s["m"]["header"]["size"],
                              "received": received, "served": s["gsrv"].bytes_sent, "ranges": ranges})
            print(f"{s['name']} run {rep + 1}: ready {ready_s:.2f} s (fetch {fetch_s:.2f} s), layers {first}-{last}, "
                  f"{layer_bytes} layer bytes + {s['m']['header']['size']} header, {s['gsrv'].bytes_sent} served",
                  flush=True)
            h.stop_all()
    print("\n| model (file bytes) | layers taken | layer bytes + header | served (counted) | ranges | fetch s "
          "(median) | start to stage ready s (median; runs) |")
    print("|---|---|---|---|---|---|---|")
    for s in setups:
        r0 = s["runs"][0]
        runs = ", ".join(f"{r['ready_s']:.2f}" for r in s["runs"])
        print(f"| {s['name']} ({s['size']:,}) | {r0['layers']} of {s['m']['n_layers']} | "
              f"{r0['layer_bytes']:,} + {r0['header']:,} = {r0['layer_bytes'] + r0['header']:,} | "
              f"{statistics.median(r['served'] for r in s['runs']):,.0f} | {r0['ranges']} | "
              f"{statistics.median(r['fetch_s'] for r in s['runs']):.2f} | "
              f"{statistics.median(r['ready_s'] for r in s['runs']):.2f} ({runs}) |")
    for s in setups:
        s["gsrv"].close()
        s["msrv"].close()


h.run(body)
