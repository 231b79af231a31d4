"""The reference family files of $SWISD_TEST_DATA/refs/families (README.md
there): their checksums, and the f16 files the folder leaves out,
regenerated with its synth_family.py into a cache folder. Python 3 standard
library only."""
import hashlib
import os
import re
import subprocess
import sys
import tempfile

import harness

SEED = "20260701"


def readme_sha256(folder):
    """{file name: sha256} from the README's checksum table."""
    sums = {}
    with open(os.path.join(folder, "README.md"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\|\s*([\w.-]+\.gguf)\s*\|\s*\d+\s*\|[^|]*\|\s*`([0-9a-f]{64})`\s*\|", line)
            if m:
                sums[m.group(1)] = m.group(2)
    return sums


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def cache_dir():
    """$SWISD_FAMILY_CACHE, else swisd-families-UID under the system temp dir."""
    d = os.environ.get("SWISD_FAMILY_CACHE") or os.path.join(tempfile.gettempdir(),
                                                              f"swisd-families-{os.getuid()}")
    os.makedirs(d, exist_ok=True)
    return d


def model_file(folder, stem, sums):
    """(path, None) of the GGUF of `stem` (e.g. "qwen3-f16"): the folder's, or
    regenerated into cache_dir() and checked against the README's sha256;
    (None, reason) when neither works."""
    name = stem + ".gguf"
    path = os.path.join(folder, name)
    if os.path.exists(path):
        return path, None
    family, typ = stem.rsplit("-", 1)
    if typ != "f16" or name not in sums:
        return None, f"{name} is neither in {folder} nor regenerable (only f16 files are)"
    path = os.path.join(cache_dir(), name)
    if os.path.exists(path) and sha256(path) == sums[name]:
        return path, None
    tmp = path + f".{os.getpid()}.tmp"
    spm = os.path.join(harness.test_data_dir(), "models", "stories260K", "stories260K.f32.gguf")
    r = subprocess.run([sys.executable, os.path.join(folder, "synth_family.py"), family, tmp, "--seed", SEED,
                        "--spm-vocab", spm], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return None, f"synth_family.py {family}: {r.stderr[-400:]}"
    got = sha256(tmp)
    if got != sums[name]:
        os.unlink(tmp)
        return None, f"regenerated {name} has sha256 {got}, the README lists {sums[name]}"
    os.replace(tmp, path)
    return path, None
