"""Test points (common/testhook.h) live only in test builds: the binaries of
the build under test carry them, the ones `make release` and `make install`
ship do not (neither the environment variable's name nor the crash message
is in them), unless a test asks for them with RELEASE_TEST_HOOKS=1. The
Debian packages are checked in test_packaging.py (same install targets)."""

import os
import subprocess
import tarfile

import pytest

from conftest import ROOT, bin_path
from release_util import build_is_asan, clean_make_env, run_make_release

MARKERS = (b"TANDEM_TEST_CRASH_AT", b"test hook: crashing at")

pytestmark = pytest.mark.skipif(
    build_is_asan(os.environ.get("TANDEM_BUILD") or os.path.join(ROOT, "build")),
    reason="what is linked is the same under ASan; checked by the normal e2e run")


def markers_in(path):
    with open(path, "rb") as f:
        data = f.read()
    return [m.decode() for m in MARKERS if m in data]


def release_bins(build_dir, tmp_path, name, **kw):
    out = str(tmp_path / (name + ".tar.gz"))
    run_make_release(build_dir, "3.1.4", out, **kw)
    dest = tmp_path / name
    with tarfile.open(out, "r:gz") as t:
        t.extractall(dest)
    bins = sorted(os.listdir(dest / "bin"))
    assert bins == ["tandem-agent", "tandem-updater"], bins
    return {b: str(dest / "bin" / b) for b in bins}


def test_test_build_has_points():
    # What the other checks look for is really there when hooks are compiled in.
    for prog in ("tandem-updater", "tandem-launcher", "tandem-agent", "tandem"):
        assert markers_in(bin_path(prog)) == list(m.decode() for m in MARKERS), prog


def test_release_has_no_points(build_dir, tmp_path):
    for name, path in release_bins(build_dir, tmp_path, "shipped").items():
        assert markers_in(path) == [], name
    # The explicit test switch keeps them, for the self-update crash sweeps.
    hooked = release_bins(build_dir, tmp_path, "hooked", test_hooks=True)
    assert markers_in(hooked["tandem-updater"]) == [m.decode() for m in MARKERS]


def test_install_has_no_points(build_dir, tmp_path):
    dest = str(tmp_path / "dest")
    argv = ["make", "-s", "-j2", "-C", ROOT, "BUILD=" + build_dir, "SAN=0", "VERSION=1.0.0",
            "DESTDIR=" + dest, "install"]
    r = subprocess.run(argv, capture_output=True, text=True, env=clean_make_env(), timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    progs = ["usr/local/sbin/tandem-updater", "usr/local/sbin/tandem-agent",
             "usr/local/sbin/tandem-launcher", "usr/local/bin/tandem"]
    for prog in progs:
        assert markers_in(os.path.join(dest, prog)) == [], prog
    seed = os.path.join(dest, "usr/local/lib/tandem/tandem-agent-release.tar.gz")
    with tarfile.open(seed, "r:gz") as t:
        for m in t.getmembers():
            if m.isfile() and m.name.startswith("bin/"):
                data = t.extractfile(m).read()
                assert not any(x in data for x in MARKERS), m.name
