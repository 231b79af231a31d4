#!/usr/bin/env python3
"""Model shards by URL (issue 13), with real processes and a real HTTP server
on loopback (tests/shard_server.py, which counts the bytes it sends):

1. `swisd manifest` + `swisd fetch --layers 1-2` into an empty cache: the
   server sends the header and those layers' tensors only (every range lies
   in them; bytes within 5% of their size plus the header), the sparse file
   holds them with their original bytes and zeros elsewhere; a second fetch
   downloads nothing;
2. a real swarm: a stage on the sparse file (layers 1-2) between stages on
   the full file gives the independent reference text; a stage asked for
   layers the sparse file lacks (holes) refuses to start;
3. the server flips one byte of a range once: the fetch rejects it (hash),
   fetches it again, and the file's tensors hash right;
4. the server cuts a download midway once: the fetch resumes with a Range
   starting at the cut (bytes sent = what was needed, nothing twice);
5. a manifest altered after signing, one signed by an unpinned key, and one
   loaded with no pinned key are refused with a clear error;
6. with --max-disk, fetching a third model evicts the least recently used
   other model, keeping the one used since;
7. a server that accepts and never answers: the fetch gives up after its
   time-out with an error naming the tensor;
8. the gateway with --serve-model serves the manifest and the GGUF with byte
   ranges (206 and Content-Range, 416, suffix and open ranges, HEAD, 404),
   and `swisd fetch` from it gives a file whose tensors hash right.
usage: test_shards.py   (binaries from $SWISD_BUILD)
"""
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Bins, Harness, free_port, generate, greedy_refs, model_path, node_key,  # noqa: E402
                     start_broker, start_gateway, start_stage, wait_servable)
from shard_server import ShardServer  # noqa: E402

bins = Bins()
h = Harness("shards", verbose=True)


def swisd(*args, timeout=120):
    r = subprocess.run([bins.swisd] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def sha(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return hashlib.sha256(f.read(n)).hexdigest()


def body(_h):
    check = h.check
    d = h.logdir
    model = os.path.join(d, "stories260K.gguf")
    shutil.copy(model_path(), model)
    srv = ShardServer({"/stories260K.gguf": model, "/manifest.json": os.path.join(d, "manifest.json")})
    op_key = node_key(h, bins, "operator")
    man = os.path.join(d, "manifest.json")
    rc, out, err = swisd("manifest", model, "--url", srv.url("/stories260K.gguf"), "--key", op_key, "-o", man)
    check(rc == 0, f"swisd manifest writes the manifest ({err.strip()[-200:]})")
    signer = [ln.split()[1] for ln in out.splitlines() if ln.startswith("signer:")][0]
    rc, out2, _ = swisd("manifest", "--show-signer", "--key", op_key)
    check(rc == 0 and out2.split()[1] == signer, "--show-signer prints the key the manifest is signed with")
    m = json.load(open(man))
    size = os.path.getsize(model)
    check(m["file_size"] == size and m["model_id"] == "stories260K" and m["n_layers"] == 5,
          f"the manifest names the file, its size, model id and layers ({m['model_id']}, {m['n_layers']})")
    # the hashes are the file's (computed here independently)
    check(m["header"]["sha256"] == sha(model, 0, m["header"]["size"]) and
          all(t["sha256"] == sha(model, t["offset"], t["size"]) for t in m["tensors"]),
          "every SHA-256 in the manifest is the one of those bytes of the file")

    # 1) layers 1-2 into an empty cache
    cache = os.path.join(d, "cache")
    srv.reset()
    rc, out, err = swisd("fetch", srv.url("/manifest.json"), "--layers", "1-2", "--cache", cache,
                         "--manifest-key", signer)
    check(rc == 0, f"1) swisd fetch succeeds ({err.strip()[-300:]})")
    sparse = out.strip()
    mine = [t for t in m["tensors"] if t["part"] == "layer" and 1 <= t["layer"] <= 2]
    want = m["header"]["size"] + sum(t["size"] for t in mine)
    check(want <= srv.bytes_sent <= want * 1.05,
          f"1) bytes served {srv.bytes_sent} within 5% of header + layers 1-2 ({want})")
    allowed = [(0, m["header"]["size"] - 1)] + [(t["offset"], t["offset"] + t["size"] - 1) for t in mine]
    outside = [r for r in srv.ranges if r[0] == "/stories260K.gguf" and
               not any(a <= r[1] and r[2] <= b for a, b in allowed)]
    check(not outside, f"1) no range outside the header and layers 1-2 was asked for ({outside[:3]})")
    check(os.path.basename(sparse) == "stories260K.gguf" and os.path.getsize(sparse) == size,
          f"1) the sparse file keeps the file's name and size ({sparse})")
    check(sha(sparse, 0, m["header"]["size"]) == m["header"]["sha256"] and
          all(sha(sparse, t["offset"], t["size"]) == t["sha256"] for t in mine),
          "1) the sparse file holds the header and layers 1-2 byte for byte")
    others = [t for t in m["tensors"] if t not in mine and t["part"] != "other"]
    with open(sparse, "rb") as f:
        zero = all(not any(f.read(t["size"])) for t in others if f.seek(t["offset"]) is not None)
    check(zero, "1) the other tensors are holes (zeros)")
    check(os.stat(sparse).st_blocks * 512 < size * 0.6,
          f"1) the file is sparse ({os.stat(sparse).st_blocks * 512} bytes allocated of {size})")
    srv.reset()
    rc, out, err = swisd("fetch", man, "--layers", "1-2", "--cache", cache, "--manifest-key", signer)
    check(rc == 0 and out.strip() == sparse and srv.bytes_sent == 0,
          f"1) fetching the same layers again downloads nothing ({srv.bytes_sent} bytes)")

    # 2) a stage on the sparse file in a real swarm
    rows = greedy_refs()
    b, ep = start_broker(h, bins, "broker")
    start_stage(h, bins, "full-0", ep, "0-0")
    start_stage(h, bins, "sparse-1-2", ep, "1-2", model=sparse)
    start_stage(h, bins, "full-3-4", ep, "3-4")
    gw, rpc, _ = start_gateway(h, bins, "gateway", ep)
    check(wait_servable(bins, rpc, 30), "2) the swarm with the sparse stage is servable")
    for prompt, ref in rows[:2]:
        rc, text, err = generate(bins, rpc, prompt, 100)
        check(rc == 0 and text.strip() == ref.strip(),
              f"2) through the sparse stage, {prompt!r} gives the reference text ({rc}, {err.strip()[-200:]})")
    r = subprocess.run([bins.stage, "--broker", ep, "--model", sparse, "--layers", "2-3", "--key",
                        node_key(h, bins, "holes")], capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and "blk.3." in r.stderr and "not fetched" in r.stderr,
          f"2) a stage asked for layers the sparse file lacks refuses to start ({r.stderr.strip()[-200:]})")
    h.stop_all()
    before = os.stat(sparse).st_blocks * 512
    rc, out, err = swisd("fetch", man, "--layers", "3-3", "--cache", cache, "--manifest-key", signer, "--trim")
    after = os.stat(sparse).st_blocks * 512
    with open(sparse, "rb") as f:
        gone = all(not any(f.read(t["size"])) for t in mine if f.seek(t["offset"]) is not None)
    l3 = [t for t in m["tensors"] if t["layer"] == 3]
    check(rc == 0 and out.strip() == sparse and gone and all(sha(sparse, t["offset"], t["size"]) == t["sha256"]
                                                             for t in l3),
          f"2) after moving to layer 3 with --trim, layers 1-2 are holes and layer 3 is there ({err.strip()[-160:]})")
    check(after < before, f"2) --trim freed disk ({before} -> {after} bytes allocated)")
    r = subprocess.run([bins.stage, "--broker", ep, "--model", sparse, "--layers", "1-2", "--key",
                        node_key(h, bins, "holes")], capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and "not fetched" in r.stderr,
          f"2) and a stage can no longer load layers 1-2 from it ({r.stderr.strip()[-160:]})")

    # 3) one byte of a range corrupted once
    cache3 = os.path.join(d, "cache3")
    target = max((t for t in m["tensors"] if t["layer"] == 3), key=lambda t: t["size"])
    srv.reset()
    srv.corrupt_at = target["offset"] + target["size"] // 2
    rc, out, err = swisd("fetch", man, "--layers", "3-3", "--cache", cache3, "--manifest-key", signer)
    asked = [r for r in srv.ranges if r[1] == target["offset"]]
    check(srv.corrupted == 1 and rc == 0 and "1 hash failures" in err and len(asked) == 2,
          f"3) the corrupt range is rejected and fetched again ({srv.corrupted}, {len(asked)} requests, "
          f"{err.strip()[-200:]})")
    p3 = out.strip()
    check(all(sha(p3, t["offset"], t["size"]) == t["sha256"] for t in m["tensors"] if t["layer"] == 3),
          "3) the file's layer-3 tensors hash right (the corrupt byte is not in it)")

    # 4) a download cut midway once
    cache4 = os.path.join(d, "cache4")
    target = max((t for t in m["tensors"] if t["layer"] == 4), key=lambda t: t["size"])
    cut = target["offset"] + target["size"] // 3
    srv.reset()
    srv.cut_at = cut
    rc, out, err = swisd("fetch", man, "--layers", "4-4", "--cache", cache4, "--manifest-key", signer)
    need4 = m["header"]["size"] + sum(t["size"] for t in m["tensors"] if t["layer"] == 4)
    check(srv.cuts == 1 and rc == 0 and any(r[1] == cut for r in srv.ranges),
          f"4) after the cut, the next request starts at the cut byte {cut} ({err.strip()[-200:]})")
    check(srv.bytes_sent == need4, f"4) no byte was sent twice ({srv.bytes_sent} sent, {need4} needed)")
    p4 = out.strip()
    check(all(sha(p4, t["offset"], t["size"]) == t["sha256"] for t in m["tensors"] if t["layer"] == 4),
          "4) the resumed tensors hash right")

    # 4b) a fetch killed midway (the server pauses inside a tensor), run again: resumes from the partial download it left
    cache4b = os.path.join(d, "cache4b")
    emb = [t for t in m["tensors"] if t["part"] == "embed"][0]
    argv = [bins.swisd, "fetch", man, "--layers", "none", "--embed", "--cache", cache4b, "--manifest-key", signer]
    srv.stall_at, srv.stall_s = emb["offset"] + 50000, 20.0
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    part = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and part is None:
        for r, _, fs in os.walk(cache4b):
            for f in fs:
                if f.endswith(f".part.{emb['offset']}") and os.path.getsize(os.path.join(r, f)) >= 50000:
                    part = os.path.join(r, f)
        time.sleep(0.05)
    p.kill()
    p.wait()
    have = os.path.getsize(part) if part else 0
    check(part is not None and have == 50000, f"4b) the killed fetch left a partial download ({have} bytes)")
    srv.reset()
    rc, out, err = subprocess.run(argv, capture_output=True, text=True, timeout=60).returncode, None, None
    starts = [r[1] for r in srv.ranges if r[2] == emb["offset"] + emb["size"] - 1]
    check(rc == 0 and starts == [emb["offset"] + have],
          f"4b) the rerun asks only for the bytes after the {have} it had ({starts}, want {emb['offset'] + have})")
    p4b = os.path.join(cache4b, os.listdir(cache4b)[0], "stories260K.gguf")
    check(sha(p4b, emb["offset"], emb["size"]) == emb["sha256"] and part and not os.path.exists(part),
          "4b) the resumed tensor hashes right and its partial file is gone")

    # 4c) a server that ignores Range (200 with the whole file): a clear error, no byte of it written
    srv.ignore_range = True
    rc, _, err = swisd("fetch", man, "--layers", "0-0", "--cache", os.path.join(d, "cache4c"), "--manifest-key",
                       signer, "--timeout", "5")
    srv.ignore_range = False
    check(rc != 0 and "HTTP status 200 (want 206" in err,
          f"4c) a server without range support: refused with the status ({err.strip()[-160:]})")

    # 5) signatures
    bad = dict(m)
    bad["tensors"] = [dict(t) for t in m["tensors"]]
    bad["tensors"][3]["sha256"] = sha(model, 0, 16)
    badp = os.path.join(d, "altered.json")
    json.dump(bad, open(badp, "w"))
    rc, _, err = swisd("fetch", badp, "--layers", "0-0", "--cache", os.path.join(d, "c5"), "--manifest-key", signer)
    check(rc != 0 and "signature does not verify" in err, f"5) an altered manifest is refused ({err.strip()[-200:]})")
    other_key = node_key(h, bins, "stranger")
    mo = os.path.join(d, "stranger.json")
    swisd("manifest", model, "--url", srv.url("/stories260K.gguf"), "--key", other_key, "-o", mo)
    rc, _, err = swisd("fetch", mo, "--layers", "0-0", "--cache", os.path.join(d, "c5"), "--manifest-key", signer)
    check(rc != 0 and "not by the pinned key" in err, f"5) a manifest from an unpinned key is refused ({err[-200:]})")
    rc, _, err = swisd("fetch", man, "--layers", "0-0", "--cache", os.path.join(d, "c5"))
    check(rc != 0 and "no pinned manifest key" in err, f"5) without a pinned key nothing is trusted ({err[-200:]})")
    check(not os.path.exists(os.path.join(d, "c5")), "5) a refused manifest writes nothing")

    # 6) cache cap: least recently used model evicted
    q8 = os.path.join(d, "q8.gguf")
    q4 = os.path.join(d, "q4.gguf")
    subprocess.run([bins.swisd, "quantize", model, q8, "q8_0"], check=True, capture_output=True)
    subprocess.run([bins.swisd, "quantize", model, q4, "q4_0"], check=True, capture_output=True)
    srv.files["/q8.gguf"] = q8
    srv.files["/q4.gguf"] = q4
    mans = {}
    for name, path in [("f32", model), ("q8", q8), ("q4", q4)]:
        mans[name] = os.path.join(d, f"m-{name}.json")
        rc, _, err = swisd("manifest", path, "--url", srv.url("/" + os.path.basename(path)), "--key", op_key,
                           "-o", mans[name])
        check(rc == 0, f"6) manifest of {name} ({err[-200:]})")
    cache6 = os.path.join(d, "cache6")
    cap = size + os.path.getsize(q8) + 64 * 1024  # room for f32 + q8, not for a third
    paths = {}
    for name in ["f32", "q8", "f32", "q4"]:  # f32 is used again after q8: q8 is the least recent
        time.sleep(0.01)
        rc, out, err = swisd("fetch", mans[name], "--layers", "0-4", "--embed", "--head", "--cache", cache6,
                             "--manifest-key", signer, "--max-disk", cap)
        check(rc == 0, f"6) fetch {name} under the cap ({err.strip()[-200:]})")
        paths[name] = out.strip()
    check(os.path.exists(paths["f32"]) and os.path.exists(paths["q4"]) and not os.path.exists(paths["q8"]),
          "6) the third model evicted the least recently used one (q8), not f32 used since")
    used = sum(os.stat(os.path.join(r, f)).st_blocks * 512 for r, _, fs in os.walk(cache6) for f in fs)
    check(used <= cap, f"6) the cache holds {used} bytes <= cap {cap}")
    rc, _, err = swisd("fetch", mans["q8"], "--layers", "0-4", "--cache", cache6, "--manifest-key", signer,
                       "--max-disk", 100000)
    check(rc != 0 and "exceed the cap" in err and "nothing was evicted" in err,
          f"6) a cap too small for the layers is an error ({err.strip()[-200:]})")
    check(os.path.exists(paths["f32"]) and os.path.exists(paths["q4"]),
          "6) and a fetch that cannot fit evicts nothing")
    srv.close()

    # 7) a server that never answers: time-out
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    mt = os.path.join(d, "m-silent.json")
    swisd("manifest", model, "--url", f"http://127.0.0.1:{silent.getsockname()[1]}/x.gguf", "--key", op_key,
          "-o", mt)
    t0 = time.monotonic()
    rc, _, err = swisd("fetch", mt, "--layers", "0-0", "--cache", os.path.join(d, "c7"), "--manifest-key", signer,
                       "--timeout", "1", timeout=120)
    check(rc != 0 and "(header)" in err and time.monotonic() - t0 < 60,
          f"7) a silent server: error after the time-outs and retries ({time.monotonic() - t0:.1f} s, "
          f"{err.strip()[-200:]})")
    silent.close()

    # 8) the gateway serves the model
    port = free_port()
    gman = os.path.join(d, "gw-manifest.json")  # beside the GGUF
    rc, _, err = swisd("manifest", model, "--url", f"http://127.0.0.1:{port}/models/stories260K.gguf",
                       "--key", op_key, "-o", gman)
    b, ep = start_broker(h, bins, "broker8")
    gw, _, _ = start_gateway(h, bins, "gateway8", ep, "--http", f"127.0.0.1:{port}", "--serve-model", gman)
    check(gw.wait_line("swisd-gateway: http on port", 10) is not None, "8) the gateway serves HTTP")
    data = open(model, "rb").read()

    def get(path, rng=None, method="GET"):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     headers={"Range": rng} if rng else {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    st, hd, body_ = get("/models/stories260K.gguf", method="HEAD")
    check(st == 200 and int(hd["Content-Length"]) == size and body_ == b"", f"8) HEAD: 200, Content-Length {size}")
    st, hd, body_ = get("/models/stories260K.gguf", "bytes=100-199")
    check(st == 206 and body_ == data[100:200] and hd.get("Content-Range") == f"bytes 100-199/{size}",
          f"8) bytes=100-199: 206, those bytes, Content-Range ({st}, {hd.get('Content-Range')})")
    off = m["tensors"][7]["offset"]
    st, hd, body_ = get("/models/stories260K.gguf", f"bytes={off}-{off + 99999}")
    check(st == 206 and body_ == data[off:off + 100000], "8) a 100000-byte range in the data gives those bytes")
    st, _, body_ = get("/models/stories260K.gguf", "bytes=-10")
    check(st == 206 and body_ == data[-10:], "8) bytes=-10: the last 10 bytes")
    st, _, body_ = get("/models/stories260K.gguf", f"bytes={size - 5}-")
    check(st == 206 and body_ == data[-5:], "8) an open range runs to the end")
    st, _, body_ = get("/models/stories260K.gguf", f"bytes={size - 5}-{size + 1000}")
    check(st == 206 and body_ == data[-5:], "8) a range past the end is cut to the file")
    st, hd, _ = get("/models/stories260K.gguf", f"bytes={size}-")
    check(st == 416 and hd.get("Content-Range") == f"bytes */{size}", f"8) a range past the end: 416 ({st})")
    for bad_range in ["bytes=9-3", "bytes=x-1", "bytes=-0", "bytes=99999999999999999999-"]:
        st, _, _ = get("/models/stories260K.gguf", bad_range)
        check(st == 416, f"8) {bad_range!r}: 416 ({st})")
    st, _, body_ = get("/models/stories260K.gguf", "bytes=0-1,5-6")
    check(st == 200 and body_ == data, "8) several ranges: the whole file with 200")
    st, _, body_ = get("/models/manifest.json")
    check(st == 200 and body_ == open(gman, "rb").read(), "8) /models/manifest.json is the manifest")
    st, _, _ = get("/models/other.gguf")
    check(st == 404, f"8) another file: 404 ({st})")
    rc, out, err = swisd("fetch", f"http://127.0.0.1:{port}/models/manifest.json", "--layers", "0-4", "--embed",
                         "--head", "--cache", os.path.join(d, "cache8"), "--manifest-key", signer)
    p8 = out.strip()
    check(rc == 0 and open(p8, "rb").read() == data,
          f"8) swisd fetch of every part from the gateway rebuilds the file byte for byte ({err.strip()[-200:]})")
    lone = os.path.join(d, "lone")
    os.makedirs(lone)
    shutil.copy(os.path.join(d, "m-q8.json"), lone)
    r = subprocess.run([bins.gateway, "--broker", ep, "--model", model, "--rpc", "tcp://127.0.0.1:*", "--insecure",
                        "--http", "127.0.0.1:0", "--serve-model", os.path.join(lone, "m-q8.json")],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode != 0 and "q8.gguf" in r.stderr,
          f"8) --serve-model with the GGUF missing beside the manifest is refused ({r.stderr.strip()[-200:]})")


h.run(body)
