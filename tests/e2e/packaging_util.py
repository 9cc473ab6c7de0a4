"""The Debian packages under test, built once per test session: `make deb`
for the build under test (test_packaging.py checks them, test_systemd.py
installs them into a real systemd)."""

import functools
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, run
from release_util import build_is_asan, clean_make_env

# Shared with test_updater's releases, so the version-stamped release build is
# made once per build directory.
VERSION = "1.0.0"
PACKAGES = ("tandem-worker", "tandem-master")


def need(tool):
    path = shutil.which(tool)
    if path is None:
        pytest.fail("%s is not installed (scripts/deps.sh installs it: run make deps)" % tool)
    return path


def make(build_dir, *args, timeout=900):
    """make in the repository for the build under test (its SAN setting),
    without the MAKEFLAGS of an enclosing make."""
    need("make")
    argv = ["make", "-s", "-j2", "-C", ROOT, "BUILD=" + build_dir,
            "SAN=" + ("1" if build_is_asan(build_dir) else "0"), "VERSION=" + VERSION] + list(args)
    r = subprocess.run(argv, capture_output=True, text=True, env=clean_make_env(),
                       timeout=timeout)
    if r.returncode != 0:
        pytest.fail("%s failed (%d)\n%s\n%s" % (" ".join(argv), r.returncode, r.stdout, r.stderr))
    return r


def arch():
    return run(["dpkg", "--print-architecture"]).stdout.strip()


@functools.lru_cache(maxsize=None)
def build_debs(build_dir, version=VERSION, packages=PACKAGES):
    """{package: path of its .deb}, made by `make deb` once per session,
    VERSION and PACKAGES (a package upgrade needs only tandem-worker:
    DEB_PACKAGES). Another version (a package upgrade's) goes to
    BUILD/deb-VERSION, so BUILD/deb keeps one .deb per package (README's steps
    glob it); the objects are shared, only the version object differs."""
    need("dpkg-deb")
    need("dpkg-shlibdeps")
    need("help2man")
    deb_dir = os.path.join(build_dir, "deb" if version == VERSION else "deb-" + version)
    r = make(build_dir, "deb", "VERSION=" + version, "DEB_DIR=" + deb_dir,
             "DEB_PACKAGES=" + " ".join(packages))
    out = {}
    for p in packages:
        path = os.path.join(deb_dir, "%s_%s_%s.deb" % (p, version, arch()))
        assert "deb: " in r.stdout and os.path.exists(path), r.stdout
        out[p] = path
    return out


def deb_field(deb, field):
    return run(["dpkg-deb", "-f", deb, field]).stdout.strip()


def depends(deb):
    """Package names of DEB's Depends (versions and alternatives dropped)."""
    return {d.strip().split()[0] for d in deb_field(deb, "Depends").split(",")}
