#!/usr/bin/env python3
"""`swisd volunteer` fetches its layers by URL (issue 13), with real processes
and a real HTTP server on loopback that counts the bytes it sends
(tests/shard_server.py): the GGUF on one server, the signed manifest on
another, so that the GGUF server's count is the shard download alone.

a) a swarm with layers 0-1 and 4-4 of stories260K (5 layers) and a gateway;
   a volunteer with an empty cache, no --model, and a bootstrap file naming
   the broker and the model's manifest URL and signer: it chooses 2-3, the
   GGUF server sends the header and those layers' tensors only (every range
   lies in them, bytes within 5% of their size plus the header), the cache
   holds a sparse file whose header and layer 2-3 tensors hash as the
   manifest says, and the swarm reproduces the reference texts
   (tests/data/stories260K_greedy.tsv) through the volunteer's stage;
b) the same with a fresh cache while the server flips one byte of a layer-2
   tensor once and cuts a layer-3 tensor midway once: the volunteer rejects
   the corrupt range and fetches it again, resumes the cut one, starts its
   stage only after that (the file's tensors hash right: the bad byte was
   never in it), and the texts are still exact;
c) a manifest signed by another key than the pinned one: the volunteer
   refuses with a clear error and exits non-zero, downloading no byte of the
   GGUF and creating no cache;
d) the swarm's needs change: a volunteer (--recheck-s 1, --max-mem 600K:
   room for two layers) serves 2-3 of the swarm lacking them; a static stage
   for 2-3 joins and the only host of 4-4 is killed: the volunteer fetches
   layer 4's tensors only (counted), starts a stage on 4-4, drains the old
   one (exit 0), frees layers 2-3 from its cache (their bytes read as zeros,
   layer 4's hash right), and the swarm reproduces the reference texts;
e) a new release: the operator publishes version 2 (stories260K quantized
   to q8_0, another header checksum) at the same manifest URL: the volunteer
   (still serving 4-4 of version 1) moves: fetches the layers it takes of
   version 2 from the new file only, starts a stage on them, drains the old
   one (exit 0); a gateway on the q8_0 file then gives the text of
   `swisd run` on the whole q8_0 file, through the volunteer's new stage;
f) which model: a bootstrap list naming two models (the f32 file, which a
   stage on another broker already holds whole, then the q8_0 file, which no
   stage holds): a volunteer with an empty cache reads both manifests, asks
   the directory about each, serves the q8_0 one (every layer of it lacks a
   host) and downloads from its file only.
usage: test_volunteer_fetch.py   (binaries from $SWISD_BUILD)
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Bins, Harness, generate, greedy_refs, key_args, model_path, node_key,  # noqa: E402
                     run_local, start_broker, start_gateway, start_stage, wait_servable)
from shard_server import ShardServer  # noqa: E402

bins = Bins()
WAIT = 60.0  # deadline of one event; never reached when all is well


def sha(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return hashlib.sha256(f.read(n)).hexdigest()


def volunteer_argv(h, name, boot, cache):
    return [bins.swisd, "volunteer", boot, "--cache", cache, "--max-threads", "1", "--nice", "0",
            "--heartbeat-ms", "200", "--pause-load", "0"] + key_args(h, bins, name)


def body(h):
    check = h.check
    d = h.logdir
    rows = greedy_refs()
    model = os.path.join(d, "stories260K.gguf")
    shutil.copy(model_path(), model)
    gguf_srv = ShardServer({"/stories260K.gguf": model})
    man = os.path.join(d, "manifest.json")
    man_srv = ShardServer({"/manifest.json": man})
    op_key = node_key(h, bins, "operator")
    r = subprocess.run([bins.swisd, "manifest", model, "--url", gguf_srv.url("/stories260K.gguf"), "--key", op_key,
                        "-o", man], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, f"swisd manifest writes the manifest ({r.stderr.strip()[-200:]})")
    signer = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("signer:")][0]
    m = json.load(open(man))
    hdr = m["header"]["size"]

    _, ep = start_broker(h, bins, "broker")
    start_stage(h, bins, "stage01", ep, "0-1")
    start_stage(h, bins, "stage44", ep, "4-4")
    gw, rpc, _ = start_gateway(h, bins, "gateway", ep)
    boot = os.path.join(d, "bootstrap.json")
    with open(boot, "w") as f:
        json.dump({"brokers": [{"endpoint": ep, "region": "default"}],
                   "models": [{"id": "stories260K", "manifest": man_srv.url("/manifest.json"), "signer": signer}]}, f)

    mine = [t for t in m["tensors"] if t["part"] == "layer" and 2 <= t["layer"] <= 3]
    want = hdr + sum(t["size"] for t in mine)
    allowed = [(0, hdr - 1)] + [(t["offset"], t["offset"] + t["size"] - 1) for t in mine]

    def served_by_volunteer(vol, what):
        check(wait_servable(bins, rpc, WAIT), f"{what}) the swarm became servable with the volunteer")
        mark = gw.mark()
        for prompt, ref in rows:
            rc, out, err = generate(bins, rpc, prompt, 100)
            check(rc == 0 and out.strip() == ref.strip(),
                  f"{what}) {prompt!r} gives the reference text (rc {rc})\n  got  {out!r}\n  want {ref!r}\n"
                  f"  {err[-300:]}")
        vol_id = [ln for _, ln in vol.lines if ln.startswith("swisd-stage: ")][0].split()[1]
        done = [ln for _, ln in gw.lines[mark:] if "done" in ln and "via" in ln]
        check(any(vol_id[:8] in ln for ln in done), f"{what}) the generations went through the volunteer's stage")

    def sparse_ok(vol, cache, what):
        fetched = [ln.strip() for _, ln in vol.lines if "swisd volunteer: fetched layers" in ln]
        path = fetched[0].rsplit("(", 1)[1].rstrip(")") if fetched else ""
        check(path.startswith(cache) and os.path.getsize(path) == m["file_size"],
              f"{what}) the volunteer's shard is a file of the model's size in its cache ({path})")
        check(sha(path, 0, hdr) == m["header"]["sha256"] and
              all(sha(path, t["offset"], t["size"]) == t["sha256"] for t in mine),
              f"{what}) the cached header and layer 2-3 tensors are the manifest's, byte for byte")
        return fetched[0] if fetched else ""

    # a) an empty cache joins the swarm that lacks 2-3
    cache = os.path.join(d, "cache-a")
    gguf_srv.reset()
    vol, rest = h.start("volunteer", volunteer_argv(h, "volunteer", boot, cache),
                        ready="swisd volunteer: serving layers ", timeout=WAIT)
    check(vol.wait_line("swisd-stage: ", WAIT) is not None, "a) the volunteer's stage came up")
    check(rest.startswith("2-3 of stories260K"), f"a) the volunteer chose {rest.split()[0]!r}, not the missing 2-3")
    check(want <= gguf_srv.bytes_sent <= want * 1.05,
          f"a) bytes served {gguf_srv.bytes_sent} within 5% of header + layers 2-3 ({want})")
    outside = [r for r in gguf_srv.ranges if not any(a <= r[1] and r[2] <= b for a, b in allowed)]
    check(gguf_srv.ranges and not outside, f"a) no range outside the header and layers 2-3 was asked for "
                                           f"({outside[:3]})")
    line = sparse_ok(vol, cache, "a")
    check(" 0 hash failures" in line, f"a) no hash failure on a clean server ({line})")
    served_by_volunteer(vol, "a")
    rc = vol.terminate(WAIT)
    check(rc == 0 and vol.has("the stage exited with status 0 after draining"),
          f"a) SIGTERM drains the volunteer's stage and it exits 0 ({rc})")

    # b) one byte corrupted once, one range cut once: the stage starts on verified data only
    cache = os.path.join(d, "cache-b")
    t2 = max((t for t in mine if t["layer"] == 2), key=lambda t: t["size"])
    t3 = max((t for t in mine if t["layer"] == 3), key=lambda t: t["size"])
    gguf_srv.reset()
    gguf_srv.corrupt_at = t2["offset"] + t2["size"] // 2
    gguf_srv.cut_at = t3["offset"] + t3["size"] // 3
    vol, rest = h.start("volunteer-b", volunteer_argv(h, "volunteer-b", boot, cache),
                        ready="swisd volunteer: serving layers ", timeout=WAIT)
    check(vol.wait_line("swisd-stage: ", WAIT) is not None, "b) the volunteer's stage came up")
    check(rest.startswith("2-3 of stories260K"), f"b) the volunteer chose {rest.split()[0]!r}")
    line = sparse_ok(vol, cache, "b")
    check(gguf_srv.corrupted == 1 and " 1 hash failures" in line,
          f"b) the corrupt range was served once and rejected ({gguf_srv.corrupted}; {line})")
    check(gguf_srv.cuts == 1 and " 1 resumes" in line and any(r[1] == t3["offset"] + t3["size"] // 3
                                                             for r in gguf_srv.ranges),
          f"b) the cut range was resumed from the cut byte ({gguf_srv.cuts}; {line})")
    served_by_volunteer(vol, "b")
    h.stop(vol)

    # c) a manifest signed by a key other than the pinned one
    stranger = os.path.join(d, "stranger.json")
    man_srv.files["/stranger.json"] = stranger
    r = subprocess.run([bins.swisd, "manifest", model, "--url", gguf_srv.url("/stories260K.gguf"), "--key",
                        node_key(h, bins, "stranger"), "-o", stranger], capture_output=True, text=True, timeout=120)
    boot_c = os.path.join(d, "bootstrap-c.json")
    with open(boot_c, "w") as f:
        json.dump({"brokers": [{"endpoint": ep}],
                   "models": [{"id": "stories260K", "manifest": man_srv.url("/stranger.json"), "signer": signer}]}, f)
    cache = os.path.join(d, "cache-c")
    gguf_srv.reset()
    r = subprocess.run(volunteer_argv(h, "volunteer-c", boot_c, cache), capture_output=True, text=True, timeout=WAIT)
    check(r.returncode == 1 and "not by the pinned key" in r.stderr and "stranger.json" in r.stderr,
          f"c) a manifest from an unpinned signer: refused, exit 1 ({r.returncode}, {r.stderr.strip()[-200:]})")
    check(gguf_srv.bytes_sent == 0 and not os.path.exists(cache),
          f"c) and nothing was downloaded or cached ({gguf_srv.bytes_sent} bytes)")

    # d) needs change while serving
    h.stop_all()
    _, ep = start_broker(h, bins, "broker-d")
    start_stage(h, bins, "stage01-d", ep, "0-1")
    s44, _ = start_stage(h, bins, "stage44-d", ep, "4-4")
    gw, rpc, _ = start_gateway(h, bins, "gateway-d", ep)
    boot_d = os.path.join(d, "bootstrap-d.json")
    with open(boot_d, "w") as f:
        json.dump({"brokers": [{"endpoint": ep}],
                   "models": [{"id": "stories260K", "manifest": man_srv.url("/manifest.json"), "signer": signer}]}, f)
    cache = os.path.join(d, "cache-d")
    vol, rest = h.start("volunteer-d", volunteer_argv(h, "volunteer-d", boot_d, cache) +
                        ["--recheck-s", "1", "--max-mem", "600K"], ready="swisd volunteer: serving layers ",
                        timeout=WAIT)
    check(rest.startswith("2-3 of stories260K"), f"d) the volunteer first took the missing 2-3 ({rest.split()[0]!r})")
    check(vol.wait_line("swisd-stage: ", WAIT) is not None, "d) its first stage came up")
    start_stage(h, bins, "stage23-d", ep, "2-3")
    mark = vol.mark()
    gguf_srv.reset()
    s44.signal(signal.SIGKILL)
    moved = vol.wait_line("swisd volunteer: serving layers ", WAIT, "out", mark)
    check(moved is not None and moved.startswith("4-4 of stories260K"),
          f"d) with 2-3 held by another and 4-4 without a host, it moved to 4-4 ({moved!r})")
    l4 = [t for t in m["tensors"] if t["part"] == "layer" and t["layer"] == 4]
    want4 = sum(t["size"] for t in l4)
    check(gguf_srv.bytes_sent == want4 and all(any(t["offset"] == r[1] for t in l4) for r in gguf_srv.ranges),
          f"d) it downloaded layer 4's tensors only ({gguf_srv.bytes_sent} bytes served, {want4} wanted)")
    check(vol.wait_line("the stage on layers 2-3 exited with status 0 after draining", WAIT, "out", mark) is not None,
          "d) the old stage drained and exited 0")
    check(vol.wait_line("bytes of layers outside 4-4 from the cache", WAIT, "out", mark) is not None,
          "d) the volunteer trimmed the old layers")
    path = [ln.strip() for _, ln in vol.lines if "fetched layers 4-4" in ln][0].rsplit("(", 1)[1].rstrip(")")
    with open(path, "rb") as f:
        holes = all(not any(f.read(t["size"])) for t in mine if f.seek(t["offset"]) is not None)
    check(holes and all(sha(path, t["offset"], t["size"]) == t["sha256"] for t in l4),
          "d) layers 2-3 are holes in the cache now, layer 4's tensors hash right")
    served_by_volunteer(vol, "d")

    # e) version 2 at the same manifest URL
    q8 = os.path.join(d, "q8.gguf")
    subprocess.run([bins.swisd, "quantize", model, q8, "q8_0"], check=True, capture_output=True, timeout=120)
    gguf_srv.files["/q8.gguf"] = q8
    man2 = os.path.join(d, "manifest-v2.json")
    r = subprocess.run([bins.swisd, "manifest", q8, "--url", gguf_srv.url("/q8.gguf"), "--key", op_key,
                        "--version", "2", "-o", man2], capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, f"e) the manifest of version 2 ({r.stderr.strip()[-200:]})")
    gguf_srv.reset()
    mark = vol.mark()
    os.replace(man2, man)  # published: the same URL now gives version 2
    moving = vol.wait_line("swisd volunteer: moving to version 2 of stories260K: layers ", WAIT, "out", mark)
    check(moving is not None, "e) the volunteer saw version 2 and moved")
    new = vol.wait_line("swisd volunteer: serving layers ", WAIT, "out", mark)
    check(new is not None and moving is not None and new.startswith(moving.split()[0] + " of stories260K"),
          f"e) it serves the layers it took of version 2 ({new!r})")
    check(vol.wait_line("the stage on layers 4-4 exited with status 0 after draining", WAIT, "out", mark) is not None,
          "e) the stage on version 1 drained and exited 0")
    check(gguf_srv.ranges and all(r[0] == "/q8.gguf" for r in gguf_srv.ranges),
          f"e) only the new file was downloaded ({sorted(set(r[0] for r in gguf_srv.ranges))})")
    if new is not None and new.startswith("0-4 "):
        _, rpc2, _ = start_gateway(h, bins, "gateway-e", ep, model=q8)
        check(wait_servable(bins, rpc2, WAIT), "e) a gateway on version 2 finds a route")
        for prompt, _ in rows[:2]:
            rc, out, err = generate(bins, rpc2, prompt, 100)
            want = run_local(bins, prompt, 100, model=q8)
            check(rc == 0 and out == want, f"e) {prompt!r} through the volunteer's version-2 stage equals swisd run "
                                           f"on the q8_0 file (rc {rc})\n  got  {out!r}\n  want {want!r}")
    else:
        check(False, f"e) with room for 2 f32 layers it should take all 5 q8_0 layers ({new!r})")

    # f) two models in the bootstrap list: the one the swarm lacks is served
    _, ep_f = start_broker(h, bins, "broker-f")
    start_stage(h, bins, "stage-f-all", ep_f, "0-4", model=model)
    mans = {}
    for name, path, url in (("a", model, "/stories260K.gguf"), ("b", q8, "/q8.gguf")):
        mans[name] = os.path.join(d, f"manifest-{name}.json")
        man_srv.files[f"/{name}.json"] = mans[name]
        r = subprocess.run([bins.swisd, "manifest", path, "--url", gguf_srv.url(url), "--key", op_key, "-o",
                            mans[name]], capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, f"f) manifest {name} ({r.stderr.strip()[-200:]})")
    boot_f = os.path.join(d, "bootstrap-f.json")
    with open(boot_f, "w") as f:
        json.dump({"brokers": [{"endpoint": ep_f, "region": "default"}],
                   "models": [{"id": "stories260K", "manifest": man_srv.url("/a.json"), "signer": signer},
                              {"id": "stories260K", "manifest": man_srv.url("/b.json"), "signer": signer}]}, f)
    gguf_srv.reset()
    vol_f, rest = h.start("volunteer-f", volunteer_argv(h, "volunteer-f", boot_f, os.path.join(d, "cache-f")),
                          ready="swisd volunteer: serving layers ", timeout=WAIT)
    q8_sum = json.load(open(mans["b"]))["checksum"]
    check(vol_f.has("the one the swarm needs most") and vol_f.has(f"({q8_sum}): would take layers 0-4, 5 of them "
                                                                   "without a host"),
          "f) the volunteer weighed both models and chose the one whose layers lack a host")
    check(rest.startswith("0-4 of stories260K"), f"f) it serves all of the q8_0 model ({rest!r})")
    check(gguf_srv.ranges and all(r[0] == "/q8.gguf" for r in gguf_srv.ranges),
          f"f) only the q8_0 file was downloaded ({sorted(set(r[0] for r in gguf_srv.ranges))})")
    rc = vol_f.terminate(WAIT)
    check(rc == 0, f"f) SIGTERM: the volunteer drains and exits 0 ({rc})")
    gguf_srv.close()
    man_srv.close()


Harness("volunteer_fetch", verbose=True).run(body)
