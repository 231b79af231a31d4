#!/usr/bin/env python3
"""`swisd volunteer` joins a swarm, drains on SIGTERM, keeps its upload cap (real processes).

a) join: a broker, stages for layers 0-1 and 4-4 of stories260K (5 layers) and
   a gateway: the swarm lacks 2-3. A bootstrap file lists three brokers: one
   where nobody listens, the real one behind a swisd-link adding 100 ms each
   way, and the real one directly (last, so the order does not decide). The
   volunteer (local --model, fresh key) must pick the direct one, choose
   exactly layers 2-3, and the swarm must then reproduce the reference texts
   (tests/data/stories260K_greedy.tsv, 100 greedy tokens each).
b) SIGTERM during generations: a volunteer capped at 100 kbit/s (so that the
   generations are still running when it is told to stop) serves 2-3; two
   generations start; once both printed a token, a second host of 2-3 starts
   and the volunteer and its stage both get SIGTERM (as systemd stops a
   unit: the stage sees it twice, which must still mean a drain). Each client's text must equal the
   single-process text, the gateway must have moved sessions (its log says
   "replaying"), and the volunteer must exit 0 after its stage drained.
g) SIGTERM to the only host of 2-3 during a generation: with nowhere to move
   it, the gateway keeps the session on the draining stage, which serves it
   to its end (exact text) and then exits 0 with no session left.
c) --upload-kbps 100: the volunteer reaches its broker through a swisd-link
   that counts the bytes (its "stats": bytes up = volunteer -> broker, all of
   it: activations, heartbeats, ZMTP/CURVE framing). Under a load of four
   generations at a time (more than the cap lets through), the bytes that
   crossed the link in 20 s must be within 10% of 100 kbit/s * 20 s.
d) the bootstrap list comes over HTTP (a missing URL: exit 1, "404" said);
   the owner needs the machine: a process spinning on the CPU (other load
   ~1 core, above --pause-load 0.5 for 2 s) makes the volunteer drain its
   stage and pause (alive, no stage); SIGTERM then ends it with status 0.
e) --schedule: with hours that exclude now (two hours ahead) it says it is
   outside its schedule and starts no stage; SIGTERM ends it with status 0.
f) a new gap: stages hold 0-1, 2-3 and 4-4; a volunteer whose --max-mem fits
   two layers (600K: 3/4 for weights, 181,760 bytes per layer) joins, then
   the only host of 4-4 is killed: the volunteer's stage moves to cover it
   (its log says "rebalancing") and the swarm reproduces the references.
a-c run with --pause-load 0: the test machine is shared, and other
processes' load must not pause those volunteers.
usage: test_volunteer.py SWISD SWISD_BROKER SWISD_STAGE SWISD_GATEWAY [SWISD_LINK]
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Bins, Harness, free_port, generate, greedy_refs, key_args, model_path, run_local,  # noqa: E402
                     start_broker, start_gateway, start_generate, start_link, start_stage, wait_servable, wait_until)

bins = Bins()
bins.swisd, bins.broker, bins.stage, bins.gateway = sys.argv[1:5]
if len(sys.argv) > 5:  # else the build's (tests/repeat_under_load.sh passes four)
    bins.link = sys.argv[5]
rows = greedy_refs()
WAIT = 60.0  # deadline of one event; never reached when all is well


def volunteer_argv(h, name, bootstrap, *args):
    return [bins.swisd, "volunteer", bootstrap, "--model", model_path(), "--max-threads", "1", "--nice", "0",
            "--heartbeat-ms", "200"] + key_args(h, bins, name) + list(args)


def start_volunteer(h, name, bootstrap, *args):
    """`swisd volunteer BOOTSTRAP --model stories260K` with its own key; returns (proc, the
    rest of its "serving layers" line: "A-B of MODEL via ENDPOINT (stage pid N, ...)")."""
    argv = volunteer_argv(h, name, bootstrap, *(list(args) + (["--pause-load", "0"] if "--pause-load" not in args
                                                              else [])))
    p, rest = h.start(name, argv, ready="swisd volunteer: serving layers ", timeout=WAIT)
    h.check(p.wait_line("swisd-stage: ", WAIT) is not None, f"{name}: its stage never came up")
    return p, rest


def bootstrap_file(h, name, endpoints):
    path = os.path.join(h.logdir, name + ".json")
    with open(path, "w") as f:
        json.dump({"brokers": [{"endpoint": e, "region": "default"} for e in endpoints],
                   "models": [{"id": "stories260K"}]}, f)
    return path


def link_stats(path):
    """bytes up (client -> server) so far, from swisd-link's control socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    s.sendall(b"stats\n")
    line = s.makefile("r").readline()
    s.close()
    return int(line.split("bytes up=")[1].split()[0])


def join(h, local):
    _, ep = start_broker(h, bins, "broker")
    start_stage(h, bins, "stage01", ep, "0-1")
    start_stage(h, bins, "stage44", ep, "4-4")
    gw, rpc, _ = start_gateway(h, bins, "gateway", ep)
    key = ep.partition("#")[2]
    dead = f"tcp://127.0.0.1:{free_port()}" + ("#" + key if key else "")
    _, slow = start_link(h, "slow-link", bins, ep, "--delay", "100")
    boot = bootstrap_file(h, "bootstrap", [dead, slow, ep])
    vol, rest = start_volunteer(h, "volunteer", boot)
    h.check(rest.startswith("2-3 of "), f"the volunteer chose {rest.split()[0]!r}, not the missing 2-3")
    chosen = [line for s, line in vol.lines if "(chosen)" in line]
    h.check(len(chosen) == 1 and f"broker {ep} answered" in chosen[0],
            f"the volunteer did not choose the direct broker: {chosen}")
    h.check(vol.has(f"broker {dead} did not answer"), "the dead broker was not reported as silent")
    h.check(wait_servable(bins, rpc, WAIT), "join: the swarm never became servable with the volunteer")
    for p, want in rows:
        rc, out, err = generate(bins, rpc, p, 100)
        h.check(rc == 0 and out == local[p] and out.strip() == want.strip(),
                f"join {p!r}: text differs from the reference (rc {rc})\n  got  {out!r}\n  want {want!r}\n"
                f"  {err[-300:]}")
    done = [line for _, line in gw.lines if "done" in line and "via" in line]
    vol_id = [line for _, line in vol.lines if line.startswith("swisd-stage: ")][0].split()[1]
    h.check(any(vol_id[:8] in line for line in done), "no generation went through the volunteer's stage")
    # no session: SIGTERM drains at once and it exits 0
    rc = vol.terminate(WAIT)
    h.check(rc == 0, f"the idle volunteer exited with {rc} on SIGTERM")
    h.check(vol.has("the stage exited with status 0 after draining"), "the idle volunteer's stage did not drain")
    print(f"volunteer: join: chose 2-3 via the direct broker, {len(rows)} reference texts reproduced", flush=True)
    return ep, gw, rpc, boot


def lone_drain(h, gw, rpc, boot):
    p, n = "Mom said", 60
    local = run_local(bins, p, n, "--ignore-eos")
    vol, rest = start_volunteer(h, "volunteer-g", boot, "--upload-kbps", "100")
    h.check(rest.startswith("2-3 of "), f"g) the volunteer chose {rest.split()[0]!r}")
    h.check(wait_servable(bins, rpc, WAIT), "g) the swarm never became servable")
    mark = gw.mark()
    g = start_generate(bins, rpc, p, n, "--ignore-eos", "--timeout-ms", "120000")
    g.wait_output(len(p.encode()) + 1, WAIT)
    was_running = g.running()
    vol.signal(signal.SIGTERM)
    rc, text, err = g.finish(180)
    h.check(rc == 0 and text == local, f"g) the lone host's drain broke the generation (rc {rc})\n"
                                       f"  got  {text[-120:]!r}\n  want {local[-120:]!r}\n  {err[-300:]}")
    h.check(was_running, "g) the generation had ended before SIGTERM: the test proves less")
    h.check(gw.wait_line("replaying", 0, "any", mark) is None, "g) the gateway moved the session with nowhere to go")
    try:
        vrc = vol.p.wait(timeout=WAIT)
    except Exception:
        vrc = None
    h.check(vrc == 0 and vol.has("(0 sessions left)"), f"g) the lone host exited with {vrc}, or with sessions left")
    print("volunteer: the lone host of 2-3 served its session to the end while draining", flush=True)


def sigterm(h, ep, gw, rpc, boot):
    prompts = ["Once upon a time", "Lily and Tom"]
    n = 150
    local = {p: run_local(bins, p, n, "--ignore-eos") for p in prompts}
    vol, rest = start_volunteer(h, "volunteer-b", boot, "--upload-kbps", "100")
    h.check(rest.startswith("2-3 of "), f"b) the volunteer chose {rest.split()[0]!r}")
    h.check(wait_servable(bins, rpc, WAIT), "b) the swarm never became servable")
    mark = gw.mark()
    gens = {p: start_generate(bins, rpc, p, n, "--ignore-eos", "--timeout-ms", "120000") for p in prompts}
    for p, g in gens.items():
        g.wait_output(len(p.encode()) + 1, WAIT)
    running = [p for p, g in gens.items() if g.running()]
    start_stage(h, bins, "stage23-backup", ep, "2-3")
    # as systemd stops a unit: SIGTERM to every process of it, the volunteer and its stage (which then
    # has it twice, from systemd and from the volunteer: one request, still a drain)
    stage_pid = int(rest.split("(stage pid ")[1].split(",")[0])
    vol.signal(signal.SIGTERM)
    os.kill(stage_pid, signal.SIGTERM)
    for p, g in gens.items():
        rc, text, err = g.finish(180)
        h.check(rc == 0 and text == local[p], f"b) {p!r}: text differs after the drain (rc {rc})\n"
                                              f"  got  {text[-120:]!r}\n  want {local[p][-120:]!r}\n  {err[-300:]}")
    h.check(len(running) == len(prompts), f"b) only {running} were running at SIGTERM: the test proves less")
    h.check(gw.wait_line("replaying", 0, "any", mark) is not None, "b) the gateway never moved a session")
    try:
        rc = vol.p.wait(timeout=WAIT)
    except Exception:
        rc = None
    h.check(rc == 0, f"b) the volunteer exited with {rc}")
    h.check(vol.has("stage: draining"), "b) the stage never announced its drain")
    h.check(gw.has("drains: no new session through it"), "b) the gateway never saw the stage draining")
    h.check(vol.has("(0 sessions left)"), "b) the stage left before the gateway had moved (released) every session")
    h.check(vol.has("the stage exited with status 0 after draining"), "b) the stage did not exit after draining")
    print(f"volunteer: SIGTERM during {len(running)} generations: texts exact, {gw.count('replaying')} replays",
          flush=True)


def upload_cap(h):
    cap_kbps = 100
    _, ep = start_broker(h, bins, "broker-c", heartbeat_ms=1000, expiry_ms=5000)
    ctl = os.path.join(h.logdir, "link-c.sock")
    _, counted = start_link(h, "link-c", bins, ep, control=ctl)
    start_stage(h, bins, "stage01-c", ep, "0-1")
    start_stage(h, bins, "stage44-c", ep, "4-4")
    _, rpc, _ = start_gateway(h, bins, "gateway-c", ep)
    boot = bootstrap_file(h, "bootstrap-c", [counted])
    vol, rest = start_volunteer(h, "volunteer-c", boot, "--upload-kbps", str(cap_kbps))
    h.check(rest.startswith("2-3 of "), f"c) the volunteer chose {rest.split()[0]!r}")
    h.check(wait_servable(bins, rpc, WAIT), "c) the swarm never became servable")
    gens = []
    prompts = [p for p, _ in rows]

    def keep_busy():
        gens[:] = [g for g in gens if g.running()]
        while len(gens) < 4:
            gens.append(start_generate(bins, rpc, prompts[len(gens) % len(prompts)], 300, "--ignore-eos",
                                       "--timeout-ms", "120000"))
    keep_busy()
    time.sleep(3)  # the cap's queue fills
    b0, t0 = link_stats(ctl), time.monotonic()
    while time.monotonic() - t0 < 20:
        keep_busy()
        time.sleep(0.2)
    b1, t1 = link_stats(ctl), time.monotonic()
    rate_kbps = (b1 - b0) * 8 / 1000 / (t1 - t0)
    for g in gens:
        g.kill()
    print(f"volunteer: upload cap {cap_kbps} kbit/s: measured {rate_kbps:.1f} kbit/s at the link over "
          f"{t1 - t0:.1f} s ({b1 - b0} bytes)", flush=True)
    h.check(abs(rate_kbps - cap_kbps) <= 0.1 * cap_kbps,
            f"c) outgoing rate {rate_kbps:.1f} kbit/s is not within 10% of the cap {cap_kbps}")


def owner_load(h):
    _, ep = start_broker(h, bins, "broker-d")
    bootstrap_file(h, "bootstrap-d", [ep])
    # the bootstrap list over real HTTP (libcurl); a missing one is a clear error, exit status 1
    port = free_port()
    h.start("http", [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", h.logdir,
                     str(port)], ready="Serving HTTP", timeout=WAIT)
    boot = f"http://127.0.0.1:{port}/bootstrap-d.json"
    r = subprocess.run(volunteer_argv(h, "volunteer-404", f"http://127.0.0.1:{port}/missing.json"),
                       capture_output=True, text=True, timeout=WAIT)
    h.check(r.returncode == 1 and "404" in r.stderr, f"d) a missing bootstrap URL: status {r.returncode}, "
                                                      f"{r.stderr[-200:]!r}")
    vol, _ = start_volunteer(h, "volunteer-d", boot, "--pause-load", "0.5", "--pause-after-s", "2",
                             "--resume-after-s", "3600")
    burner = subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 120: pass"])
    try:
        paused = vol.wait_line("the machine's owner needs it", WAIT) is not None
        h.check(paused, "d) the volunteer never paused for the owner's load")
        h.check(vol.wait_line("the stage exited with status 0 after draining", WAIT) is not None,
                "d) the paused volunteer's stage did not drain and exit")
        h.check(vol.alive(), "d) the volunteer itself ended instead of pausing")
    finally:
        burner.kill()
        burner.wait()
    rc = vol.terminate(WAIT)
    h.check(rc == 0, f"d) the paused volunteer exited with {rc} on SIGTERM")
    print("volunteer: paused for the owner's load (stage drained), stopped cleanly", flush=True)

    t = time.localtime()
    start = (t.tm_hour * 60 + t.tm_min + 120) % 1440
    hours = f"{start // 60:02d}:{start % 60:02d}-{(start + 60) // 60 % 24:02d}:{(start + 60) % 60:02d}"
    p, _ = h.start("volunteer-e", volunteer_argv(h, "volunteer-e", boot, "--schedule", hours, "--pause-load", "0"),
                   ready="swisd volunteer: outside its schedule", timeout=WAIT)
    rc = p.terminate(WAIT)
    h.check(rc == 0, f"e) the volunteer outside its hours exited with {rc}")
    h.check(not p.has("serving layers") and not p.has("swisd-stage:"),
            f"e) the volunteer served outside its schedule {hours}")
    print(f"volunteer: schedule {hours}: waited without serving, stopped cleanly", flush=True)


def new_gap(h, local):
    _, ep = start_broker(h, bins, "broker-f")
    start_stage(h, bins, "stage01-f", ep, "0-1")
    start_stage(h, bins, "stage23-f", ep, "2-3")
    s44, _ = start_stage(h, bins, "stage44-f", ep, "4-4")
    _, rpc, _ = start_gateway(h, bins, "gateway-f", ep)
    vol, rest = start_volunteer(h, "volunteer-f", bootstrap_file(h, "bootstrap-f", [ep]), "--max-mem", "600K")
    a, b = (int(x) for x in rest.split()[0].split("-"))
    h.check(b - a == 1 and b <= 3, f"f) with every layer held and room for two, it chose {a}-{b}")
    s44.signal(signal.SIGKILL)
    h.check(vol.wait_line("rebalancing", WAIT, "any") is not None, "f) the volunteer's stage never moved to the new gap")
    h.check(wait_servable(bins, rpc, WAIT), "f) the swarm did not heal")
    for p, want in rows:
        rc, out, err = generate(bins, rpc, p, 100)
        h.check(rc == 0 and out == local[p], f"f) {p!r}: text differs after the move (rc {rc}) {err[-200:]}")
    print(f"volunteer: took {a}-{b} of a covered swarm, moved to the new gap when 4-4 died", flush=True)


def body(h):
    local = {p: run_local(bins, p, 100) for p, _ in rows}
    for p, want in rows:
        h.check(local[p].strip() == want.strip(), f"swisd run differs from the reference for {p!r}")
    ep, gw, rpc, boot = join(h, local)
    lone_drain(h, gw, rpc, boot)
    sigterm(h, ep, gw, rpc, boot)
    h.stop_all()
    upload_cap(h)
    h.stop_all()
    owner_load(h)
    h.stop_all()
    new_gap(h, local)


Harness("volunteer").run(body)
