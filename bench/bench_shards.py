#!/usr/bin/env python3
"""Model shards by URL (issue 13): bytes downloaded against layers taken, and
the time from an empty cache to a stage ready on the fetched sparse file.

For each server (the test's Python range server, tests/shard_server.py, which
counts the bytes it sends; and the gateway with --serve-model, libmicrohttpd
sending from the file descriptor), writes the model's manifest, then for each
layer range: an empty cache, `swisd fetch` (timed), then a real stage on the
sparse file until its ready line (timed). Runs are interleaved across layer
ranges and servers, REPEAT times; prints the median of each as a Markdown table.

usage: bench_shards.py BUILD_DIR MODEL.gguf [--layers 0-0,0-10,all] [--repeat 3]
       [--servers python,gateway] [--download-kbps N]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from harness import Bins, Harness, free_port, node_key, start_broker, start_gateway, start_stage  # noqa: E402
from shard_server import ShardServer  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("model")
ap.add_argument("--layers", default="0-0,all")
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--servers", default="python,gateway")
ap.add_argument("--download-kbps", type=int, default=0)
a = ap.parse_args()

bins = Bins(a.build)
h = Harness("bench-shards")
LINE = re.compile(r"received (\d+) bytes in (\d+) ranges")


def body(_h):
    d = tempfile.mkdtemp(prefix="swisd-bench-shards-", dir=os.path.dirname(os.path.abspath(a.model)))
    model = os.path.join(d, os.path.basename(a.model))
    os.link(a.model, model) if os.stat(a.model).st_dev == os.stat(d).st_dev else shutil.copy(a.model, model)
    key = node_key(h, bins, "operator")
    signer = subprocess.run([bins.swisd, "manifest", "--show-signer", "--key", key], capture_output=True,
                            text=True, check=True).stdout.split()[1]
    b, ep = start_broker(h, bins, "broker")
    servers = {}
    for name in a.servers.split(","):
        if name == "python":
            srv = ShardServer({"/" + os.path.basename(model): model})
            url = srv.url("/" + os.path.basename(model))
        else:
            srv = None
            port = free_port()
            url = f"http://127.0.0.1:{port}/models/{os.path.basename(model)}"
        man = os.path.join(d, f"manifest-{name}.json")
        t0 = time.monotonic()
        subprocess.run([bins.swisd, "manifest", model, "--url", url, "--key", key, "-o", man], check=True,
                       capture_output=True)
        t_man = time.monotonic() - t0
        if name == "gateway":
            shutil.copy(man, os.path.join(d, "manifest.json"))
            start_gateway(h, bins, "gateway", ep, "--http", f"127.0.0.1:{port}", "--serve-model",
                          os.path.join(d, "manifest.json"), timeout=120)
            man_url = f"http://127.0.0.1:{port}/models/manifest.json"
        else:
            srv.files["/manifest.json"] = man
            man_url = srv.url("/manifest.json")
        servers[name] = (srv, man_url, t_man)
        print(f"manifest ({name}): {t_man:.2f} s", flush=True)
    import json
    m = json.load(open(os.path.join(d, f"manifest-{a.servers.split(',')[0]}.json")))
    n_layers = m["n_layers"]
    ranges = []
    for spec in a.layers.split(","):
        lo, hi = (0, n_layers - 1) if spec == "all" else map(int, spec.split("-"))
        ranges.append((lo, hi))
    res = {}
    for rep in range(a.repeat):
        for name, (srv, man_url, _) in servers.items():
            for lo, hi in ranges:
                cache = os.path.join(d, f"cache-{name}-{lo}-{hi}-{rep}")
                if srv:
                    srv.reset()
                argv = [bins.swisd, "fetch", man_url, "--layers", f"{lo}-{hi}", "--cache", cache, "--manifest-key",
                        signer]
                if a.download_kbps:
                    argv += ["--download-kbps", str(a.download_kbps)]
                t0 = time.monotonic()
                r = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
                t_fetch = time.monotonic() - t0
                if r.returncode != 0:
                    raise RuntimeError(r.stderr)
                got = LINE.search(r.stderr)
                received = int(got.group(1))
                served = srv.bytes_sent if srv else None
                t0 = time.monotonic()
                st, _ = start_stage(h, bins, f"stage-{name}-{lo}-{hi}-{rep}", ep, f"{lo}-{hi}",
                                    model=r.stdout.strip(), timeout=300)
                t_stage = time.monotonic() - t0
                h.stop(st)
                alloc = os.stat(r.stdout.strip()).st_blocks * 512
                shutil.rmtree(cache)
                res.setdefault((name, lo, hi), []).append((t_fetch, t_stage, received, served, int(got.group(2)),
                                                           alloc))
    size = m["file_size"]
    print(f"\nmodel {os.path.basename(a.model)}: {size} bytes, {n_layers} layers, header {m['header']['size']} bytes")
    print("| server | layers | layer bytes | + header | bytes received | served (counted) | ranges | file allocated "
          "| fetch s | MB/s | stage ready s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (name, lo, hi), runs in res.items():
        lb = sum(t["size"] for t in m["tensors"] if t["part"] == "layer" and lo <= t["layer"] <= hi)
        lb += sum(t["size"] for t in m["tensors"] if t["part"] == "other")
        tf = statistics.median(x[0] for x in runs)
        ts = statistics.median(x[1] for x in runs)
        rec = runs[-1][2]
        served = runs[-1][3]
        print(f"| {name} | {lo}-{hi} | {lb} | {lb + m['header']['size']} | {rec} | "
              f"{served if served is not None else '-'} | {runs[-1][4]} | {runs[-1][5]} | {tf:.3f} | "
              f"{rec / tf / 1e6:.0f} | {ts:.2f} |", flush=True)
    for srv, _, _ in servers.values():
        if srv:
            srv.close()
    shutil.rmtree(d)


h.run(body)
