"""One harness for the process-level tests, the chaos suite and the benchmarks.

What it does:
- starts the swisd daemons (or any program) as real processes, each with its
  own log file holding everything it wrote on stdout and stderr;
- waits for a readiness line with a deadline that holds even when the child
  prints nothing at all (a reader thread per stream feeds a queue; the waiter
  never blocks in readline);
- stops every process it started (SIGTERM, then SIGKILL after a grace period)
  and, when a test failed, prints the tail of every log;
- counts checks: `check(cond, what)` records a failure without stopping the
  test; `finish()` prints "N checks, N failed" and returns the exit status.

Data (tests/data/README.md): `model_path()` is the default model, the
repository's models/stories260K.gguf; `greedy_refs()` the reference texts in
tests/data/; `test_data(rel, what)` a file of the optional third-party test
data ($SWISD_TEST_DATA, default ../shared next to the source tree), None after
announcing "SKIP: ..." when it is missing ("FAIL: ..." under CI=true, which
`Harness.test_data` counts as a failed check).

Thread safety: one Harness per test script, used from its main thread;
the reader threads only append to per-process buffers under a lock.
"""
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def in_ci():
    """True under CI (CI=true or 1): a missing optional file is then a failure."""
    return os.environ.get("CI", "").lower() in ("true", "1")


def test_data_dir():
    """The folder of optional third-party test data: $SWISD_TEST_DATA, else ../shared."""
    return os.environ.get("SWISD_TEST_DATA") or os.path.join(os.path.dirname(SRC), "shared")


def test_data(rel, what):
    """The path of the optional third-party file `rel` (e.g.
    "models/llama2-tokenizer/tokenizer.model") under test_data_dir(), or None
    when it is missing, after printing what is missing, where to put it and
    `what` is skipped ("SKIP: ..."; under CI "FAIL: ...", and the caller
    counts a failure)."""
    path = os.path.join(test_data_dir(), rel)
    if os.path.exists(path):
        return path
    tag, how = ("FAIL", "CI=true, so this counts as a failure:") if in_ci() else ("SKIP", "skipped:")
    print(f"{tag}: {rel} is missing; put it at {path} (optional third-party test data under $SWISD_TEST_DATA, "
          f"see tests/data/README.md); {how} {what}", flush=True)
    return None


def model_path():
    """The default model: the repository's stories260K as GGUF (models/README.md)."""
    return os.path.join(SRC, "models", "stories260K.gguf")


def refs_path():
    """The greedy reference texts of an independent engine (tests/data/README.md)."""
    return os.path.join(SRC, "tests", "data", "stories260K_greedy.tsv")


def greedy_refs():
    """[(prompt, text)] from refs_path(): text is the prompt and its 100-token
    greedy continuation; compare after stripping white space at both ends."""
    rows = []
    with open(refs_path(), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            prompt, text = line.rstrip("\n").split("\t", 1)
            rows.append((prompt, json.loads(text)))
    if not rows:
        raise RuntimeError(f"no reference rows in {refs_path()}")
    return rows


class Proc:
    """A started process: its Popen, name, log path and the lines it printed."""

    def __init__(self, name, argv, logdir, env=None, stdin=False):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(logdir, name + ".log")
        self._log = open(self.log_path, "w", encoding="utf-8", errors="replace")
        self._lock = threading.Lock()
        self.lines = []                 # (stream, text) in arrival order
        self._q = queue.Queue()
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  text=True, errors="replace", env=env)
        self._threads = [threading.Thread(target=self._pump, args=(s, n), daemon=True)
                         for s, n in ((self.p.stdout, "out"), (self.p.stderr, "err"))]
        for t in self._threads:
            t.start()

    def _pump(self, stream, which):
        for line in stream:
            with self._lock:
                self.lines.append((which, line))
                self._log.write(("" if which == "out" else "! ") + line)
                self._log.flush()
            self._q.put((which, line))
        self._q.put((which, None))

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def wait_line(self, prefix, timeout=20.0, stream="out"):
        """The rest of the first line (on `stream`, "out", "err" or "any")
        starting with `prefix`, stripped; None when the deadline passes or the
        process ends first. Lines seen before are searched too."""
        with self._lock:
            seen = list(self.lines)
        for which, line in seen:
            if (stream in ("any", which)) and line.startswith(prefix):
                return line[len(prefix):].strip()
        deadline = time.monotonic() + timeout
        closed = set()
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or len(closed) == 2:
                return None
            try:
                which, line = self._q.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if line is None:
                closed.add(which)
                continue
            if (stream in ("any", which)) and line.startswith(prefix):
                return line[len(prefix):].strip()

    def output(self, stream="any"):
        with self._lock:
            return "".join(l for w, l in self.lines if stream in ("any", w))

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def stop(self, grace=5.0):
        """SIGTERM, then SIGKILL after `grace` seconds; returns the exit status."""
        if self.alive():
            self.p.send_signal(signal.SIGCONT)
            self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        for t in self._threads:
            t.join(timeout=2)
        with self._lock:
            self._log.close()
        return self.p.returncode

    def tail(self, n=30):
        with self._lock:
            return "".join(l for _, l in self.lines[-n:])


class Harness:
    """Processes, checks and logs of one test script."""

    def __init__(self, name):
        self.name = name
        self.logdir = tempfile.mkdtemp(prefix=f"swisd-{name}-")
        self.procs = []
        self.checks = 0
        self.failures = 0

    def check(self, cond, what):
        self.checks += 1
        if not cond:
            self.failures += 1
            print("FAIL:", what, flush=True)
        return bool(cond)

    def test_data(self, rel, what):
        """test_data(rel, what), counting a missing file as a failed check under CI."""
        path = test_data(rel, what)
        if path is None and in_ci():
            self.check(False, f"{rel} is missing (CI=true)")
        return path

    def start(self, name, argv, ready=None, timeout=20.0, stream="out", env=None, stdin=False):
        """Starts argv; with `ready`, waits for a line starting with it and
        returns (proc, rest of that line); raises RuntimeError naming the log
        when it does not come in time."""
        p = Proc(name, [str(a) for a in argv], self.logdir, env=env, stdin=stdin)
        self.procs.append(p)
        if ready is None:
            return p, None
        rest = p.wait_line(ready, timeout, stream)
        if rest is None:
            raise RuntimeError(f"{name} did not print {ready!r} within {timeout} s; log {p.log_path}:\n{p.tail()}")
        return p, rest

    def stop_all(self):
        for p in self.procs:
            p.signal(signal.SIGTERM)
        for p in self.procs:
            p.stop()
        self.procs.clear()

    def finish(self):
        """Stops everything, prints the logs' tails on failure and the count
        line; returns the process exit status (0 when nothing failed)."""
        procs = list(self.procs)
        self.stop_all()
        if self.failures:
            for p in procs:
                print(f"--- {p.name} ({p.log_path}), last lines:\n{p.tail()}", flush=True)
        print(f"{self.name}: {self.checks} checks, {self.failures} failed (logs in {self.logdir})", flush=True)
        return 1 if self.failures else 0

    def run(self, body):
        """Runs body(self) and finish(); an exception counts as a failure."""
        try:
            body(self)
        except Exception as e:  # report, then clean up
            import traceback
            traceback.print_exc()
            self.failures += 1
        sys.exit(self.finish())


class Bins:
    """Paths of the built programs, from $SWISD_BUILD (set by meson) or build/."""

    def __init__(self, build=None):
        b = build or os.environ.get("SWISD_BUILD") or os.path.join(SRC, "build")
        self.build = b
        self.swisd = os.path.join(b, "cli", "swisd")
        self.broker = os.path.join(b, "broker", "swisd-broker")
        self.stage = os.path.join(b, "stage", "swisd-stage")
        self.gateway = os.path.join(b, "gateway", "swisd-gateway")
        self.link = os.path.join(b, "chaos", "swisd-link")


def start_broker(h, bins, name, *args, parent=None, region=None, heartbeat_ms=200, expiry_ms=1500):
    """A broker on an ephemeral loopback port; returns (proc, endpoint)."""
    argv = [bins.broker, "--bind", "tcp://127.0.0.1:*", "--heartbeat-ms", heartbeat_ms, "--expiry-ms", expiry_ms]
    if parent:
        argv += ["--parent", parent]
    if region:
        argv += ["--region", region]
    return h.start(name, argv + list(args), ready="swisd-broker: listening on")


def start_stage(h, bins, name, broker, layers, *args, model=None, region=None, threads=1):
    """A stage serving `layers` ("a-b", inclusive); returns (proc, node id)."""
    argv = [bins.stage, "--broker", broker, "--model", model or model_path(), "--layers", layers,
            "--threads", threads]
    if region:
        argv += ["--region", region]
    p, rest = h.start(name, argv + list(args), ready="swisd-stage:")
    return p, rest.split()[0]


def start_gateway(h, bins, name, broker, *args, model=None, http=False):
    """A gateway; returns (proc, rpc endpoint, http port or None)."""
    argv = [bins.gateway, "--broker", broker, "--model", model or model_path(), "--rpc", "tcp://127.0.0.1:*"]
    if http:
        argv += ["--http", "127.0.0.1:0"]
    p, rpc = h.start(name, argv + list(args), ready="swisd-gateway: rpc on")
    port = None
    if http:
        rest = p.wait_line("swisd-gateway: http on port")
        if rest is None:
            raise RuntimeError(f"{name}: no HTTP port; log {p.log_path}:\n{p.tail()}")
        port = int(rest)
    return p, rpc, port


def generate(bins, rpc, prompt, n=40, timeout=120, *args):
    """`swisd generate` through a gateway: (exit status, stdout, stderr)."""
    try:
        r = subprocess.run([bins.swisd, "generate", "--gateway", rpc, "-p", prompt, "-n", str(n), "--temp", "0"]
                           + list(args), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "", "timed out"
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def run_local(bins, prompt, n=40, model=None):
    """`swisd run` greedy, one thread: the reference text for a swarm."""
    r = subprocess.run([bins.swisd, "run", "-m", model or model_path(), "-p", prompt, "-n", str(n), "--temp", "0",
                        "-t", "1"], capture_output=True, timeout=120)
    return r.stdout.decode("utf-8", "replace")


def wait_until(pred, timeout, interval=0.1):
    """Polls pred() until it is true or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
