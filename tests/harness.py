"""One harness for the process-level tests, the chaos suite and the benchmarks.

What it does:
- starts the swisd daemons (or any program) as real processes, each with its
  own log file holding everything it wrote on stdout and stderr;
- waits for a line holding a text (readiness, or an event such as "moving to
  broker") with a deadline that holds even when the child prints nothing at
  all (a reader thread per stream appends to a list under a condition; the
  waiter sleeps on the condition, never in readline). Lines are matched by
  substring, never by their start: daemons prefix their messages with their
  pid, role and node id;
- runs `swisd generate` clients in the background (Client), so that a fault
  can be injected once a generation is observably in flight;
- stops every process it started (SIGTERM, then SIGKILL after a grace period)
  and, when a check failed, prints the tail of the logs of the processes that
  ran at that moment;
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
import atexit
import json
import os
import re
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


def import_or_reexec(module, script, flag):
    """The module named `module` (e.g. "jinja2"); when this Python lacks it,
    runs `script` (the caller's __file__) again, with the same arguments,
    under Debian's /usr/bin/python3, where python3-<module> installs it (a
    pyenv or venv Python does not see Debian's packages). The environment
    variable `flag` marks the second run, so it happens once. Returns None
    when the module is missing there too (the caller says so and skips or
    fails)."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.path.exists("/usr/bin/python3") and not os.environ.get(flag):
            os.environ[flag] = "1"
            os.execv("/usr/bin/python3", ["/usr/bin/python3", os.path.abspath(script)] + sys.argv[1:])
        return None


class Proc:
    """A started process: its Popen `p`, name, log path and the lines it printed.

    Every line the child writes on stdout or stderr goes, as it arrives, to
    `lines` (in arrival order, as (stream, text) with stream "out" or "err")
    and to the log file `log_path` (stderr lines marked "! "). Waits look
    for a substring anywhere in a line, never at its start only: daemons put
    a pid/role/node prefix before their messages.
    """

    def __init__(self, name, argv, logdir, env=None, stdin=False):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(logdir, name + ".log")
        # append: a process started again under its name (a restarted stage) keeps one log
        self._log = open(self.log_path, "a", encoding="utf-8", errors="replace")
        self._log.write(f"=== {' '.join(argv)}\n")
        self._log.flush()
        self._cv = threading.Condition()
        self.lines = []                 # (stream, text) in arrival order
        self._open = 2                  # streams not yet at end of file
        self._cursor = 0                # next_event: index of the first line not yet consumed
        self.seen = []                  # next_event: every event consumed, in order
        self.relevant = False           # a check failed while it ran: print its log at the end
        self.ready = None               # start_stage: the rest of its ready line
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  text=True, errors="replace", env=env, bufsize=1)
        self._threads = [threading.Thread(target=self._pump, args=(s, n), daemon=True)
                         for s, n in ((self.p.stdout, "out"), (self.p.stderr, "err"))]
        for t in self._threads:
            t.start()

    def _pump(self, stream, which):
        for line in stream:
            with self._cv:
                self.lines.append((which, line))
                if not self._log.closed:
                    self._log.write(("" if which == "out" else "! ") + line)
                    self._log.flush()
                self._cv.notify_all()
        with self._cv:
            self._open -= 1
            self._cv.notify_all()

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def mark(self):
        """How many lines were seen so far: pass it as `start` to wait only for later ones."""
        with self._cv:
            return len(self.lines)

    def _scan(self, match, timeout, stream, start):
        """(index, value) of the first line from index `start` on `stream`
        ("out", "err" or "any") for which match(line without its newline) is
        neither None nor False; (index past the lines looked at, None) when
        `timeout` seconds pass or both streams end first. Sleeps on a
        condition: holds its deadline even when the child prints nothing."""
        deadline = time.monotonic() + timeout
        i = start
        with self._cv:
            while True:
                while i < len(self.lines):
                    which, line = self.lines[i]
                    if stream in ("any", which):
                        v = match(line.rstrip("\n"))
                        if v is not None and v is not False:
                            return i, v
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self._open == 0:
                    return i, None
                self._cv.wait(left)

    def wait_line(self, text, timeout=20.0, stream="out", start=0):
        """The rest of the first line (on `stream`) holding `text`, after it,
        stripped; None when the deadline passes or the process closes its
        output first. Lines from index `start` (see mark()) are searched,
        those seen before the call too."""
        def rest(line):
            k = line.find(text)
            return None if k < 0 else line[k + len(text):].strip()
        return self._scan(rest, timeout, stream, start)[1]

    def wait_match(self, pattern, timeout=20.0, stream="out", start=0):
        """The re.Match of the first line (on `stream`) that `pattern`
        matches anywhere (re.search), or None as for wait_line."""
        rx = re.compile(pattern)
        return self._scan(rx.search, timeout, stream, start)[1]

    def next_event(self, pred, timeout=3.0):
        """For programs that print one JSON object a line on stdout (a line
        that is not JSON reads as {"ev": "junk", "line": ...}): the first
        event after the last one consumed for which pred(event) is true, or
        None after `timeout` seconds. Every event passed over is consumed
        too and kept in `seen`."""
        def parse(line):
            try:
                ev = json.loads(line)
            except ValueError:
                ev = {"ev": "junk", "line": line}
            return ev if isinstance(ev, dict) else {"ev": "junk", "line": line}

        def match(line):
            ev = parse(line)
            self.seen.append(ev)
            return ev if pred(ev) else None
        with self._cv:
            start = self._cursor
        i, ev = self._scan(match, timeout, "out", start)
        with self._cv:
            self._cursor = i + 1 if ev is not None else i
        return ev

    def has(self, text, stream="any"):
        """Whether some line printed so far holds `text`."""
        with self._cv:
            return any(text in l for w, l in self.lines if stream in ("any", w))

    def count(self, text, stream="any"):
        """How many lines printed so far hold `text`."""
        with self._cv:
            return sum(text in l for w, l in self.lines if stream in ("any", w))

    def output(self, stream="any"):
        with self._cv:
            return "".join(l for w, l in self.lines if stream in ("any", w))

    def send_line(self, text):
        """Writes `text` and a newline to the child's stdin (started with stdin=True)."""
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def signal(self, sig):
        if self.alive():
            try:
                self.p.send_signal(sig)
            except ProcessLookupError:
                pass

    def terminate(self, timeout):
        """SIGTERM, then waits up to `timeout` seconds for the exit: returns
        the exit status, or None when it still runs (it is left running, for
        stop() or the harness's finish to end)."""
        self.signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace=5.0):
        """Closes its stdin, SIGCONT (a frozen child must see the TERM) and
        SIGTERM, then SIGKILL after `grace` seconds; returns the exit status."""
        if self.p.stdin:
            try:
                self.p.stdin.close()
            except OSError:
                pass
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        for t in self._threads:
            t.join(timeout=2)
        with self._cv:
            if not self._log.closed:
                self._log.close()
        return self.p.returncode

    def tail(self, n=30):
        with self._cv:
            return "".join(l for _, l in self.lines[-n:])


class Harness:
    """Processes, checks and logs of one test script (or of the chaos suite,
    or of a benchmark).

    verbose: print "ok   what" for every check that passes too (a failed one
    is always printed, "FAIL: what").
    """

    def __init__(self, name, verbose=False):
        self.name = name
        self.verbose = verbose
        self.logdir = tempfile.mkdtemp(prefix=f"swisd-{name}-")
        self.procs = []                 # running (not yet stopped) processes
        # a script that dies on an exception before its own cleanup (while its swarm starts, say) must
        # not leave that swarm running: it would hold ports and CPU for every later test
        atexit.register(self.stop_all)
        self.started = []               # every process ever started, for the final report
        self.checks = 0
        self.failures = 0
        self.failed = []                # what each failed check said
        # keys (docs/security.md): every daemon started by start_* gets its own
        # key, keys/NAME.key (kept, so a restarted daemon keeps its id and a
        # restarted broker its key); gateways' and child brokers' keys are made
        # in keys/trusted, the folder every broker is given as --gateways and
        # --brokers. insecure: start everything with --insecure instead.
        self.insecure = os.environ.get("SWISD_INSECURE") == "1"
        self.keydir = os.path.join(self.logdir, "keys")
        # the per-user config folder of every process started from here (a key
        # made on first use, e.g. `swisd generate`'s client key) is the
        # test's own, never the user's ~/.config
        os.environ["XDG_CONFIG_HOME"] = os.path.join(self.logdir, "config")

    def check(self, cond, what):
        self.checks += 1
        if not cond:
            self.failures += 1
            self.failed.append(what)
            print("FAIL:", what, flush=True)
            for p in self.procs:        # the logs that tell why: those running now
                p.relevant = True
        elif self.verbose:
            print("ok  ", what, flush=True)
        return bool(cond)

    def test_data(self, rel, what):
        """test_data(rel, what), counting a missing file as a failed check under CI."""
        path = test_data(rel, what)
        if path is None and in_ci():
            self.check(False, f"{rel} is missing (CI=true)")
        return path

    def start(self, name, argv, ready=None, timeout=20.0, stream="out", env=None, stdin=False):
        """Starts argv; with `ready`, waits for a line holding it (anywhere in
        the line) and returns (proc, rest of that line after it); raises
        RuntimeError naming the log when it does not come in time (the
        process may have exited: its status is in the message)."""
        p = Proc(name, [str(a) for a in argv], self.logdir, env=env, stdin=stdin)
        self.procs.append(p)
        self.started.append(p)
        if ready is None:
            return p, None
        rest = p.wait_line(ready, timeout, stream)
        if rest is None:
            p.relevant = True
            raise RuntimeError(f"{name} did not print {ready!r} within {timeout} s (exit status {p.p.poll()}); "
                               f"log {p.log_path}:\n{p.tail()}")
        return p, rest

    def stop(self, p, grace=5.0):
        """Stops one process (Proc.stop) and forgets it; returns its exit status."""
        rc = p.stop(grace)
        if p in self.procs:
            self.procs.remove(p)
        return rc

    def stop_all(self):
        """SIGTERM to every running process at once, then waits for each (Proc.stop)."""
        for p in self.procs:
            p.signal(signal.SIGCONT)
            p.signal(signal.SIGTERM)
        for p in self.procs:
            p.stop()
        self.procs.clear()

    def finish(self):
        """Stops everything, prints the logs' tails on failure (of the
        processes that ran when a check failed, or all when none did) and the
        count line; returns the process exit status (0 when nothing failed)."""
        self.stop_all()
        if self.failures:
            shown = [p for p in self.started if p.relevant] or self.started
            for p in shown:
                print(f"--- {p.name} ({p.log_path}), exit status {p.p.returncode}, last lines:\n{p.tail()}",
                      flush=True)
        print(f"{self.name}: {self.checks} checks, {self.failures} failed (logs in {self.logdir})", flush=True)
        return 1 if self.failures else 0

    def run(self, body):
        """Runs body(self) and finish(); an exception counts as a failure."""
        try:
            body(self)
        except Exception:  # report, then clean up
            import traceback
            traceback.print_exc()
            self.failures += 1
            for p in self.procs:
                p.relevant = True
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


def trusted_dir(h):
    """The folder of keys every broker of h accepts as gateways and child brokers."""
    d = os.path.join(h.keydir, "trusted")
    os.makedirs(d, exist_ok=True)
    return d


def node_key(h, bins, name, trusted=False):
    """The key file of the daemon `name` (made with `swisd keygen` on first
    use, then reused); in trusted_dir(h) when trusted."""
    d = trusted_dir(h) if trusted else h.keydir
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name.replace("/", "_") + ".key")
    if not os.path.exists(path):
        subprocess.run([bins.swisd, "keygen", "--out", path], check=True, stdout=subprocess.DEVNULL)
    return path


def key_args(h, bins, name, trusted=False):
    """["--key", PATH] for the daemon `name`, or ["--insecure"] when h.insecure."""
    return ["--insecure"] if h.insecure else ["--key", node_key(h, bins, name, trusted)]


def start_broker(h, bins, name, *args, parent=None, region=None, heartbeat_ms=200, expiry_ms=1500,
                 bind="tcp://127.0.0.1:*"):
    """A broker (on an ephemeral loopback port unless `bind` names one);
    returns (proc, endpoint): "tcp://HOST:PORT#KEY" (what nodes dial), without
    "#KEY" when h.insecure. heartbeat_ms/expiry_ms None: the broker's defaults."""
    argv = [bins.broker, "--bind", bind] + key_args(h, bins, name, trusted=bool(parent))
    if not h.insecure:
        argv += ["--gateways", trusted_dir(h), "--brokers", trusted_dir(h)]
    if heartbeat_ms is not None:
        argv += ["--heartbeat-ms", heartbeat_ms]
    if expiry_ms is not None:
        argv += ["--expiry-ms", expiry_ms]
    if parent:
        argv += ["--parent", parent]
    if region:
        argv += ["--region", region]
    return h.start(name, argv + list(args), ready="swisd-broker: listening on")


def start_stage(h, bins, name, broker, layers, *args, model=None, region=None, threads=1, timeout=20.0):
    """A stage serving `layers` ("a-b", inclusive, or "auto"); returns (proc,
    node id); proc.ready is the rest of its ready line ("NODE_ID serving
    layers A-B"). threads None: the stage's default. timeout: seconds to wait
    for the ready line (a large model loads longer)."""
    argv = [bins.stage, "--broker", broker, "--model", model or model_path(), "--layers", layers]
    argv += key_args(h, bins, name)
    if threads is not None:
        argv += ["--threads", threads]
    if region:
        argv += ["--region", region]
    p, rest = h.start(name, argv + list(args), ready="swisd-stage:", timeout=timeout)
    p.ready = rest
    return p, rest.split()[0]


def start_gateway(h, bins, name, broker, *args, model=None, http=False, timeout=20.0):
    """A gateway with its RPC on an ephemeral loopback port (and with http,
    its HTTP API on one); returns (proc, rpc endpoint, http port or None).
    timeout: seconds to wait for each ready line (a large model loads longer)."""
    argv = [bins.gateway, "--broker", broker, "--model", model or model_path(), "--rpc", "tcp://127.0.0.1:*"]
    argv += key_args(h, bins, name, trusted=True)
    if http:
        argv += ["--http", "127.0.0.1:0"]
    p, rpc = h.start(name, argv + list(args), ready="swisd-gateway: rpc on", timeout=timeout)
    port = None
    if http:
        rest = p.wait_line("swisd-gateway: http on port")
        if rest is None:
            raise RuntimeError(f"{name}: no HTTP port; log {p.log_path}:\n{p.tail()}")
        port = int(rest)
    return p, rpc, port


def lie_models(h, bins, model=None):
    """The two files a lying stage (tests/liar_stage.c) computes with in place
    of `model` (default model_path()): (other weights of the same shapes from
    `swisd synth`, seed 7, with the model's vocabulary; the model quantized to
    q4_0 by `swisd quantize`), made in h.logdir."""
    model = model or model_path()
    synth = os.path.join(h.logdir, "synth.gguf")
    q4 = os.path.join(h.logdir, "q4_0.gguf")
    subprocess.run([bins.swisd, "synth", "stories260k", "f32", synth, "--seed", "7", "--vocab", model], check=True,
                   capture_output=True)
    subprocess.run([bins.swisd, "quantize", model, q4, "q4_0"], check=True, capture_output=True)
    return synth, q4


def start_link(h, name, bins, target, *args, control=None):
    """swisd-link on an ephemeral loopback port in front of `target`
    ("tcp://host:port" or "host:port", with "#KEY" or not); returns (proc,
    "tcp://127.0.0.1:PORT", with the target's "#KEY": CURVE passes through
    the proxy unchanged)."""
    target, _, key = target.partition("#")
    argv = [bins.link, "--listen", "127.0.0.1:0", "--connect", target.replace("tcp://", "")]
    if control:
        argv += ["--control", control]
    p, rest = h.start(name, argv + list(args), ready="listening on ", stream="err")
    return p, "tcp://" + rest.split()[0] + ("#" + key if key else "")


def free_port():
    """A loopback TCP port that was free a moment ago (for a daemon that must
    come back on the same port after a kill)."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def generate(bins, rpc, prompt, n=40, timeout=120, *args):
    """`swisd generate` through a gateway: (exit status, stdout, stderr)."""
    try:
        r = subprocess.run([bins.swisd, "generate", "--gateway", rpc, "-p", prompt, "-n", str(n), "--temp", "0"]
                           + list(args), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "", "timed out"
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def run_local(bins, prompt, n=40, *args, model=None, timeout=120):
    """`swisd run` greedy, one thread (and `args`, e.g. "--ignore-eos"): the
    reference text for a swarm."""
    r = subprocess.run([bins.swisd, "run", "-m", model or model_path(), "-p", prompt, "-n", str(n), "--temp", "0",
                        "-t", "1"] + list(args), capture_output=True, timeout=timeout)
    return r.stdout.decode("utf-8", "replace")


def cpu_seconds(pids):
    """User + system CPU seconds the processes `pids` (all their threads) have
    used so far, from /proc/PID/stat (fields 14 and 15 of proc(5), in clock
    ticks): what a benchmark compares to see the work apart from the wall
    time a loaded machine adds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def wait_until(pred, timeout, interval=0.1):
    """Polls pred() until it is true or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def servable(bins, rpc):
    """Whether a 1-token greedy generation through the gateway succeeds now."""
    return generate(bins, rpc, "Once", 1, 30)[0] == 0


def wait_servable(bins, rpc, timeout=30.0):
    """Polls servable() until it holds or `timeout` seconds pass; returns whether it held."""
    return bool(wait_until(lambda: servable(bins, rpc), timeout, 0.3))


class Client:
    """A `swisd generate` running in the background, its output read as it
    streams: the first tokens can be waited for (to fault a swarm while a
    generation is in flight, not before or after it), and the pauses between
    output chunks are measured.

    argv: the whole command line. Thread safety: one thread drives it; its
    reader threads only append under a lock.
    """

    def __init__(self, argv):
        self.argv = [str(a) for a in argv]
        self._cv = threading.Condition()
        self.out = b""
        self.err = b""
        self.t_start = time.monotonic()
        self.max_gap = 0.0              # longest pause between output chunks after the first, seconds
        self._last = None
        self._done = False
        self.p = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_out(self):
        while True:
            chunk = os.read(self.p.stdout.fileno(), 4096)
            now = time.monotonic()
            with self._cv:
                if not chunk:
                    self._done = True
                    self._cv.notify_all()
                    return
                if self._last is not None:
                    self.max_gap = max(self.max_gap, now - self._last)
                self._last = now
                self.out += chunk
                self._cv.notify_all()

    def _read_err(self):
        data = self.p.stderr.read()
        with self._cv:
            self.err = data

    def wait_output(self, n_bytes, timeout):
        """Waits until at least `n_bytes` of stdout arrived; False when the
        deadline passes or the output ends first."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while len(self.out) < n_bytes:
                left = deadline - time.monotonic()
                if left <= 0 or self._done:
                    return False
                self._cv.wait(left)
            return True

    def running(self):
        return self.p.poll() is None

    def kill(self):
        if self.running():
            self.p.kill()
        self.p.wait()

    def finish(self, timeout=180.0):
        """Waits for the end (killing it after `timeout` seconds); returns
        (exit status, stdout text, stderr text); status -1 when it was killed
        for time."""
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = -1
        for t in self._threads:
            t.join(timeout=5)
        with self._cv:
            return rc, self.out.decode("utf-8", "replace"), self.err.decode("utf-8", "replace")


def start_generate(bins, rpc, prompt, n, *args, temp="0"):
    """A Client running `swisd generate` through the gateway at `rpc`."""
    return Client([bins.swisd, "generate", "--gateway", rpc, "-p", prompt, "-n", n, "--temp", temp] + list(args))
