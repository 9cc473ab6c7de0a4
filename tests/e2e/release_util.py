"""Release tarballs for end-to-end tests, built by the project's own
`make release` into the build under test (same SAN setting), so every test
pushes what an operator would push."""

import fcntl
import hashlib
import os
import shutil
import stat
import subprocess

import pytest

from conftest import ROOT


def build_san(build_dir):
    """The SAN setting the build under test was made with: "1" (ASan+UBSan),
    "thread" (TSan) or "0", from the instrumentation in its libtandem.a."""
    with open(os.path.join(build_dir, "libtandem.a"), "rb") as f:
        data = f.read()
    if b"__asan_" in data:
        return "1"
    if b"__tsan_" in data:
        return "thread"
    return "0"


def build_is_asan(build_dir):
    """True when the build under test was made with SAN=1."""
    return build_san(build_dir) == "1"


def clean_make_env():
    """The environment without the MAKEFLAGS of an enclosing make."""
    return {k: v for k, v in os.environ.items()
            if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}


def run_make_release(build_dir, version, out, kind="good", updater_kind="good", check=True,
                     timeout=600, test_hooks=False):
    """`make release` into OUT; returns the CompletedProcess (its last stdout
    line is "SHA256  OUT"). TEST_HOOKS: the binaries keep their test points
    (RELEASE_TEST_HOOKS=1), for crash tests of an updater installed from it."""
    argv = ["make", "-s", "-j2", "-C", ROOT, "BUILD=" + build_dir,
            "SAN=" + build_san(build_dir), "VERSION=" + version,
            "RELEASE_KIND=" + kind, "RELEASE_UPDATER_KIND=" + updater_kind,
            "RELEASE_TEST_HOOKS=" + ("1" if test_hooks else "0"),
            "RELEASE_OUT=" + out, "release"]
    r = subprocess.run(argv, capture_output=True, text=True, env=clean_make_env(),
                       timeout=timeout)
    if check and r.returncode != 0:
        pytest.fail("make release failed (%d):\n%s\n%s" % (r.returncode, r.stdout, r.stderr))
    return r


# The directory the test processes of one run share for release_copy()
# (set by conftest's release_cache fixture; None: no sharing, every call builds).
CACHE_DIR = None


def release_copy(build_dir, version, out, kind="good", updater_kind="good", test_hooks=False):
    """`make release` of VERSION, KIND, UPDATER_KIND (TEST_HOOKS) as the file OUT.
    `make release` gives the same bytes for the same inputs, so the run builds each
    one once, in CACHE_DIR, shared by the pytest-xdist workers under a lock, and
    every caller gets its own copy (a test may change or delete it)."""
    if CACHE_DIR is None:
        run_make_release(build_dir, version, out, kind, updater_kind, test_hooks=test_hooks)
        return out
    name = "%s-%s-%s-%s-%s" % (hashlib.sha256(os.path.abspath(build_dir).encode())
                               .hexdigest()[:8], version, kind, updater_kind,
                               "hooks" if test_hooks else "plain")
    cached = os.path.join(CACHE_DIR, name + ".tar.gz")
    os.makedirs(CACHE_DIR, exist_ok=True)
    with open(os.path.join(CACHE_DIR, name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(cached):
            run_make_release(build_dir, version, cached + ".tmp", kind, updater_kind,
                             test_hooks=test_hooks)
            os.rename(cached + ".tmp", cached)
    shutil.copyfile(cached, out)
    return out


class Releases:
    """Release tarballs cached per (version, agent kind, updater kind); with
    TEST_HOOKS, all of them keep their test points (run_make_release). Built once
    per run (release_copy)."""

    def __init__(self, build_dir, outdir, test_hooks=False):
        self.build_dir = build_dir
        self.outdir = outdir
        self.asan = build_is_asan(build_dir)
        self.test_hooks = test_hooks
        self.cache = {}

    def get(self, version, kind="good", updater_kind="good"):
        key = (version, kind, updater_kind)
        if key not in self.cache:
            out = os.path.join(self.outdir, "rel-%s-%s-%s.tar.gz" % (version, kind, updater_kind))
            release_copy(self.build_dir, version, out, kind, updater_kind,
                         test_hooks=self.test_hooks)
            self.cache[key] = out
        return self.cache[key]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_listing(root, skip=()):
    """The entries files.json lists for the tree ROOT, computed independently
    of the C code: sorted by path bytes, modes as on disk, digests with
    hashlib; files.json itself and SKIP (paths) left out."""
    entries = []
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if rel == "files.json" or rel in skip:
                continue
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                entries.append({"path": rel, "type": "symlink", "target": os.readlink(p)})
            elif stat.S_ISDIR(st.st_mode):
                entries.append({"path": rel, "type": "dir",
                                "mode": "%04o" % stat.S_IMODE(st.st_mode)})
            else:
                entries.append({"path": rel, "type": "file",
                                "mode": "%04o" % stat.S_IMODE(st.st_mode),
                                "size": st.st_size, "sha256": sha256_file(p)})
    return sorted(entries, key=lambda e: e["path"].encode())
