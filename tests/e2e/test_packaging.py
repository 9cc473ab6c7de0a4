"""Packaging: `make install` layout and modes, `make deb`, the packages'
fields and files (man pages, copyright, changelog), lintian on both, the
worker package extracted into a scratch root and run from there against a
bundle made by the packaged `tandem` and put in place by the packaged
`tandem-updater install-bundle`, and `systemd-analyze verify` on the unit.
The packages under a real systemd: test_systemd.py.

Every tool used here is installed by scripts/deps.sh; a missing one fails the
test (nothing is skipped).
"""

import gzip
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess

import pytest

from conftest import ROOT, Proc, free_port, port_open, run, wait_until
from packaging_util import VERSION, build_debs, deb_field, depends, make, need
from release_util import build_is_asan, clean_make_env
from worker_util import curl_run

# Packaging is about files, modes, metadata and the unit, not memory safety:
# the ASan run of the suite skips it (the packaged binaries are the normal build).
# `make deb` writes BUILD/deb/: under pytest-xdist this file shares a worker
# with test_systemd.py (conftest.py).
pytestmark = [pytest.mark.skipif(
    build_is_asan(os.environ.get("TANDEM_BUILD") or os.path.join(ROOT, "build")),
    reason="packaging is checked by the normal (non-ASan) e2e run"),
    pytest.mark.xdist_group("build-deb")]

STATEDIR = "/var/lib/tandem"

WORKER_FILES = {
    # path in the package: (type, mode)
    "etc/tandem": ("d", 0o750),
    "etc/tandem/updater.conf": ("f", 0o640),
    "etc/tandem/agent.conf": ("f", 0o640),
    "lib/systemd/system/tandem-updater.service": ("f", 0o644),
    "usr/sbin/tandem-updater": ("f", 0o755),
    "usr/sbin/tandem-agent": ("f", 0o755),
    "usr/sbin/tandem-launcher": ("f", 0o755),
    "usr/lib/tandem/tandem-agent-release.tar.gz": ("f", 0o644),
    "usr/share/doc/tandem-worker/Operations.md": ("f", 0o644),
    "usr/share/doc/tandem-worker/copyright": ("f", 0o644),
    "usr/share/doc/tandem-worker/changelog.gz": ("f", 0o644),
    "usr/share/man/man8/tandem-updater.8.gz": ("f", 0o644),
    "usr/share/man/man8/tandem-agent.8.gz": ("f", 0o644),
    "usr/share/man/man8/tandem-launcher.8.gz": ("f", 0o644),
    "usr/share/lintian/overrides/tandem-worker": ("f", 0o644),
    "var/lib/tandem": ("d", 0o750),
}
MASTER_FILES = {
    "usr/bin/tandem": ("f", 0o755),
    "usr/share/doc/tandem-master/copyright": ("f", 0o644),
    "usr/share/doc/tandem-master/changelog.gz": ("f", 0o644),
    "usr/share/man/man1/tandem.1.gz": ("f", 0o644),
    "usr/share/bash-completion/completions/tandem": ("f", 0o644),
}


def tree(root):
    """{relative path: (type, mode)} of everything under ROOT."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            t = "d" if stat.S_ISDIR(st.st_mode) else "f" if stat.S_ISREG(st.st_mode) else "?"
            out[os.path.relpath(p, root)] = (t, stat.S_IMODE(st.st_mode))
    return out


def files_only(t):
    return {k: v for k, v in t.items() if v[0] != "d"}


def unit_keys(path):
    """The unit's KEY=VALUE lines as {key: [values]}."""
    keys = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";", "[")):
                continue
            k, _, v = line.partition("=")
            keys.setdefault(k, []).append(v)
    return keys


# ---------------------------------------------------------------- make install

def test_make_install_layout(build_dir, tmp_path):
    dest = str(tmp_path / "dest")
    r = make(build_dir, "install", "DESTDIR=" + dest)
    assert "install: %s/etc/tandem/updater.conf" % dest in r.stdout
    want = {
        "usr/local/bin/tandem": ("f", 0o755),
        "usr/local/sbin/tandem-updater": ("f", 0o755),
        "usr/local/sbin/tandem-agent": ("f", 0o755),
        "usr/local/sbin/tandem-launcher": ("f", 0o755),
        "usr/local/lib/tandem/tandem-agent-release.tar.gz": ("f", 0o644),
        "usr/local/lib/systemd/system/tandem-updater.service": ("f", 0o644),
        "usr/local/share/doc/tandem/Operations.md": ("f", 0o644),
        "usr/local/share/doc/tandem/copyright": ("f", 0o644),
        "usr/local/share/doc/tandem/changelog.gz": ("f", 0o644),
        "usr/local/share/man/man1/tandem.1.gz": ("f", 0o644),
        "usr/local/share/man/man8/tandem-updater.8.gz": ("f", 0o644),
        "usr/local/share/man/man8/tandem-agent.8.gz": ("f", 0o644),
        "usr/local/share/man/man8/tandem-launcher.8.gz": ("f", 0o644),
        "usr/local/share/bash-completion/completions/tandem": ("f", 0o644),
        "etc/tandem/updater.conf": ("f", 0o640),
        "etc/tandem/agent.conf": ("f", 0o640),
    }
    got = tree(dest)
    assert files_only(got) == want
    assert got["etc/tandem"] == ("d", 0o750)
    assert got["var/lib/tandem"] == ("d", 0o750)

    for prog in ("usr/local/sbin/tandem-updater", "usr/local/sbin/tandem-agent",
                 "usr/local/sbin/tandem-launcher", "usr/local/bin/tandem"):
        out = run([os.path.join(dest, prog), "--version"]).stdout
        assert out.strip().endswith(" " + VERSION), out

    # The unit points at this PREFIX, the config at /etc/tandem, state at /var/lib/tandem.
    keys = unit_keys(os.path.join(dest, "usr/local/lib/systemd/system/tandem-updater.service"))
    assert keys["ExecStart"] == [
        "/usr/local/sbin/tandem-launcher --config /etc/tandem/updater.conf "
        "--updater /usr/local/sbin/tandem-updater "
        "-- --seed /usr/local/lib/tandem/tandem-agent-release.tar.gz"]
    assert keys["ReadWritePaths"] == [STATEDIR]
    with open(os.path.join(dest, "etc/tandem/updater.conf")) as f:
        assert re.search(r"^install_dir = /var/lib/tandem$", f.read(), re.M)

    # A second install keeps an admin's edited configuration.
    conf = os.path.join(dest, "etc/tandem/agent.conf")
    with open(conf, "a") as f:
        f.write("log_level = debug\n")
    r = make(build_dir, "install", "DESTDIR=" + dest)
    assert "keeping existing %s" % conf in r.stdout
    with open(conf) as f:
        assert f.read().endswith("log_level = debug\n")

    # uninstall removes what install put there, keeps config and state.
    make(build_dir, "uninstall", "DESTDIR=" + dest)
    assert files_only(tree(dest)) == {
        "etc/tandem/updater.conf": ("f", 0o640),
        "etc/tandem/agent.conf": ("f", 0o640),
    }
    assert os.path.isdir(os.path.join(dest, "var/lib/tandem"))


def test_install_prefix(build_dir, tmp_path):
    dest = str(tmp_path / "dest")
    make(build_dir, "install", "DESTDIR=" + dest, "PREFIX=/opt/tandem")
    got = files_only(tree(dest))
    assert "opt/tandem/sbin/tandem-updater" in got
    assert "opt/tandem/bin/tandem" in got
    keys = unit_keys(os.path.join(dest, "opt/tandem/lib/systemd/system/tandem-updater.service"))
    assert keys["ExecStart"][0].startswith("/opt/tandem/sbin/tandem-launcher ")
    assert "--updater /opt/tandem/sbin/tandem-updater " in keys["ExecStart"][0]
    assert "/opt/tandem/lib/tandem/tandem-agent-release.tar.gz" in keys["ExecStart"][0]


# ---------------------------------------------------------------- make deb

@pytest.fixture(scope="module")
def debs(build_dir):
    return build_debs(build_dir)


def test_deb_refuses_non_debian_version(build_dir):
    env = clean_make_env()
    r = subprocess.run(["make", "-C", ROOT, "BUILD=" + build_dir, "VERSION=v1", "deb"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "a Debian version starts with a digit" in r.stderr, r.stderr


def deb_contents(deb):
    """{path: (type, mode, owner)} from dpkg-deb -c."""
    out = {}
    for line in run(["dpkg-deb", "-c", deb]).stdout.splitlines():
        perms, owner, _size, _date, _time, path = line.split(None, 5)
        path = path.lstrip("./").rstrip("/")
        if not path:
            continue
        mode = 0
        for i, c in enumerate(perms[1:]):
            if c != "-":
                mode |= 1 << (8 - i)
        out[path] = ("d" if perms[0] == "d" else "f" if perms[0] == "-" else perms[0], mode, owner)
    return out


def packages_of_linked_libs(binary):
    """Debian packages owning the shared libraries BINARY loads (ldd + dpkg -S).
    One dpkg -S for all of them: each call reads the whole package database."""
    libs = []
    for line in run(["ldd", binary]).stdout.splitlines():
        m = re.search(r"=> (/\S+)", line)
        if m:
            libs.append(os.path.realpath(m.group(1)))
    # usrmerge: dpkg may know the /lib spelling of a /usr/lib path.
    spellings = {p: [p, p.replace("/usr/lib/", "/lib/", 1)] for p in libs}
    r = run(["dpkg", "-S"] + sorted({s for v in spellings.values() for s in v}), check=False)
    owner = {}
    for line in r.stdout.splitlines():
        pkgs, sep, path = line.partition(": ")
        if sep and path.startswith("/"):
            owner[path] = pkgs.split(":")[0]
    pkgs = set()
    for real, names in spellings.items():
        found = [owner[n] for n in names if n in owner]
        assert found, "no package owns %s" % real
        pkgs.add(found[0])
    return pkgs


def test_deb_fields(debs):
    w, m = debs["tandem-worker"], debs["tandem-master"]
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    info = run(["dpkg-deb", "-I", w]).stdout
    for name, deb in (("tandem-worker", w), ("tandem-master", m)):
        assert deb_field(deb, "Package") == name
        assert deb_field(deb, "Version") == VERSION
        assert deb_field(deb, "Architecture") == arch
        assert int(deb_field(deb, "Installed-Size")) > 0
    # The worker's libraries, checked independently of dpkg-shlibdeps.
    worker_deps = depends(w)
    for lib in ("libmbedtls14", "libmbedx509-1", "libmbedcrypto7", "libmicrohttpd12",
                "libarchive13", "libcjson1", "libhttp-parser2.9", "libc6", "adduser"):
        assert lib in worker_deps, (lib, worker_deps)
    master_deps = depends(m)
    assert {"libsqlite3-0", "libmbedtls14", "libc6"} <= master_deps, master_deps
    # Every dependency is a real package (installed here, since we built against it).
    for d in worker_deps | master_deps:
        run(["dpkg-query", "-W", d])
    # Conffiles and maintainer scripts.
    assert re.search(r"^\s*\d+ bytes,\s+\d+ lines\s+\*\s+postinst\s", info, re.M), info


def test_deb_control_files(debs, tmp_path):
    ctl = str(tmp_path / "ctl")
    run(["dpkg-deb", "-e", debs["tandem-worker"], ctl])
    names = sorted(os.listdir(ctl))
    assert names == ["conffiles", "control", "md5sums", "postinst", "postrm", "preinst",
                     "prerm"], names
    with open(os.path.join(ctl, "conffiles")) as f:
        assert f.read().split() == ["/etc/tandem/updater.conf", "/etc/tandem/agent.conf"]
    # The logrotate file older packages shipped is removed on upgrade (the daemons cap
    # their logs): dpkg-maintscript-helper in every script it needs.
    for s in ("preinst", "postinst", "postrm"):
        with open(os.path.join(ctl, s)) as f:
            assert "rm_conffile /etc/logrotate.d/tandem-worker" in f.read(), s
    # md5sums: every shipped file but the conffiles, with its real digest.
    root = str(tmp_path / "root")
    run(["dpkg-deb", "-x", debs["tandem-worker"], root])
    with open(os.path.join(ctl, "md5sums")) as f:
        sums = dict(reversed(line.split(None, 1)) for line in f.read().splitlines())
    assert set(sums) == {k for k, v in WORKER_FILES.items()
                         if v[0] == "f" and not k.startswith("etc/")}, sorted(sums)
    for path, digest in sums.items():
        with open(os.path.join(root, path), "rb") as f:
            assert hashlib.md5(f.read()).hexdigest() == digest, path
    for s in ("postinst", "prerm", "postrm"):
        p = os.path.join(ctl, s)
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o755
        run(["sh", "-n", p])
    with open(os.path.join(ctl, "postinst")) as f:
        post = f.read()
    assert "adduser --system" in post and "addgroup --system" in post
    # The master package has no maintainer scripts and no conffiles.
    ctl2 = str(tmp_path / "ctl2")
    run(["dpkg-deb", "-e", debs["tandem-master"], ctl2])
    assert sorted(os.listdir(ctl2)) == ["control", "md5sums"]
    # Scripts talk to systemd the Debian way (deb-systemd-invoke), never
    # start/stop with systemctl themselves.
    for name in ("postinst", "prerm", "postrm"):
        with open(os.path.join(ctl, name)) as f:
            for line in f:
                if "systemctl" in line and not line.lstrip().startswith("#"):
                    assert "daemon-reload" in line, (name, line)


def test_lintian(debs):
    """lintian finds nothing: every finding is fixed, or overridden with its
    reason in packaging/debian/PACKAGE.lintian-overrides (shipped in the
    package, where lintian reads it); pedantic and experimental tags too."""
    need("lintian")
    r = run(["lintian", "--fail-on", "error,warning,info,pedantic", "--tag-display-limit", "0",
             "-I", "-E", "--pedantic", debs["tandem-worker"], debs["tandem-master"]],
            check=False, timeout=600)
    findings = [line for line in r.stdout.splitlines() if re.match(r"^[EWIPX]: ", line)]
    assert r.returncode == 0 and findings == [], r.stdout + r.stderr
    # The overrides are used (lintian reports unused ones as findings above).
    w = deb_contents(debs["tandem-worker"])
    assert "usr/share/lintian/overrides/tandem-worker" in w


def test_man_pages_and_docs(debs, tmp_path):
    """A man page per program (from its --help and packaging/man), which man
    renders without a warning; copyright and a changelog naming this version."""
    root = str(tmp_path / "root")
    for deb in debs.values():
        run(["dpkg-deb", "-x", deb, root])
    pages = {"man1/tandem.1.gz": "tandem", "man8/tandem-updater.8.gz": "tandem-updater",
             "man8/tandem-agent.8.gz": "tandem-agent",
             "man8/tandem-launcher.8.gz": "tandem-launcher"}
    for rel, prog in pages.items():
        path = os.path.join(root, "usr/share/man", rel)
        r = run(["man", "--warnings", "-E", "UTF-8", "-l", path], env=dict(os.environ, MANWIDTH="80"))
        assert r.stderr == "", (rel, r.stderr)
        text = r.stdout
        assert re.search(r"^NAME\n\s+%s\s+-\s+\S" % re.escape(prog), text, re.M), (rel, text[:300])
        # The options come from the program's own --help.
        assert "--help" in text and "SEE ALSO" in text, rel
    r = run(["man", "-l", os.path.join(root, "usr/share/man/man8/tandem-updater.8.gz")])
    assert "install-bundle" in r.stdout
    for pkg in ("tandem-worker", "tandem-master"):
        doc = os.path.join(root, "usr/share/doc", pkg)
        with gzip.open(os.path.join(doc, "changelog.gz"), "rt") as f:
            first = f.readline()
        assert first.startswith("tandem (%s) " % VERSION), first
        with open(os.path.join(doc, "copyright")) as f:
            assert f.readline().startswith("Format: https://www.debian.org/doc/packaging-manuals/")


def test_deb_contents(debs):
    w = deb_contents(debs["tandem-worker"])
    for path, (t, mode) in WORKER_FILES.items():
        assert path in w, (path, sorted(w))
        assert w[path][:2] == (t, mode), (path, w[path])
    assert {v[2] for v in w.values()} == {"root/root"}
    assert {k for k, v in w.items() if v[0] != "d"} == \
        {k for k, v in WORKER_FILES.items() if v[0] != "d"}
    m = deb_contents(debs["tandem-master"])
    assert {k for k, v in m.items() if v[0] != "d"} == set(MASTER_FILES)
    assert m["usr/bin/tandem"][:2] == MASTER_FILES["usr/bin/tandem"]


def test_deb_depends_cover_linked_libs(debs, tmp_path):
    """ldd + dpkg -S: each library the binaries use comes from a package in
    Depends (or one that a Depends pulls in: libc6's own libraries)."""
    root = str(tmp_path / "root")
    for deb in debs.values():
        run(["dpkg-deb", "-x", deb, root])
    worker_deps = depends(debs["tandem-worker"])
    direct = {"libmbedtls14", "libmbedx509-1", "libmbedcrypto7", "libmicrohttpd12",
              "libarchive13", "libcjson1", "libhttp-parser2.9", "libc6"}
    for b in ("usr/sbin/tandem-updater", "usr/sbin/tandem-agent", "usr/sbin/tandem-launcher"):
        used = packages_of_linked_libs(os.path.join(root, b))
        assert direct & used <= worker_deps, (b, used, worker_deps)


def test_deb_binaries_have_no_test_points(debs, tmp_path):
    """The packaged binaries are built without test points (common/testhook.h):
    the crash variable's name is in none of them (test_testhook.py checks that
    the same search finds it in the test build)."""
    root = str(tmp_path / "root")
    for deb in debs.values():
        run(["dpkg-deb", "-x", deb, root])
    for b in ("usr/sbin/tandem-updater", "usr/sbin/tandem-agent", "usr/sbin/tandem-launcher",
              "usr/bin/tandem"):
        with open(os.path.join(root, b), "rb") as f:
            assert b"TANDEM_TEST_CRASH_AT" not in f.read(), b


def stub_bin(directory, log, getent_found):
    """Stand-ins for the commands the maintainer scripts change the system
    with: each records its arguments in LOG. getent answers FOUND or not;
    dpkg-statoverride knows no override."""
    os.makedirs(directory)
    for name in ("addgroup", "adduser", "deluser", "delgroup", "chown", "systemctl",
                 "deb-systemd-helper", "getent", "dpkg-statoverride", "dpkg-maintscript-helper"):
        rc = {"getent": 0 if getent_found else 2, "dpkg-statoverride": 1}.get(name, 0)
        p = os.path.join(directory, name)
        with open(p, "w") as f:
            f.write('#!/bin/sh\necho "%s $*" >> "%s"\nexit %d\n' % (name, log, rc))
        os.chmod(p, 0o755)


def run_script(script, args, root, stubs, log):
    env = dict(os.environ, DPKG_ROOT=root, PATH=stubs + ":" + os.environ["PATH"])
    open(log, "w").close()
    run(["sh", "-e", script] + args, env=env)
    with open(log) as f:
        return f.read().splitlines()


def test_maintainer_scripts(debs, tmp_path):
    """postinst/postrm run against an extracted root (DPKG_ROOT), with the
    commands that would change this machine replaced by recorders."""
    root = str(tmp_path / "root")
    run(["dpkg-deb", "-x", debs["tandem-worker"], root])
    ctl = str(tmp_path / "ctl")
    run(["dpkg-deb", "-e", debs["tandem-worker"], ctl])
    log = str(tmp_path / "calls")
    post = os.path.join(ctl, "postinst")
    new, old = str(tmp_path / "new"), str(tmp_path / "old")
    stub_bin(new, log, getent_found=False)
    stub_bin(old, log, getent_found=True)

    # First install, no tandem user yet; a mode postinst must correct.
    os.chmod(os.path.join(root, "etc/tandem"), 0o755)
    calls = run_script(post, ["configure", ""], root, new, log)
    assert "addgroup --system --quiet tandem" in calls, calls
    assert any(c.startswith("adduser --system --quiet --ingroup tandem --home /var/lib/tandem")
               and c.endswith(" tandem") for c in calls), calls
    assert "chown root:tandem %s/etc/tandem" % root in calls
    assert "chown root:tandem %s/etc/tandem/updater.conf" % root in calls
    assert "chown root:tandem %s/etc/tandem/agent.conf" % root in calls
    assert "chown tandem:tandem %s/var/lib/tandem" % root in calls
    assert "deb-systemd-helper enable tandem-updater.service" in calls
    # Not this machine's systemd: DPKG_ROOT is another system.
    assert not [c for c in calls if c.startswith("systemctl")], calls
    modes = tree(root)
    assert modes["etc/tandem"] == ("d", 0o750)
    assert modes["etc/tandem/updater.conf"] == ("f", 0o640)
    assert modes["var/lib/tandem"] == ("d", 0o750)

    # Upgrade with the user present: nothing created, nothing enabled again; the
    # logrotate file of older packages goes (dpkg-maintscript-helper does it).
    calls = run_script(post, ["configure", "0.9"], root, old, log)
    assert ("dpkg-maintscript-helper rm_conffile /etc/logrotate.d/tandem-worker  -- "
            "configure 0.9") in calls, calls
    assert not [c for c in calls if c.split()[0] in ("addgroup", "adduser",
                                                     "deb-systemd-helper")], calls

    # Purge removes configuration, state and the user.
    calls = run_script(os.path.join(ctl, "postrm"), ["purge"], root, old, log)
    assert not os.path.exists(os.path.join(root, "etc/tandem"))
    assert not os.path.exists(os.path.join(root, "var/lib/tandem"))
    assert "deluser --system --quiet tandem" in calls
    assert "deb-systemd-helper purge tandem-updater.service" in calls
    assert os.path.exists(os.path.join(root, "usr/sbin/tandem-updater"))


# ---------------------------------------------------------------- scratch root

@pytest.fixture
def scratch(debs, tmp_path):
    """Both packages extracted into one scratch root, and the host enrolled
    with the packaged CLI (its bundle in "bundle"; install_bundle() puts it
    into the root's /etc/tandem)."""
    root = str(tmp_path / "root")
    for deb in debs.values():
        run(["dpkg-deb", "-x", deb, root])
    tandem = os.path.join(root, "usr/bin/tandem")
    home = str(tmp_path / "master")
    bundle = str(tmp_path / "bundle")
    agent_port, updater_port = free_port(), free_port()
    run([tandem, "--home", home, "pki", "init"])
    run([tandem, "--home", home, "swarm", "enroll", "host1", "--address", "127.0.0.1",
         "--agent-port", str(agent_port), "--updater-port", str(updater_port), "--updater",
         "--out", bundle])
    etc = os.path.join(root, "etc/tandem")
    return {
        "root": root,
        "etc": etc,
        "bundle": bundle,
        "updater": os.path.join(root, "usr/sbin/tandem-updater"),
        "tandem": tandem,
        "home": home,
        "agent_port": agent_port,
        "updater_port": updater_port,
        "ca": os.path.join(home, "ca", "ca.crt"),
        "master": (os.path.join(home, "master", "master.crt"),
                   os.path.join(home, "master", "master.key")),
        "updater_cert": (os.path.join(etc, "updater.crt"), os.path.join(etc, "updater.key")),
    }


def install_bundle(scratch, *extra, check=True):
    """The packaged `tandem-updater install-bundle`, into the scratch root's
    /etc/tandem, the keys owned by whoever runs the tests."""
    return run([scratch["updater"], "install-bundle", "--etc", scratch["etc"],
                "--user", pwd.getpwuid(os.geteuid()).pw_name] + list(extra) +
               [scratch["bundle"]], check=check)


def etc_state(etc):
    """{name: (mode, uid, gid, content)} of the files in ETC."""
    out = {}
    for n in sorted(os.listdir(etc)):
        p = os.path.join(etc, n)
        st = os.lstat(p)
        with open(p, "rb") as f:
            out[n] = (st.st_mode, st.st_uid, st.st_gid, f.read())
    return out


def test_install_bundle_cli(scratch):
    """install-bundle as an operator meets it: a refused bundle says why and
    that /etc/tandem is unchanged (exit 1); a wrong command line exits 2; a
    good bundle is installed and summarised, and installing it again changes
    nothing."""
    etc, bundle = scratch["etc"], scratch["bundle"]
    before = etc_state(etc)
    key = os.path.join(bundle, "agent.key")
    os.rename(key, key + ".away")
    r = install_bundle(scratch, check=False)
    assert r.returncode == 1, r
    assert r.stderr == ("tandem-updater: install-bundle: bundle %s is incomplete: agent.key "
                        "missing (a bundle of `tandem swarm enroll NAME --updater` has ca.crt, "
                        "agent.crt, agent.key, updater.crt, updater.key, agent.conf and "
                        "updater.conf) (%s unchanged)\n" % (bundle, etc)), r.stderr
    assert etc_state(etc) == before
    # Another host's key: refused before anything is written.
    shutil.copy(os.path.join(bundle, "updater.key"), key)
    r = install_bundle(scratch, check=False)
    assert r.returncode == 1 and "agent.key does not match the certificate" in r.stderr, r.stderr
    assert etc_state(etc) == before
    os.rename(key + ".away", key)

    r = run([scratch["updater"], "install-bundle"], check=False)
    assert r.returncode == 2 and r.stderr.startswith("usage: tandem-updater install-bundle"), r
    r = run([scratch["updater"], "install-bundle", "--user", "no-such-user-here", "--etc", etc,
             bundle], check=False)
    assert r.returncode == 2 and "user 'no-such-user-here' does not exist" in r.stderr, r.stderr
    assert "install-bundle" in run([scratch["updater"], "--help"]).stdout

    r = install_bundle(scratch)
    assert r.stdout.startswith("installed the bundle of host host1 into %s\n" % etc), r.stdout
    assert "next: systemctl restart tandem-updater" in r.stdout
    after = etc_state(etc)
    assert stat.S_IMODE(after["updater.key"][0]) == 0o600
    assert stat.S_IMODE(after["ca.crt"][0]) == 0o640
    install_bundle(scratch)
    assert etc_state(etc) == after


def test_scratch_root_binaries(scratch):
    root, etc = scratch["root"], scratch["etc"]
    upd = os.path.join(root, "usr/sbin/tandem-updater")
    agent = os.path.join(root, "usr/sbin/tandem-agent")
    assert run([upd, "--version"]).stdout.strip() == "tandem-updater " + VERSION
    assert VERSION in run([agent, "--version"]).stdout
    assert run([os.path.join(root, "usr/bin/tandem"), "--version"]).stdout.strip() == \
        "tandem " + VERSION

    # The shipped configuration files, unedited, are accepted as they are.
    uconf, aconf = os.path.join(etc, "updater.conf"), os.path.join(etc, "agent.conf")
    assert "configuration ok" in run([upd, "--config", uconf, "-n"]).stdout
    # With the bundle in place, the certificates load and match (the agent's
    # -n loads them too).
    install_bundle(scratch)
    assert "configuration ok" in run([upd, "--config", uconf, "-n"]).stdout
    run([agent, "--config", aconf, "-n"])
    assert run([upd, "--config", uconf, "--self-test"]).stdout.strip() == "self-test ok"
    run([agent, "--config", aconf, "--self-test", "--listen", "127.0.0.1:0"])
    # Their effective configuration names the shipped paths.
    printed = run([upd, "--config", uconf, "--print-config"]).stdout
    assert re.search(r'^install_dir = "?/var/lib/tandem"?$', printed, re.M), printed
    assert re.search(r'^agent_config = "?%s"?$' % re.escape(aconf), printed, re.M), printed

    # Without the certificates, the check fails and says why.
    os.unlink(os.path.join(etc, "updater.key"))
    r = run([upd, "--config", uconf, "--self-test"], check=False)
    assert r.returncode != 0 and "updater.key" in r.stderr, r.stderr


def curl_json(ca, who, url, resolve=None):
    r = curl_run(url, ca, who, resolve=resolve, max_time=10, real_curl=True)
    assert r.rc == 0, r.stderr
    return json.loads(r.body)


def test_scratch_root_runs_seed_release(build_dir, scratch, procs, tmp_path):
    """The installed updater, with the shipped configuration and the bundle
    put in place by install-bundle (which carries the enrolled loopback ports
    and pins), installs the packaged seed release and runs the agent from
    it; the packaged master CLI pushes the next release to it; SIGTERM stops
    both daemons."""
    need("curl")
    root, etc = scratch["root"], scratch["etc"]
    agent_port, updater_port = scratch["agent_port"], scratch["updater_port"]
    install_bundle(scratch)
    state = os.path.join(root, "var/lib/tandem")
    seed = os.path.join(root, "usr/lib/tandem/tandem-agent-release.tar.gz")
    # As the unit runs it: the packaged launcher starts the packaged updater
    # (only the install dir moves into the scratch root).
    upd = Proc([os.path.join(root, "usr/sbin/tandem-launcher"), "--config",
                os.path.join(etc, "updater.conf"),
                "--install-dir", state, "--updater", os.path.join(root, "usr/sbin/tandem-updater"),
                "--", "--seed", seed], str(tmp_path / "logs"))
    procs.append(upd)
    upd.wait_line(r"^LISTENING port=%d$" % updater_port, timeout=60)

    def health():
        return curl_json(scratch["ca"], scratch["master"],
                         "https://host1:%d/health" % updater_port,
                         resolve="host1:%d:127.0.0.1" % updater_port)

    def agent_health():
        return curl_json(scratch["ca"], scratch["updater_cert"],
                         "https://host1:%d/health" % agent_port,
                         resolve="host1:%d:127.0.0.1" % agent_port)

    h = health()
    assert h["role"] == "updater" and h["status"] == "ok", h
    assert h["version"] == VERSION
    assert [r["slot"] for r in h["releases"]] == ["active"]
    ah = agent_health()
    assert ah["version"] == VERSION and ah["release"]["sha"] == "seed", ah
    assert os.path.islink(os.path.join(state, "current"))
    assert os.path.isfile(os.path.join(state, "state", "agent.log"))

    # The master package drives the worker package.
    rel = str(tmp_path / "agent-2.0.0.tar.gz")
    make(build_dir, "release", "VERSION=2.0.0", "RELEASE_OUT=" + rel)
    r = run([scratch["tandem"], "--home", scratch["home"], "swarm", "update", "--host", "host1",
             "--release", rel, "--json"], timeout=120)
    assert "updated" in json.dumps(json.loads(r.stdout)), r.stdout
    assert agent_health()["version"] == "2.0.0"
    assert sorted(r["slot"] for r in health()["releases"]) == ["active", "prev"]

    upd.signal(signal.SIGTERM)
    assert upd.wait(timeout=30) == 0
    wait_until(lambda: not port_open(agent_port), 15, "the agent to stop with the updater")


# ---------------------------------------------------------------- systemd

def test_systemd_unit(debs, tmp_path):
    need("systemd-analyze")
    root = str(tmp_path / "root")
    run(["dpkg-deb", "-x", debs["tandem-worker"], root])
    unit = os.path.join(root, "lib/systemd/system/tandem-updater.service")
    keys = unit_keys(unit)
    want = {
        # READY=1 and WATCHDOG=1 come from the launcher, after /health of its updater.
        "Type": ["notify"],
        "NotifyAccess": ["main"],
        "WatchdogSec": ["60s"],
        "User": ["tandem"],
        "Group": ["tandem"],
        "Restart": ["always"],
        "KillMode": ["process"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "ReadWritePaths": [STATEDIR],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
        "CapabilityBoundingSet": [""],
        "ExecStart": ["/usr/sbin/tandem-launcher --config /etc/tandem/updater.conf "
                      "--updater /usr/sbin/tandem-updater "
                      "-- --seed /usr/lib/tandem/tandem-agent-release.tar.gz"],
        "WantedBy": ["multi-user.target"],
        # The shell's builtin kill: /bin/kill (procps) may be absent.
        "ExecReload": ["/bin/sh -c 'kill -HUP \"$MAINPID\"'"],
    }
    for k, v in want.items():
        assert keys.get(k) == v, (k, keys.get(k))
    # Every file the unit names is in the package.
    for word in keys["ExecStart"][0].split():
        if word.startswith("/"):
            assert os.path.exists(root + word), word

    # verify refuses a unit whose binary does not exist: on the unit as
    # shipped (paths of a real install), outside an installed system ...
    if not os.path.exists("/usr/sbin/tandem-launcher"):
        r = run(["systemd-analyze", "verify", unit], check=False)
        assert r.returncode != 0 and "tandem-launcher" in r.stderr, r.stderr
    # ... so check a copy whose paths point into the scratch root: no error,
    # no warning at all (unknown keys are only warnings).
    text = open(unit).read()
    for p in ("/usr/sbin/", "/etc/tandem/", "/usr/lib/tandem/"):
        text = text.replace(" " + p, " " + root + p).replace("=" + p, "=" + root + p)
    copy = str(tmp_path / "tandem-updater.service")
    with open(copy, "w") as f:
        f.write(text)
    r = run(["systemd-analyze", "verify", copy], check=False)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)

    # A unit with a typo does produce output, so silence above means clean.
    with open(copy, "a") as f:
        f.write("ProtectSytem=strict\n")
    r = run(["systemd-analyze", "verify", copy], check=False)
    assert "ProtectSytem" in r.stdout + r.stderr

    # The sandbox as systemd rates it (0 = locked down, 10 = exposed).
    r = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", unit], check=False)
    m = re.search(r"Overall exposure level for tandem-updater.service: ([0-9.]+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 3.0, r.stdout
