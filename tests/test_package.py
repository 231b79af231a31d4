#!/usr/bin/env python3
"""The Debian package (issue 13): scripts/package-deb builds it, and what it
holds runs as a real swarm from a scratch root.

1. scripts/package-deb --out TMP (its meson build folder is
   $SWISD_BUILD/package-deb, kept between runs: the first run compiles the
   programs once more with prefix /usr, later runs only what changed);
2. `dpkg-deb --info`: the control fields (version = meson's project version,
   dpkg's architecture), Depends naming the Debian package of every shared
   library the programs need (found here with readelf and dpkg-query, not
   from the script), the conffiles, the maintainer scripts;
   `dpkg-deb --contents`: programs, units, configuration, data;
3. `dpkg-deb -x` into a scratch root; no program carries an RPATH;
4. the systemd units: `systemd-analyze verify` (ExecStart pointed at the
   unpacked programs: systemd does not run in this container) prints
   nothing, each unit has its sandboxing lines and an EnvironmentFile that
   the package ships and that sets the variable ExecStart expands;
   `systemd-analyze security --offline` rates each at most 2.0;
5. the maintainer scripts in a private mount namespace (a copy of /etc, empty
   /var/lib and /var/cache; the host is untouched): postinst twice makes one
   system user `swisd` and /var/lib/swisd, /var/cache/swisd owned by it;
   postrm purge twice removes them. Then tests/package_install.sh, in mount
   and network namespaces whose /etc, /usr, /var and /lib are overlays on a
   tmpfs: `dpkg -i`, a reinstall keeping an edited conffile, the installed
   /usr/bin/swisd demo on /usr/share/swisd's model, the three units run as
   systemd would (as the user swisd, read-only system, private /tmp, their
   /etc/swisd flags unchanged, set up as docs/volunteer.md says: the
   operator signs a manifest, the gateway serves it with --serve-model, the
   `swisd volunteer` unit fetches the layers it takes into /var/cache/swisd)
   with a completion through the gateway's HTTP API equal to the reference, then
   `dpkg --purge` (user, state and /etc/swisd gone); the host's dpkg
   database and users are checked unchanged;
6. the unpacked programs as a swarm, under PR_SET_MDWE, no_new_privs and
   seccomp filters of the socket families and system calls the units allow
   (what their MemoryDenyWriteExecute=, NoNewPrivileges=,
   RestrictAddressFamilies= and SystemCallFilter= demand), with no
   LD_LIBRARY_PATH and the working directory outside the source tree:
   swisd-broker, `swisd volunteer` and swisd-gateway with the flags of the
   packaged /etc/swisd/*.env (only folders and ports moved), on the packaged
   model, which the volunteer fetches by URL (a signed manifest, a loopback
   HTTP server) into the packaged cache folder;
   the unpacked `swisd generate` gives the reference texts of stories260K
   (tests/data); the gateway serves the dashboard from the unpacked data
   folder (a marker written into the unpacked index.html comes back), and
   `swisd demo` finds the packaged default model there.
A missing tool (systemd-analyze, lintian) or unbuilt dashboard skips its
part with a "SKIP:" line, or under CI=true fails (scripts/dev installs them);
what the machine itself may not allow (mount and network namespaces with
overlayfs, PR_SET_MDWE on kernels before 6.3, the seccomp filter off x86-64)
is skipped with a "SKIP:" line always.
Exit 77 (skipped) when dpkg-deb is missing.
usage: test_package.py   (binaries from $SWISD_BUILD)
"""
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SRC, Bins, Harness, generate, greedy_refs, in_ci, wait_until  # noqa: E402
from shard_server import ShardServer  # noqa: E402

if not shutil.which("dpkg-deb"):
    print("SKIP: dpkg-deb is missing (apt-get install dpkg): the package cannot be built")
    sys.exit(77)

build = Bins().build
h = Harness("package", verbose=True)


def missing(what, skipped):
    """A tool or file the test needs is missing: "SKIP: ..." and go on, or under CI
    (CI=true: scripts/dev installs every tool the suite uses) a failed check."""
    if in_ci():
        h.check(False, f"{what} (CI=true, so this counts as a failure: {skipped})")
    else:
        print(f"SKIP: {what}: {skipped}", flush=True)
UNITS = ("swisd-broker", "swisd-gateway", "swisd-volunteer")
ENV_VAR = {"swisd-broker": ("broker.env", "SWISD_BROKER_ARGS"),
           "swisd-gateway": ("gateway.env", "SWISD_GATEWAY_ARGS"),
           "swisd-volunteer": ("volunteer.env", "SWISD_VOLUNTEER_ARGS")}
PROGRAMS = ("swisd", "swisd-broker", "swisd-stage", "swisd-gateway")
# the units' sandboxing lines (systemd.exec(5)) the issue asks for
SANDBOX = ("User=swisd", "StateDirectory=swisd", "CacheDirectory=swisd", "ConfigurationDirectory=swisd",
           "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
           "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes",
           "ProtectControlGroups=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
           "RestrictNamespaces=yes",
           "LockPersonality=yes", "MemoryDenyWriteExecute=yes", "SystemCallFilter=@system-service",
           "CapabilityBoundingSet=", "KillSignal=SIGTERM", "TimeoutStopSec=60", "Restart=on-failure")


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def control_fields(deb):
    """The fields of the package's control file, as a dict (continuation lines joined)."""
    text = run(["dpkg-deb", "--field", deb], check=True).stdout
    fields, key = {}, None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.strip()
    return fields


def needed_packages(binary, problems):
    """The Debian packages holding the shared libraries `binary` needs
    (readelf's NEEDED entries, at the paths the loader picks per ldd, owned
    per dpkg-query), without the ":arch" suffix; what could not be resolved
    is appended to `problems`."""
    dyn = run(["readelf", "-d", binary], check=True).stdout
    sonames = re.findall(r"\(NEEDED\).*\[(.+?)\]", dyn)
    loaded = dict(re.findall(r"^\s*(\S+) => (/\S+)", run(["ldd", binary], check=True).stdout, re.M))
    pkgs = set()
    if not sonames:
        problems.append(f"{binary}: no NEEDED entries")
    for so in sonames:
        if so not in loaded:
            problems.append(f"{os.path.basename(binary)} needs {so}, which the loader does not find")
            continue
        for path in (loaded[so], os.path.realpath(loaded[so])):  # an alternatives link is owned by nobody
            owner = run(["dpkg-query", "-S", path])
            if owner.returncode == 0:
                break
        if owner.returncode == 0:
            pkgs.add(owner.stdout.split(":")[0].split(",")[0].strip())
        else:
            problems.append(f"no package holds {loaded[so]}")
    return pkgs


def depends_closure(depends):
    """The packages in `depends` and every package (alternatives included)
    their installed versions depend on: libopenblas0 is satisfied by
    libopenblas0-pthread, which is what holds the library."""
    names = set(depends)
    for d in depends:
        r = run(["dpkg-query", "-W", "-f", "${Depends}", d])
        if r.returncode == 0:
            names |= {alt.strip().split()[0].split(":")[0] for rel in r.stdout.split(",") for alt in rel.split("|")
                      if alt.strip()}
    return names


# The launcher each unpacked program runs behind: what the units' NoNewPrivileges=,
# MemoryDenyWriteExecute=, RestrictAddressFamilies= and SystemCallFilter= (with
# SystemCallErrorNumber=EPERM, SystemCallArchitectures=native) do, done with prctl(2) and two
# seccomp filters (seccomp(2): classic BPF over struct seccomp_data, nr at byte 0, arch at 4,
# args[0] at 16): socket(2) of another family fails with EAFNOSUPPORT, as systemd's filter
# does, and a system call off the unit's list with EPERM. All of it holds across execve(2).
# Filled in: PROGRAM, FAMILIES and SYSCALLS (numbers; SYSCALLS empty: no such filter), MDWE.
LAUNCHER = """#!{python}
import ctypes, os, struct, sys
PROGRAM, FAMILIES, SYSCALLS, MDWE = {program!r}, {families!r}, {syscalls!r}, {mdwe!r}
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
def ins(code, jt, jf, k):  # struct sock_filter
    return struct.pack("HBBI", code, jt, jf, k)
LD, JEQ, RET = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
ARCH, ALLOW, ERRNO = 0xc000003e, 0x7fff0000, 0x00050000  # AUDIT_ARCH_X86_64, SECCOMP_RET_*
allow = 6 + len(FAMILIES)  # index of the final "allow"
families = [ins(LD, 0, 0, 4), ins(JEQ, 0, allow - 2, ARCH),  # another arch: the other filter
            ins(LD, 0, 0, 0), ins(JEQ, 0, allow - 4, 41),  # not __NR_socket: allow
            ins(LD, 0, 0, 16)]
families += [ins(JEQ, allow - 6 - i, 0, f) for i, f in enumerate(FAMILIES)]
families += [ins(RET, 0, 0, ERRNO | 97), ins(RET, 0, 0, ALLOW)]  # EAFNOSUPPORT
calls = [ins(LD, 0, 0, 4), ins(JEQ, 1, 0, ARCH), ins(RET, 0, 0, ERRNO | 1), ins(LD, 0, 0, 0)]
for nr in SYSCALLS:
    calls += [ins(JEQ, 0, 1, nr), ins(RET, 0, 0, ALLOW)]
calls += [ins(RET, 0, 0, ERRNO | 1)]  # EPERM
keep = []
def install(prog):  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER, struct sock_fprog
    code = ctypes.create_string_buffer(b"".join(prog))
    fprog = ctypes.create_string_buffer(struct.pack("HxxxxxxQ", len(prog), ctypes.addressof(code)))
    keep.append((code, fprog))
    return libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0)
if libc.prctl(38, 1, 0, 0, 0) != 0 or (MDWE and libc.prctl(65, 1, 0, 0, 0) != 0) or install(families) != 0 \\
        or (SYSCALLS and install(calls) != 0):  # NO_NEW_PRIVS, SET_MDWE
    sys.exit("launcher: prctl: errno %d" % ctypes.get_errno())
os.execv(PROGRAM, [PROGRAM] + sys.argv[1:])
"""
FAMILY = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16}


def unit_families(unitdir, unit):
    """The socket families a unit's RestrictAddressFamilies= allows, as numbers."""
    m = re.search(r"^RestrictAddressFamilies=(.+)$", open(os.path.join(unitdir, unit + ".service")).read(), re.M)
    names = m.group(1).split() if m else []
    h.check(names and all(n in FAMILY for n in names), f"6) {unit}'s RestrictAddressFamilies= is an allow list "
                                                       f"of known families ({names})")
    return [FAMILY[n] for n in names if n in FAMILY]


_GROUPS = {}


def syscall_group(name):
    """The system calls of a systemd filter group (e.g. "@system-service"), nested groups expanded."""
    if name not in _GROUPS:
        out = run(["systemd-analyze", "syscall-filter", name], check=True).stdout.splitlines()[1:]
        words = [w.strip() for w in out if w.strip() and not w.strip().startswith("#")]
        _GROUPS[name] = set().union(*[syscall_group(w) if w.startswith("@") else {w} for w in words])
    return _GROUPS[name]


def unit_syscalls(unitdir, unit):
    """The numbers of the x86-64 system calls a unit's SystemCallFilter= lines allow (an allow list,
    then "~" lines taking sets away: systemd.exec(5)), or [] when it cannot be worked out here."""
    header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
    if os.uname().machine != "x86_64" or not os.path.exists(header) or not shutil.which("systemd-analyze"):
        return []
    numbers = {m[0]: int(m[1]) for m in re.findall(r"#define __NR_(\w+) (\d+)", open(header).read())}
    lines = re.findall(r"^SystemCallFilter=(.+)$", open(os.path.join(unitdir, unit + ".service")).read(), re.M)
    allowed, denied = set(), set()
    for line in lines:
        deny = line.startswith("~")
        for w in line.lstrip("~").split():
            (denied if deny else allowed).update(syscall_group(w) if w.startswith("@") else {w})
    h.check(allowed and not lines[0].startswith("~"), f"6) {unit}'s SystemCallFilter= starts with an allow list")
    return sorted(numbers[n] for n in allowed - denied if n in numbers)


class ScratchBins:
    """The unpacked programs, each behind a LAUNCHER with the socket families
    and system calls of the unit that runs it (the swisd tool: the
    volunteer's), no_new_privs and, when the kernel has it (6.3+),
    PR_SET_MDWE (no memory both writable and executable)."""

    def __init__(self, root, wrapdir, mdwe):
        self.root = root
        unitdir = os.path.join(root, "lib", "systemd", "system")
        names = {"swisd": ("swisd", "swisd-volunteer"), "broker": ("swisd-broker", "swisd-broker"),
                 "stage": ("swisd-stage", "swisd-volunteer"), "gateway": ("swisd-gateway", "swisd-gateway")}
        for attr, (prog, unit) in names.items():
            path = os.path.join(wrapdir, prog)
            with open(path, "w") as f:
                f.write(LAUNCHER.format(python=sys.executable, program=os.path.join(root, "usr", "bin", prog),
                                        families=unit_families(unitdir, unit), mdwe=mdwe,
                                        syscalls=unit_syscalls(unitdir, unit)))
            os.chmod(path, 0o755)
            setattr(self, attr, path)


def mdwe_available():
    """Whether this kernel has PR_SET_MDWE (tried in a child, which exits)."""
    r = subprocess.run([sys.executable, "-c", "import ctypes, sys; l = ctypes.CDLL(None); "
                        "sys.exit(0 if l.prctl(65, 1, 0, 0, 0) == 0 and l.prctl(66, 0, 0, 0, 0) == 1 else 1)"])
    return r.returncode == 0


def check_units(root, contents):
    check = h.check
    unitdir = os.path.join(root, "lib", "systemd", "system")
    for u in UNITS:
        path = os.path.join(unitdir, u + ".service")
        if not check(os.path.exists(path), f"4) {u}.service is in /lib/systemd/system"):
            continue
        text = open(path).read()
        lines = {line.strip() for line in text.splitlines()}
        absent = [s for s in SANDBOX if s not in lines]
        check(not absent, f"4) {u}: every sandboxing line is there (missing: {absent})")
        envfile, var = ENV_VAR[u]
        check(f"EnvironmentFile=/etc/swisd/{envfile}" in lines and f"./etc/swisd/{envfile}" in contents,
              f"4) {u} reads /etc/swisd/{envfile}, which the package ships")
        envtext = open(os.path.join(root, "etc", "swisd", envfile)).read()
        check(re.search(rf'^{var}="[^"]+"$', envtext, re.M) is not None and f"${var}" in text,
              f"4) {envfile} sets {var} and the unit's ExecStart expands it")
    exec_lines = {u: re.search(r"^ExecStart=(.*)$", open(os.path.join(unitdir, u + ".service")).read(), re.M)
                  for u in UNITS if os.path.exists(os.path.join(unitdir, u + ".service"))}
    check(exec_lines.get("swisd-volunteer") and
          exec_lines["swisd-volunteer"].group(1) == "/usr/bin/swisd volunteer $SWISD_VOLUNTEER_ARGS",
          "4) the volunteer unit runs `/usr/bin/swisd volunteer $SWISD_VOLUNTEER_ARGS`")
    check(re.search(r"^Nice=\d+$", open(os.path.join(unitdir, "swisd-volunteer.service")).read(), re.M) is not None,
          "4) the volunteer runs niced")
    if not shutil.which("systemd-analyze"):
        missing("systemd-analyze is missing (apt-get install systemd)", "the units are not verified")
        return
    # systemd is not PID 1 here: verify copies whose ExecStart names the unpacked programs
    vdir = tempfile.mkdtemp(prefix="units-", dir=h.logdir)
    for u in UNITS:
        text = open(os.path.join(unitdir, u + ".service")).read()
        with open(os.path.join(vdir, u + ".service"), "w") as f:
            f.write(text.replace("ExecStart=/usr/bin/", f"ExecStart={root}/usr/bin/"))
    r = run(["systemd-analyze", "verify"] + [os.path.join(vdir, u + ".service") for u in UNITS])
    check(r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(),
          f"4) systemd-analyze verify passes the units with nothing to say ({r.returncode}: {r.stderr.strip()[-400:]})")
    for u in UNITS:
        r = run(["systemd-analyze", "security", "--offline=yes", os.path.join(vdir, u + ".service")])
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
        check(m is not None and float(m.group(1)) <= 2.0,
              f"4) systemd-analyze security rates {u} at most 2.0 ({m.group(1) if m else r.stderr.strip()[-200:]})")


MAINT_SCRIPT = r"""
set -e
mount --make-rprivate /
t=$(mktemp -d); mount -t tmpfs none "$t"; cp -a /etc/. "$t"/; mount --bind "$t" /etc
mount -t tmpfs none /var/lib; mount -t tmpfs none /var/cache
for i in 1 2; do sh -e "$CTRL/postinst" configure; done
getent passwd swisd | cut -d: -f3,6
stat -c '%U:%G %a' /var/lib/swisd /var/cache/swisd
for i in 1 2; do sh -e "$CTRL/prerm" remove; sh -e "$CTRL/postrm" remove; sh -e "$CTRL/postrm" purge; done
getent passwd swisd || echo "user gone"
getent group swisd || echo "group gone"
[ -e /var/lib/swisd ] || echo "state gone"
"""


def check_maintainer_scripts(deb):
    check = h.check
    ctrl = tempfile.mkdtemp(prefix="control-", dir=h.logdir)
    subprocess.run(["dpkg-deb", "--control", deb, ctrl], check=True)
    for s in ("postinst", "prerm", "postrm"):
        mode = os.stat(os.path.join(ctrl, s)).st_mode
        check(mode & stat.S_IXUSR, f"2) the package's {s} is executable")
    if not shutil.which("unshare"):
        missing("unshare is missing (apt-get install util-linux)", "the maintainer scripts are not run")
        return
    if run(["unshare", "-m", "true"]).returncode != 0:
        print("SKIP: no private mount namespace here (unshare -m as root): the maintainer scripts are not run",
              flush=True)
        return
    r = run(["unshare", "-m", "sh", "-c", MAINT_SCRIPT], env=dict(os.environ, CTRL=ctrl), timeout=120)
    out = r.stdout.split("\n")
    check(r.returncode == 0, f"5) postinst twice, then prerm/postrm remove and purge twice succeed ({r.stderr[-300:]})")
    uid_home = out[0].split(":") if out and out[0] else []
    check(len(uid_home) == 2 and int(uid_home[0]) < 1000 and uid_home[1] == "/var/lib/swisd",
          f"5) postinst makes one system user swisd with home /var/lib/swisd ({out[:1]})")
    check(out[1:3] == ["swisd:swisd 750", "swisd:swisd 750"],
          f"5) /var/lib/swisd and /var/cache/swisd belong to swisd, mode 750 ({out[1:3]})")
    check(out[3:6] == ["user gone", "group gone", "state gone"],
          f"5) postrm purge removes user, group, state ({out[3:]})")


def host_state():
    """What the namespace must not change on the host: swisd's dpkg status and user."""
    return (run(["dpkg-query", "-W", "-f", "${Status}", "swisd"]).stdout, run(["getent", "passwd", "swisd"]).stdout)


def check_dpkg_install(deb):
    """tests/package_install.sh: dpkg and the units without systemd, in private namespaces."""
    check = h.check
    tools = [t for t in ("unshare", "setpriv", "ip", "curl") if not shutil.which(t)]
    if tools:
        missing(f"{', '.join(tools)} missing (apt-get install util-linux iproute2 curl)",
                "the package is not installed with dpkg nor its units run")
        return
    probe = run(["unshare", "-mn", "sh", "-c", "t=$(mktemp -d) && mount -t tmpfs none $t && mkdir $t/u $t/w && "
                 "mount -t overlay overlay -o lowerdir=/etc,upperdir=$t/u,workdir=$t/w /etc && ip link set lo up"])
    if probe.returncode != 0:
        print("SKIP: no private mount and network namespace with overlayfs here (unshare -mn as root): the "
              f"package is not installed with dpkg nor its units run ({probe.stderr.strip()[-200:]})", flush=True)
        return
    host = host_state()
    r = run(["unshare", "-mn", "sh", os.path.join(SRC, "tests", "package_install.sh"), deb], timeout=600)
    check(host_state() == host, "5) the host's dpkg database and users are as before")
    facts = dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)
    logs = "; ".join(f"{k}: {v}" for k, v in facts.items() if k.endswith(" log"))
    check(r.returncode == 0 and facts.get("overlays") == "yes",
          "5) package_install.sh runs to its end" + ("" if r.returncode == 0 else f" ({r.stderr[-600:]})"))
    check(facts.get("status") == "install ok installed", f"5) dpkg installs the package ({facts.get('status')})")
    check(facts.get("user") == "swisd:/var/lib/swisd:/usr/sbin/nologin" and facts.get("state") == "swisd 750",
          f"5) its postinst makes the user swisd and /var/lib/swisd ({facts.get('user')}, {facts.get('state')})")
    check(facts.get("reinstall") == "install ok installed" and facts.get("edit kept") == "# edited",
          "5) a reinstall runs the maintainer scripts again and keeps an edited conffile "
          f"({facts.get('reinstall')}, {facts.get('edit kept')})")
    check(facts.get("demo") == "0 model /usr/share/swisd/models/stories260K.gguf Once upon a time",
          f"5) the installed /usr/bin/swisd demo runs on /usr/share/swisd's model ({facts.get('demo')})")
    # the units, as systemd would run them
    ok = facts.get("broker") == "listening on tcp://0.0.0.0:5555" and facts.get("gateway") == "http on port 8080"
    check(ok, f"5) the broker and gateway units listen where their /etc/swisd flags say "
              f"({facts.get('broker')}, {facts.get('gateway')})" + ("" if ok else f" [{logs}]"))
    cached = (facts.get("cache") or "").split()
    check(len(cached) == 3 and cached[0] == "swisd" and cached[2].endswith("/stories260K.gguf") and
          (facts.get("fetched") or "").startswith("fetched layers 0-4 of stories260K: "),
          f"5) the volunteer unit fetched every layer from the gateway's --serve-model into /var/cache/swisd as the "
          f"user swisd ({facts.get('cache')}; {facts.get('fetched')})")
    keys = (facts.get("keys") or "").split()
    check("broker.key" in keys and "gateway.key" in keys and len(keys) == 3 and facts.get("key owner") == "swisd 600",
          f"5) each unit's daemon made its key in /var/lib/swisd as the user swisd ({keys}, {facts.get('key owner')})")
    want = dict(greedy_refs())["Once upon a time"]
    try:
        text = json.loads(facts.get("completion", ""))["choices"][0]["text"]
    except (ValueError, KeyError, IndexError, TypeError):
        text = None
    ok = text is not None and ("Once upon a time" + text).strip() == want.strip()
    check(ok, "5) a completion through the units' gateway (HTTP on 127.0.0.1:8080) gives the reference text" +
          ("" if ok else f" ({facts.get('completion', '')[:300]}) [{logs}]"))
    check(facts.get("purged") in ("none", "unknown ok not-installed") and
          facts.get("after purge") == "no-user no-state no-etc",
          f"5) dpkg --purge removes the package, its user, state and /etc/swisd ({facts.get('purged')}, "
          f"{facts.get('after purge')})")


def body(_h):
    check = h.check
    work = tempfile.mkdtemp(prefix="deb-", dir=h.logdir)
    args = [os.path.join(SRC, "scripts", "package-deb"), "--out", work,
            "--build-dir", os.path.join(build, "package-deb")]
    web_built = os.path.exists(os.path.join(SRC, "web", "dist", "index.html"))
    if not web_built:
        missing("web/dist is not built (scripts/dev build, with npm)",
                "the package is made without the dashboard and its checks are skipped")
        args.append("--no-web")
    r = run(args, timeout=1500)
    debs = [f for f in os.listdir(work) if f.endswith(".deb")]
    if not check(r.returncode == 0 and len(debs) == 1,
                 "1) scripts/package-deb builds one .deb" + ("" if r.returncode == 0 else f": {r.stderr[-1500:]}")):
        return
    deb = os.path.join(work, debs[0])
    check(r.stdout.strip().splitlines()[-1] == deb, "1) and prints its path last")

    # 2) control
    info = run(["meson", "introspect", build, "--projectinfo"], check=True).stdout
    version = re.search(r'"version":\s*"([^"]+)"', info).group(1)
    arch = run(["dpkg", "--print-architecture"], check=True).stdout.strip()
    check(debs[0] == f"swisd_{version}_{arch}.deb", f"2) the file is swisd_{version}_{arch}.deb ({debs[0]})")
    f = control_fields(deb)
    check(f.get("Package") == "swisd" and f.get("Version") == version and f.get("Architecture") == arch,
          f"2) Package swisd, Version {version} (meson's), Architecture {arch} ({f.get('Version')}, "
          f"{f.get('Architecture')})")
    check(all(f.get(k) for k in ("Maintainer", "Description", "Installed-Size", "Section", "Priority")),
          "2) Maintainer, Description, Installed-Size, Section, Priority are set")
    depends = {d.strip().split()[0] for d in f.get("Depends", "").split(",") if d.strip()}
    conffiles = run(["dpkg-deb", "--info", deb, "conffiles"], check=True).stdout.split()
    check(sorted(conffiles) == ["/etc/swisd/bootstrap.txt", "/etc/swisd/broker.env", "/etc/swisd/gateway.env",
                                "/etc/swisd/volunteer.env"],
          f"2) the files under /etc/swisd are conffiles ({conffiles})")
    check("adduser" in depends, "2) Depends names adduser (the postinst makes the user with it)")
    if shutil.which("lintian"):
        r = run(["lintian", "--tag-display-limit", "0", deb], timeout=300)
        errors = [line for line in r.stdout.splitlines() if line.startswith("E:")]
        check(not errors, f"2) lintian reports no errors ({errors})")
    else:
        missing("lintian is missing (apt-get install lintian)", "the package is not linted")
    check_maintainer_scripts(deb)
    check_dpkg_install(deb)

    contents = run(["dpkg-deb", "--contents", deb], check=True).stdout
    want = [f"./usr/bin/{p}" for p in PROGRAMS] + [f"./lib/systemd/system/{u}.service" for u in UNITS] + \
        ["./usr/share/swisd/models/stories260K.gguf", "./etc/swisd/broker.env", "./etc/swisd/gateways/",
         "./usr/share/doc/swisd/copyright", "./usr/share/doc/swisd/changelog.gz"] + \
        [f"./usr/share/man/man1/{p}.1.gz" for p in PROGRAMS]
    if web_built:
        want.append("./usr/share/swisd/web/dist/index.html")
    listed = {line.split()[-1] for line in contents.splitlines() if line.strip()}
    check(all(w in listed for w in want), f"2) --contents lists {[w for w in want if w not in listed] or 'all of'} "
                                          "programs, units, configuration, model, dashboard")
    check(all(line.split()[1] == "root/root" for line in contents.splitlines() if line.strip()),
          "2) every file belongs to root/root (--root-owner-group)")

    # 3) unpacked
    root = tempfile.mkdtemp(prefix="root-", dir=h.logdir)
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    need, problems = set(), []
    for p in PROGRAMS:
        binary = os.path.join(root, "usr", "bin", p)
        dyn = run(["readelf", "-d", binary], check=True).stdout
        check("RPATH" not in dyn and "RUNPATH" not in dyn, f"3) {p} has no RPATH/RUNPATH (system libraries only)")
        need |= needed_packages(binary, problems)
    closure = depends_closure(depends)
    absent = sorted(n for n in need if n not in closure)
    check(need and not absent and not problems, f"3) Depends covers the package of every shared library the "
                                                 f"programs need ({len(need)} packages; missing {absent}; {problems})")
    check_units(root, contents)

    # 6) the swarm from the scratch root
    mdwe = mdwe_available()
    if not mdwe:
        print("SKIP: this kernel has no PR_SET_MDWE (6.3+): the swarm runs without W^X enforcement", flush=True)
    if os.uname().machine != "x86_64":
        print("SKIP: the launcher's socket-family filter knows x86-64 only: here it allows every family", flush=True)
    bins = ScratchBins(root, tempfile.mkdtemp(prefix="launch-", dir=h.logdir), mdwe)
    if os.uname().machine == "x86_64":  # the launcher's filter holds: Python behind it gets no AF_PACKET socket
        probe = os.path.join(h.logdir, "launch-probe")
        with open(probe, "w") as f:
            unitdir = os.path.join(root, "lib", "systemd", "system")
            f.write(LAUNCHER.format(python=sys.executable, program=sys.executable, mdwe=mdwe,
                                    families=unit_families(unitdir, "swisd-volunteer"),
                                    syscalls=unit_syscalls(unitdir, "swisd-volunteer")))
        os.chmod(probe, 0o755)
        r = run([probe, "-c", "import os, socket\nsocket.socket(socket.AF_INET).close()\nfor f in ("
                 "lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW), lambda: os.chroot('/')):\n"
                 "    try:\n        f()\n    except OSError as e:\n        print(e.errno)"])
        check(r.returncode == 0 and r.stdout.split() == ["97", "1"],
              "6) the launcher refuses a socket family the units do not allow (EAFNOSUPPORT) and a system call "
              f"off their list (chroot: EPERM) ({r.stdout.split()}{r.stderr[-200:]})")
    os.environ.pop("LD_LIBRARY_PATH", None)
    os.chdir(h.logdir)  # nothing found through the working directory
    data = os.path.join(root, "usr", "share", "swisd")
    model = os.path.join(data, "models", "stories260K.gguf")
    marker = f"<!-- unpacked into {root} -->"
    if web_built:
        with open(os.path.join(data, "web", "dist", "index.html"), "a") as f:
            f.write(marker + "\n")
    # the daemons with the flags of the packaged /etc/swisd/*.env, as the units run them: only the
    # folders move into the scratch root and the fixed ports become free ones
    state = os.path.join(h.logdir, "var-lib", "swisd")  # the units' StateDirectory, mode 750
    os.makedirs(state, mode=0o750)
    # the units' XDG_CONFIG_HOME=%S: the daemons' per-user folder (default keys) is the state folder
    daemon_env = dict(os.environ, XDG_CONFIG_HOME=os.path.dirname(state))
    etc = os.path.join(root, "etc", "swisd")
    cache = os.path.join(h.logdir, "var-cache", "swisd")  # the volunteer unit's CacheDirectory
    os.makedirs(cache, mode=0o750)
    moves = {"/var/lib/swisd": state, "/etc/swisd": etc, "/usr/share/swisd": data, "/var/cache/swisd": cache}

    def env_args(name, ports):
        text = open(os.path.join(etc, name)).read()
        m = re.search(r'^SWISD_\w+_ARGS="([^"]*)"$', text, re.M)
        args = m.group(1).split() if m else []
        for fixed, free in ports.items():
            h.check(fixed in args, f"6) {name} has {fixed}")
            args = [free if a == fixed else a for a in args]
        for a in args:  # every absolute path is one of the package's folders
            if a.startswith("/") and not any(a == d or a.startswith(d + "/") for d in moves):
                h.check(False, f"6) {name}: {a} is under none of the package's folders")
        return [next((moved + a[len(d):] for d, moved in moves.items() if a == d or a.startswith(d + "/")), a)
                for a in args]

    # the operator's steps (docs/volunteer.md): the gateway's key in the broker's --gateways folder,
    # the broker's endpoint in bootstrap.txt
    subprocess.run([bins.swisd, "keygen", "--out", os.path.join(state, "gateway.key")], check=True,
                   capture_output=True)
    shutil.copy(os.path.join(state, "gateway.key"), os.path.join(etc, "gateways"))
    b, ep = h.start("broker", [bins.broker] + env_args("broker.env", {"tcp://0.0.0.0:5555": "tcp://127.0.0.1:*"}),
                    ready="swisd-broker: listening on", env=daemon_env)
    with open(os.path.join(etc, "bootstrap.txt"), "a") as f:
        f.write(ep + "\n")
    vol_args = env_args("volunteer.env", {})
    # the model by URL: a manifest signed with the operator's (here the gateway's) key, the GGUF and the
    # manifest on a loopback HTTP server (tests/shard_server.py, counting bytes), the volunteer told both
    man = os.path.join(h.logdir, "manifest.json")
    srv = ShardServer({"/stories260K.gguf": model, "/manifest.json": man})
    r = run([bins.swisd, "manifest", model, "--url", srv.url("/stories260K.gguf"), "--key",
             os.path.join(state, "gateway.key"), "-o", man])
    signer = next((ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("signer:")), "")
    h.start("volunteer", [bins.swisd, "volunteer"] + vol_args + ["--manifest", srv.url("/manifest.json"),
                                                                 "--manifest-key", signer, "--max-threads", "1"],
            ready="swisd-stage:", env=daemon_env, timeout=60)
    shards = [os.path.join(r_, f) for r_, _, fs in os.walk(cache) for f in fs if f.endswith(".gguf")]
    check(len(shards) == 1 and os.path.getsize(shards[0]) == os.path.getsize(model) and
          srv.bytes_sent < os.path.getsize(model) * 1.05,
          f"6) the volunteer fetched the model's layers into the packaged cache folder ({shards}, "
          f"{srv.bytes_sent} bytes served)")
    gw, rpc = h.start("gateway", [bins.gateway] + env_args("gateway.env", {"tcp://127.0.0.1:5600": "tcp://127.0.0.1:*",
                                                                           "127.0.0.1:8080": "127.0.0.1:0"}),
                      ready="swisd-gateway: rpc on", env=daemon_env)
    port = gw.wait_line("swisd-gateway: http on port")
    keys = sorted(f for f in os.listdir(state) if f.endswith(".key"))
    check(port is not None and "broker.key" in keys and len(keys) == 3,
          f"6) broker, volunteer and gateway run on the packaged flags, their keys made in the state folder ({keys})")
    check(wait_until(lambda: generate(bins, rpc, "Once", 1, 30)[0] == 0, 30, 0.3),
          "6) the gateway finds a route through the volunteer")
    for prompt, want_text in greedy_refs()[:3]:
        g = run([bins.swisd, "generate", "--gateway", rpc, "-p", prompt, "-n", "100", "--temp", "0"], timeout=120)
        ok = g.returncode == 0 and g.stdout.strip() == want_text.strip()
        check(ok, f"6) the unpacked swarm gives the reference text for {prompt!r}" +
              ("" if ok else f" (status {g.returncode}, got {g.stdout.strip()!r}: {g.stderr[-300:]})"))
    if web_built:
        with urllib.request.urlopen(f"http://127.0.0.1:{int(port)}/", timeout=10) as resp:
            page = resp.read().decode("utf-8", "replace")
        check(marker in page, "6) the gateway serves the dashboard of the unpacked data folder")
    d = run([bins.swisd, "demo", "-n", "8"], timeout=180)
    ok = d.returncode == 0 and f"model {os.path.realpath(model)} " in d.stderr and d.stdout.startswith("Once upon")
    check(ok, "6) `swisd demo` from the scratch root runs on the packaged model (found in its data folder)" +
          ("" if ok else f" ({d.returncode}: {d.stderr[-400:]})"))


h.run(body)
