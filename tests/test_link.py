#!/usr/bin/env python3
"""Functional guarantees of the link emulator `swisd-link` (chaos/).

Runs the real binary between in-process Python servers on loopback and checks
the promised numbers within tolerances (these are functional guarantees, so a
miss fails the test):
  a) --delay 25: every round trip >= 50 ms, median <= 50 + TOL_MS
  b) --rate 1mbit: 300 kB arrive at 125 kB/s +-15 %
  c) --up-delay/--down-delay: one-way times measured separately (server-side
     timestamps) are asymmetric as asked; per-direction options win over --delay
  d) --drop-after: the server sees a reset after ~that many bytes, the client too
  e) 20 concurrent connections relay random data intact
  f) the proxy survives clients that vanish (RST or close) mid-transfer
  g) --drop-prob resets idle connections at the promised rate
  h) --buffer bounds memory: a non-reading server pushes back on the client
  i) --control changes the delay at run time
  plus: SIGUSR1 stats, clean exit on SIGTERM, bad options rejected.
usage: test_link.py [PATH_TO_swisd-link]   (default $SWISD_BUILD/chaos/swisd-link)
Python 3 standard library only; < 30 s.
"""
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness  # noqa: E402

TOL_MS = float(os.environ.get("SWISD_LINK_TOL_MS", "15"))   # scheduling slack on top of a promised delay
HOST = "127.0.0.1"

if len(sys.argv) > 1:
    BIN = sys.argv[1]
else:
    BIN = os.path.join(os.environ.get("SWISD_BUILD", "build"), "chaos", "swisd-link")

H = Harness("link", verbose=True)
failures = H.failed


def check(cond, what):
    return H.check(cond, what)


# ------------------------------------------------------------------ servers

class Server:
    """Threaded TCP server on a free loopback port. mode 'echo' echoes and
    timestamps each receive; mode 'sink' counts bytes and how the peer ended;
    mode 'stall' accepts and never reads."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.recv_times = []          # echo: (monotonic time, bytes) of each recv
        self.results = []             # sink: (bytes, 'eof'|'reset', t_first, t_last)
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conns.append(c)
            if self.mode != "stall":
                threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        n, how, t_first, t_last = 0, "eof", None, None
        try:
            while True:
                d = c.recv(65536)
                now = time.monotonic()
                if not d:
                    break
                if t_first is None:
                    t_first = now
                t_last = now
                n += len(d)
                if self.mode == "echo":
                    with self.lock:
                        self.recv_times.append((now, len(d)))
                    c.sendall(d)
        except (ConnectionResetError, BrokenPipeError):
            how = "reset"
        except OSError:
            how = "error"
        with self.lock:
            self.results.append((n, how, t_first, t_last))
        c.close()

    def close(self):
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass


class Link:
    """swisd-link between a client and server_port, started by the harness;
    parses the chosen port."""
    count = 0

    def __init__(self, server_port, *args):
        Link.count += 1
        self.proc, _ = H.start(f"link-{Link.count}", [BIN, "--listen", HOST + ":0", "--connect",
                                                      f"{HOST}:{server_port}", "--seed", "7", *args])
        m = self.proc.wait_match(r"listening on [^ ]*:(\d+) ", 5, "err")
        if not m:
            self.proc.p.kill()
            raise RuntimeError("swisd-link did not start: " + self.proc.output())
        self.port = int(m.group(1))

    def connect(self):
        c = socket.create_connection((HOST, self.port), timeout=10)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return c

    def stats(self):
        """SIGUSR1 -> dict of the counters from the printed line."""
        start = self.proc.mark()
        self.proc.signal(signal.SIGUSR1)
        m = self.proc.wait_match(r"STATS\] (.*)", 5, "err", start)
        return parse_stats(m.group(1)) if m else {}

    def stop(self):
        """SIGTERM; returns (exit code, final stats dict)."""
        start = self.proc.mark()
        self.proc.signal(signal.SIGTERM)
        try:
            rc = self.proc.p.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.p.kill()
            rc = "timeout"
        m = self.proc.wait_match(r"STATS\] (.*)", 2, "err", start)
        H.stop(self.proc)
        return rc, (parse_stats(m.group(1)) if m else {})


def parse_stats(text):
    text = text.replace("bytes up=", "bytes_up=").replace("down=", "bytes_down=")
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}


def recv_exact(c, n):
    buf = bytearray()
    while len(buf) < n:
        d = c.recv(n - len(buf))
        if not d:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += d
    return bytes(buf)


def rtts(link, count, size=16):
    c = link.connect()
    out = []
    msg = b"p" * size
    for _ in range(count):
        t = time.monotonic()
        c.sendall(msg)
        recv_exact(c, size)
        out.append((time.monotonic() - t) * 1000)
    c.close()
    return out


# -------------------------------------------------------------------- tests

def test_delay():
    srv = Server("echo")
    link = Link(srv.port, "--delay", "25")
    r = rtts(link, 9)
    med = statistics.median(r)
    check(min(r) >= 50.0, f"a) --delay 25: every RTT >= 50 ms (min {min(r):.2f})")
    check(med <= 50.0 + TOL_MS, f"a) --delay 25: median RTT {med:.2f} ms <= {50 + TOL_MS}")
    st = link.stats()
    check(st.get("bytes_up") == 9 * 16 and st.get("bytes_down") == 9 * 16,
          f"SIGUSR1 stats count bytes per direction ({st.get('bytes_up')}, {st.get('bytes_down')} == 144)")
    rc, st = link.stop()
    check(rc == 0 and st.get("accepted") == 1, f"SIGTERM: exit 0 with stats (rc {rc}, {st})")
    srv.close()


def test_rate():
    srv = Server("sink")
    link = Link(srv.port, "--rate", "1mbit")
    total = 300_000
    c = link.connect()
    t0 = time.monotonic()
    c.sendall(os.urandom(total))
    c.shutdown(socket.SHUT_WR)
    c.settimeout(10)
    c.recv(1)                      # EOF once the server has it all and closed
    c.close()
    deadline = time.monotonic() + 5
    while not srv.results and time.monotonic() < deadline:
        time.sleep(0.01)
    n, how, _, t_last = srv.results[0] if srv.results else (0, "none", 0, t0)
    rate = n / (t_last - t0) if t_last and t_last > t0 else 0
    check(n == total and how == "eof", f"b) rate: all {total} bytes arrived ({n}, {how})")
    check(abs(rate - 125_000) <= 0.15 * 125_000, f"b) --rate 1mbit: {rate / 1000:.1f} kB/s within 125 +-15%")
    link.stop()
    srv.close()

    # down direction only: the up direction stays fast
    srv = Server("echo")
    link = Link(srv.port, "--down-rate", "2mbit")
    c = link.connect()
    data = os.urandom(200_000)
    t0 = time.monotonic()
    threading.Thread(target=c.sendall, args=(data,), daemon=True).start()
    got = recv_exact(c, len(data))
    dt = time.monotonic() - t0
    with srv.lock:
        up_dt = srv.recv_times[-1][0] - t0
    c.close()
    rate = len(data) / dt
    check(got == data, "b) --down-rate: echoed data intact")
    check(abs(rate - 250_000) <= 0.15 * 250_000, f"b) --down-rate 2mbit: {rate / 1000:.1f} kB/s within 250 +-15%")
    check(up_dt < 0.25 * dt, f"b) up direction unlimited: server had all data after {up_dt * 1000:.0f} ms "
          f"of {dt * 1000:.0f} ms")
    link.stop()
    srv.close()


def test_asymmetric():
    srv = Server("echo")
    # per-direction option first: it must still win over --delay
    link = Link(srv.port, "--up-delay", "10", "--delay", "40")
    c = link.connect()
    ups, downs = [], []
    for _ in range(7):
        with srv.lock:
            k = len(srv.recv_times)
        t0 = time.monotonic()
        c.sendall(b"abcdefgh")
        recv_exact(c, 8)
        t2 = time.monotonic()
        with srv.lock:
            t1 = srv.recv_times[k][0]
        ups.append((t1 - t0) * 1000)
        downs.append((t2 - t1) * 1000)
    c.close()
    up, down = statistics.median(ups), statistics.median(downs)
    check(min(ups) >= 10.0 and up <= 10 + TOL_MS, f"c) --up-delay 10: one-way up {up:.2f} ms (min {min(ups):.2f})")
    check(min(downs) >= 40.0 and down <= 40 + TOL_MS,
          f"c) --delay 40 for down: one-way down {down:.2f} ms (min {min(downs):.2f})")
    link.stop()
    srv.close()


def test_drop_after():
    srv = Server("sink")
    budget = 50_000
    link = Link(srv.port, "--drop-after", str(budget))
    c = link.connect()
    err = None
    try:
        c.sendall(os.urandom(400_000))
        c.settimeout(5)
        c.recv(1)
    except (ConnectionResetError, BrokenPipeError) as e:
        err = e
    c.close()
    deadline = time.monotonic() + 5
    while not srv.results and time.monotonic() < deadline:
        time.sleep(0.01)
    n, how = srv.results[0][:2] if srv.results else (-1, "none")
    check(err is not None, f"d) --drop-after: client saw a reset ({type(err).__name__})")
    check(how == "reset", f"d) --drop-after: server saw a reset ({how})")
    check(budget * 0.9 <= n <= budget, f"d) --drop-after {budget}: server got {n} bytes (90-100% of budget)")
    st = link.stats()
    check(st.get("dropped_budget") == 1 and st.get("bytes_up") == budget,
          f"d) stats: dropped_budget=1, bytes_up={budget} ({st.get('dropped_budget')}, {st.get('bytes_up')})")
    link.stop()
    srv.close()


def test_concurrent():
    srv = Server("echo")
    link = Link(srv.port, "--delay", "5", "--rate", "20mbit", "--jitter", "3")
    n_conn, size = 20, 30_000
    ok = [False] * n_conn

    def worker(i):
        try:
            c = link.connect()
            data = random.Random(i).randbytes(size)
            threading.Thread(target=c.sendall, args=(data,), daemon=True).start()
            ok[i] = recv_exact(c, size) == data
            c.close()
        except Exception as e:  # noqa: BLE001 - any failure is a test failure
            print("   worker", i, "failed:", e)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n_conn)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    check(all(ok), f"e) {n_conn} concurrent connections with jitter relay data intact ({sum(ok)} ok)")
    time.sleep(0.2)
    st = link.stats()
    check(st.get("accepted") == n_conn and st.get("bytes_up") == n_conn * size
          and st.get("bytes_down") == n_conn * size, f"e) stats count every connection and byte ({st})")
    link.stop()
    srv.close()


def test_vanish():
    srv = Server("echo")
    link = Link(srv.port, "--delay", "20")
    socks = []
    for i in range(6):
        c = link.connect()
        c.setblocking(False)
        try:
            c.send(os.urandom(200_000))
        except BlockingIOError:
            pass
        socks.append(c)
    time.sleep(0.03)
    for i, c in enumerate(socks):
        if i % 2 == 0:     # vanish with RST
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    time.sleep(0.3)
    r = rtts(link, 3)
    check(link.proc.alive() and min(r) >= 40.0 and statistics.median(r) <= 40 + TOL_MS,
          f"f) proxy alive and exact after 6 clients vanished mid-transfer (RTT {statistics.median(r):.1f} ms)")
    time.sleep(0.2)
    st = link.stats()
    check(st.get("active") == 0 and st.get("accepted") == 7,
          f"f) all vanished connections cleaned up (active {st.get('active')}, accepted {st.get('accepted')})")
    rc, _ = link.stop()
    check(rc == 0, "f) clean exit afterwards")
    srv.close()


def test_drop_prob():
    srv = Server("sink")
    # P = 0.99 per second: lifetime ~ Exp(rate 4.6/s); P(one survives 1.5 s) = 0.001
    link = Link(srv.port, "--drop-prob", "0.99")
    socks = [link.connect() for _ in range(10)]
    t0 = time.monotonic()
    lifetimes = []
    for c in socks:
        c.settimeout(max(0.01, 2.5 - (time.monotonic() - t0)))
        try:
            d = c.recv(1)
            lifetimes.append(time.monotonic() - t0 if d == b"" else None)
        except ConnectionResetError:
            lifetimes.append(time.monotonic() - t0)
        except socket.timeout:
            lifetimes.append(None)
        c.close()
    dropped = [x for x in lifetimes if x is not None]
    check(len(dropped) == 10, f"g) --drop-prob 0.99: all 10 idle connections reset within 2.5 s ({len(dropped)})")
    st = link.stats()
    check(st.get("dropped_random") == 10, f"g) stats dropped_random = 10 ({st.get('dropped_random')})")
    link.stop()
    srv.close()
    # and without drops, idle connections stay up
    srv = Server("sink")
    link = Link(srv.port)
    c = link.connect()
    c.settimeout(0.5)
    try:
        c.recv(1)
        alive = False
    except socket.timeout:
        alive = True
    except OSError:
        alive = False
    check(alive, "g) without --drop-prob an idle connection stays up")
    c.close()
    link.stop()
    srv.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])      # utime + stime, clock ticks


def test_backpressure():
    srv = Server("stall")
    link = Link(srv.port, "--buffer", "1MiB")
    c = link.connect()
    c.setblocking(False)
    sent, chunk = 0, os.urandom(65536)
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:
        try:
            sent += c.send(chunk)
        except BlockingIOError:
            time.sleep(0.02)
    rss = rss_kib(link.proc.pid)
    cpu0 = cpu_ticks(link.proc.pid)
    time.sleep(0.5)
    cpu = cpu_ticks(link.proc.pid) - cpu0
    check(cpu <= 5, f"h) no busy loop while blocked: {cpu} CPU ticks in 0.5 s (<= 5)")
    # the kernel's own socket buffers (client send, proxy receive, proxy send,
    # server receive) can hold some MiB on loopback; the emulator adds <= 1 MiB
    check(sent < 40 << 20, f"h) --buffer 1MiB: client blocked after {sent >> 10} KiB (< 40 MiB)")
    check(0 < rss < 32 << 10, f"h) proxy RSS {rss} KiB stays small (< 32 MiB)")
    st = link.stats()
    check(st.get("bytes_up", 0) <= sent, "h) stats bytes_up <= bytes sent")
    c.close()
    link.stop()
    srv.close()


def test_control():
    srv = Server("echo")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ctl.sock")
        link = Link(srv.port, "--delay", "30", "--control", path)
        r1 = statistics.median(rtts(link, 3))
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ctl.connect(path)
        ctl.settimeout(5)
        f = ctl.makefile("rw")

        def cmd(line):
            f.write(line + "\n")
            f.flush()
            return f.readline().strip()

        a = cmd("delay 5")
        b = cmd("up-delay 1.5")
        bad = cmd("delay -3")
        got = cmd("get")
        r2 = rtts(link, 5)
        check(a == "ok" and b == "ok" and bad.startswith("error"), f"i) control replies ({a!r}, {b!r}, {bad!r})")
        check("up-delay=1.5" in got and "down-delay=5" in got, f"i) control get: {got!r}")
        check(60 <= r1 <= 60 + TOL_MS, f"i) before: RTT {r1:.1f} ms for --delay 30")
        check(min(r2) >= 6.5 and statistics.median(r2) <= 6.5 + TOL_MS,
              f"i) after 'delay 5' + 'up-delay 1.5': RTT {statistics.median(r2):.1f} ms (want >= 6.5)")
        time.sleep(0.1)            # let the closed RTT connection finish its FINs
        c = link.connect()
        c.sendall(b"x")
        recv_exact(c, 1)
        reset = cmd("reset-all")
        c.settimeout(2)
        try:
            alive = c.recv(1) != b""
        except ConnectionResetError:
            alive = False
        check(reset == "ok 1" and not alive, f"i) reset-all resets the open connection ({reset!r})")
        c.close()
        stats = cmd("stats")
        check("accepted=3" in stats, f"i) control stats: {stats!r}")
        ctl.close()
        link.stop()
        check(not os.path.exists(path), "i) control socket removed at exit")
    srv.close()


def test_bad_options():
    for args in (["--listen", "127.0.0.1:0"], ["--listen", "x", "--connect", "127.0.0.1:1"],
                 ["--listen", "127.0.0.1:0", "--connect", "127.0.0.1:1", "--rate", "fast"],
                 ["--listen", "127.0.0.1:0", "--connect", "127.0.0.1:1", "--drop-prob", "1.5"],
                 ["--listen", "127.0.0.1:0", "--connect", "127.0.0.1:1", "--delay", "-1"]):
        r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=5)
        check(r.returncode == 2 and "swisd-link:" in r.stderr, f"bad options rejected: {' '.join(args[2:]) or args}")
    r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=5)
    check(r.returncode == 0 and "--drop-after" in r.stdout and "--up-rate" in r.stdout, "--help documents options")


def test_connect_refused():
    s = socket.socket()
    s.bind((HOST, 0))
    dead_port = s.getsockname()[1]
    s.close()
    link = Link(dead_port)
    c = None
    try:  # the proxy's reset may arrive before connect() and setsockopt() return (a loaded machine)
        c = link.connect()
        c.settimeout(3)
        ended = c.recv(1) == b""
    except ConnectionResetError:
        ended = True
    if c:
        c.close()
    st = link.stats()
    check(ended and st.get("failed") == 1, f"upstream refused: client reset, failed=1 ({st.get('failed')})")
    link.stop()


def main():
    if not os.access(BIN, os.X_OK):
        print("FAIL: no executable at", BIN)
        return 1
    t0 = time.monotonic()
    for t in (test_bad_options, test_delay, test_asymmetric, test_rate, test_drop_after, test_concurrent,
              test_vanish, test_drop_prob, test_backpressure, test_control, test_connect_refused):
        try:
            t()
        except Exception as e:  # noqa: BLE001 - report and go on
            check(False, f"{t.__name__} raised {type(e).__name__}: {e}")
    print(f"{len(failures)} failure(s) in {time.monotonic() - t0:.1f} s")
    return H.finish()


if __name__ == "__main__":
    sys.exit(main())
