#!/usr/bin/env python3
"""check_layout.py: the folder layout holds (README.md, "Layout").

Each folder of C sources may include headers only from the folders it is
built on: the libraries (core, protos, daemon, client) from those below them,
the daemons (broker, stage, gateway) from the libraries (and a stage from the
broker's client side), the `swisd` tool (cli) from the libraries it shares
with the daemons. Above all nothing under broker/, stage/ or gateway/ includes
a file from cli/: a daemon does not depend on the tool.

An include "x.h" is resolved by its name to the folders holding a file of that
name (its own folder first); generated protobuf-c headers (*.pb-c.h) belong
to protos/; names found in no folder (system headers) are not checked. A
folder's meson.build may not name a path under cli/ either.

Usage: check_layout.py SOURCE_ROOT   runs the self-test, then checks the
                                     tree; exit 1 with one line per offending
                                     include
       check_layout.py --self-test   checks that the checker finds a planted
                                     violation and passes a clean tree
"""
import os
import re
import sys
import tempfile

# folder -> folders whose headers it may include (itself implied)
ALLOWED = {
    "core": set(),
    "protos": {"core"},
    "identity": {"core"},
    "fetch": {"core"},
    "verify": {"core", "identity"},
    "daemon": {"core", "identity"},
    "client": {"protos", "core", "identity"},
    "broker": {"protos", "core", "daemon", "identity"},
    "stage": {"broker", "protos", "core", "daemon", "identity", "verify", "fetch"},
    "gateway": {"broker", "client", "protos", "core", "daemon", "identity", "verify"},
    "volunteer": {"broker", "protos", "core", "identity", "fetch"},
    "cli": {"client", "protos", "core", "identity", "fetch", "volunteer", "daemon"},
    "chaos": set(),
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
MESON_CLI = re.compile(r"""['"](\.\./)?cli/|include_directories\([^)]*['"](\.\./)?cli['"]""")


def check(root):
    """Offending includes under root, as 'path:line: reason' strings."""
    where = {}  # header name -> folders holding it
    for folder in ALLOWED:
        d = os.path.join(root, folder)
        for name in os.listdir(d) if os.path.isdir(d) else []:
            if name.endswith(".h"):
                where.setdefault(name, set()).add(folder)
    problems = []
    for folder, allowed in ALLOWED.items():
        d = os.path.join(root, folder)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            path = os.path.join(d, name)
            rel = os.path.join(folder, name)
            if name == "meson.build":
                with open(path, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                if folder != "cli":
                    for m in MESON_CLI.finditer(text):
                        line = text.count("\n", 0, m.start()) + 1
                        problems.append(f"{rel}:{line}: names a path under cli/")
                continue
            if not name.endswith((".c", ".h")):
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            for m in INCLUDE.finditer(text):
                inc = m.group(1)
                line = text.count("\n", 0, m.start()) + 1
                parts = os.path.normpath(os.path.join(folder, inc)).split(os.sep)
                if "/" in inc and parts[0] in ALLOWED:  # "../cli/x.h": the path says where
                    owners = {parts[0]}
                elif inc.endswith(".pb-c.h"):
                    owners = {"protos"}
                else:
                    owners = where.get(os.path.basename(inc), set())
                if not owners or folder in owners or owners & allowed:
                    continue
                problems.append(f"{rel}:{line}: includes \"{inc}\" from {'/, '.join(sorted(owners))}/ "
                                f"({folder}/ may include from {', '.join(sorted(allowed)) or 'nothing else'})")
    return problems


def self_test():
    """The checker passes a clean tree and reports each planted violation."""
    with tempfile.TemporaryDirectory() as t:
        def put(rel, text):
            os.makedirs(os.path.join(t, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(t, rel), "w") as f:
                f.write(text)
        put("core/sw_common.h", "")
        put("cli/cli_util.h", "")
        put("cli/swisd.c", '#include "cli_util.h"\n#include "sw_common.h"\n')
        put("stage/swisd_stage.c", '#include <stdio.h>\n#include "sw_common.h"\n#include "rpc.pb-c.h"\n')
        put("stage/meson.build", "executable('swisd-stage', 'swisd_stage.c')\n")
        clean = check(t)
        if clean:
            return [f"a clean tree was refused: {clean}"]
        put("stage/swisd_stage.c", '#include "sw_common.h"\n #  include "cli_util.h"\n')
        put("gateway/swisd_gateway.c", '#include "../cli/other.h"\n')
        put("broker/meson.build", "x = files('../cli/cli_util.c')\n")
        put("core/sw_x.c", '#include "sw_wire.h"\n')
        put("protos/sw_wire.h", "")
        got = check(t)
        want = ["stage/swisd_stage.c:2:", "gateway/swisd_gateway.c:1:", "broker/meson.build:1:", "core/sw_x.c:1:"]
        missed = [w for w in want if not any(g.startswith(w) for g in got)]
        out = [f"planted violation not reported: {m}" for m in missed]
        if len(got) != len(want):
            out.append(f"expected {len(want)} reports, got {got}")
        return out


def main():
    if sys.argv[1:] == ["--self-test"]:
        errs = self_test()
    elif len(sys.argv) == 2:
        errs = ["self-test: " + e for e in self_test()] + check(sys.argv[1])
    else:
        sys.exit(__doc__)
    for e in errs:
        print(e)
    print(f"check_layout: {len(errs)} problem(s)")
    sys.exit(1 if errs else 0)


if __name__ == "__main__":
    main()
