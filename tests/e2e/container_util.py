"""A Debian 12 system container with systemd as PID 1, for tests that need a
real systemd (tests/e2e/test_systemd.py).

  root_tarball(build_dir, packages)  the root file system made by debootstrap
                                     once per build directory and package set,
                                     cached as BUILD/container/debian12-KEY.tar
                                     (first run minutes, later ones reuse it)
  nspawn_unsupported()               None, or why this machine cannot run one
  Container(tarball, workdir)        unpack, start() (systemd-nspawn --boot
                                     --private-network: only loopback inside),
                                     run()/sh() a shell script inside through
                                     nsenter, push() a host file in, stop()
  readme_blocks(path)                the README's real-host code blocks, in order

The apt mirror is the machine's own (its /etc/apt sources); nothing is
installed on the machine itself: `make deps` brings systemd-container and
debootstrap.
"""

import fcntl
import glob
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import wait_until

SUITE = "bookworm"
# PID 1 and what the packages' maintainer scripts call; the packages' own
# library dependencies are added by the caller (from the debs' Depends).
BASE_PACKAGES = ("systemd", "systemd-sysv", "adduser")
# Bounds on the one-time root build (it usually takes 1-4 minutes): a mirror
# that does not answer fails the test instead of holding make check.
DEBOOTSTRAP_TIMEOUT = 900
TAR_TIMEOUT = 300
# Commands inside get this environment, not the test runner's.
ENV = ("PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb",
       "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0")


def _deb822(path):
    """(types, uris, suites, components) of each enabled stanza of a .sources file."""
    out = []
    with open(path) as f:
        for stanza in re.split(r"\n\s*\n", f.read()):
            fields = {}
            for line in stanza.splitlines():
                m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
                if m and not line.startswith("#"):
                    fields[m.group(1).lower()] = m.group(2).split()
            if fields.get("enabled", ["yes"])[0].lower() == "no":
                continue
            out.append((fields.get("types", []), fields.get("uris", []),
                        fields.get("suites", []), fields.get("components", [])))
    return out


def _one_line(path):
    out = []
    with open(path) as f:
        for line in f:
            line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(line) >= 4 and line[0] in ("deb", "deb-src"):
                out.append(([line[0]], [line[1]], [line[2]], line[3:]))
    return out


def apt_mirror():
    """The machine's Debian mirror for SUITE main, from its apt sources."""
    entries = []
    for p in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        entries += _deb822(p)
    for p in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.exists(p):
            entries += _one_line(p)
    for types, uris, suites, comps in entries:
        if "deb" in types and SUITE in suites and "main" in comps and uris:
            return uris[0]
    pytest.fail("no apt source for Debian %s main under /etc/apt: the container test "
                "debootstraps from the machine's own mirror" % SUITE)


def _unmount_below(path):
    """Unmount whatever a failed debootstrap left mounted under PATH."""
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    for p in sorted(points, key=len, reverse=True):
        if p == path or p.startswith(path + "/"):
            subprocess.run(["umount", "-l", p], capture_output=True)


def remove_root(path):
    """rm -rf of a container root, never crossing into a mount."""
    if os.path.exists(path):
        _unmount_below(path)
        subprocess.run(["rm", "-rf", "--one-file-system", path], check=True)


def root_tarball(build_dir, packages):
    """Path of the cached root tarball with BASE_PACKAGES and PACKAGES."""
    for tool in ("debootstrap", "systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            pytest.fail("%s is not installed (scripts/deps.sh installs it: run make deps)" % tool)
    pkgs = sorted(set(BASE_PACKAGES) | set(packages))
    key = hashlib.sha256(("%s minbase %s" % (SUITE, ",".join(pkgs))).encode()).hexdigest()[:12]
    cache = os.path.join(build_dir, "container")
    os.makedirs(cache, exist_ok=True)
    tar = os.path.join(cache, "debian12-%s.tar" % key)
    # One builder at a time (parallel test runs share the build directory).
    with open(os.path.join(cache, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(tar):
            return tar
        root = tempfile.mkdtemp(dir=cache, prefix="root-")
        try:
            mirror = apt_mirror()
            t0 = time.monotonic()
            argv = ["debootstrap", "--variant=minbase", "--include=" + ",".join(pkgs), SUITE,
                    root, mirror]
            # Its own session, so a timeout ends its downloads and dpkg runs too.
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
            try:
                out, err = p.communicate(timeout=DEBOOTSTRAP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
                pytest.fail("debootstrap %s from %s did not finish in %d s (is the mirror "
                            "reachable?)" % (SUITE, mirror, DEBOOTSTRAP_TIMEOUT))
            r = subprocess.CompletedProcess(argv, p.returncode, out, err)
            if r.returncode != 0:
                log = os.path.join(root, "debootstrap", "debootstrap.log")
                tail = open(log).read()[-3000:] if os.path.exists(log) else ""
                pytest.fail("debootstrap %s from %s failed (%d):\n%s\n%s\n%s"
                            % (SUITE, mirror, r.returncode, r.stdout[-2000:], r.stderr[-2000:],
                               tail))
            # Package caches are not needed inside: the container has no network.
            for d in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for p in glob.glob(os.path.join(root, d, "*")):
                    if os.path.isfile(p):
                        os.unlink(p)
            # mkdtemp made it 0700: as "/" that would lock every user but root out.
            os.chmod(root, 0o755)
            subprocess.run(["tar", "--numeric-owner", "-C", root, "-cf", tar + ".tmp", "."],
                           check=True, timeout=TAR_TIMEOUT)
            os.rename(tar + ".tmp", tar)
            print("container: built %s in %.0f s from %s" % (tar, time.monotonic() - t0, mirror))
            for old in glob.glob(os.path.join(cache, "debian12-*.tar")):
                if old != tar:
                    os.unlink(old)
        finally:
            remove_root(root)
    return tar


def nspawn_unsupported():
    """None when this machine can run a systemd-nspawn container, else the reason."""
    if os.geteuid() != 0:
        return "systemd-nspawn containers need root (the test runs as uid %d)" % os.geteuid()
    if not os.path.exists("/proc/self/ns/pid") or not os.path.exists("/sys/fs/cgroup"):
        return "this kernel has no PID namespaces or cgroup file system for systemd-nspawn"
    return None


class Container:
    """A booted container; every command runs inside through nsenter."""

    def __init__(self, tarball, workdir):
        self.workdir = str(workdir)
        self.root = os.path.join(self.workdir, "root")
        self.logpath = os.path.join(self.workdir, "nspawn.log")
        self.proc = None
        self.leader = None
        os.makedirs(self.root)
        # On a tmpfs: unpacking is faster, and removing it is an unmount
        # instead of minutes of unlinking on a busy disk.
        self.tmpfs = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g,mode=0755",
                                     "tandem-container", self.root],
                                    capture_output=True).returncode == 0
        t0 = time.monotonic()
        subprocess.run(["tar", "--numeric-owner", "-C", self.root, "-xf", tarball], check=True,
                       timeout=TAR_TIMEOUT)
        os.chmod(self.root, 0o755)
        self.unpack_s = time.monotonic() - t0

    def _log(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def _find_leader(self):
        if self.proc.poll() is not None:
            pytest.fail("systemd-nspawn exited with %d:\n%s" % (self.proc.returncode, self._log()))
        for children in glob.glob("/proc/%d/task/*/children" % self.proc.pid):
            try:
                pids = open(children).read().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    if open("/proc/%s/comm" % pid).read().strip() == "systemd":
                        return int(pid)
                except OSError:
                    pass
        return None

    def start(self, timeout=180):
        """Boot; returns once systemd inside says running (or degraded)."""
        t0 = time.monotonic()
        log = open(self.logpath, "w")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--boot", "--private-network", "--register=no", "--keep-unit",
             "--machine=tandem-test-%d" % os.getpid(), "-D", self.root],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while self.leader is None:
            self.leader = self._find_leader()
            if self.leader is None:
                if time.monotonic() > deadline:
                    pytest.fail("no PID 1 in the container after %d s:\n%s" % (timeout, self._log()))
                time.sleep(0.05)
        state = ""
        while state not in ("running", "degraded"):
            state = self.run("systemctl is-system-running", check=False).stdout.strip()
            if time.monotonic() > deadline:
                pytest.fail("the container's systemd is '%s' after %d s:\n%s"
                            % (state, timeout, self._log()))
            time.sleep(0.05)
        self.boot_s = time.monotonic() - t0

    def run(self, script, check=True, timeout=180):
        """Run SCRIPT with sh -e as root inside (cwd /root); CompletedProcess."""
        argv = ["nsenter", "-t", str(self.leader), "-a", "--", "env", "-i"] + list(ENV) + \
            ["sh", "-ec", "cd /root\n" + script]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            pytest.fail("in the container, exit %d:\n%s\nstdout:\n%s\nstderr:\n%s"
                        % (r.returncode, script, r.stdout[-4000:], r.stderr[-4000:]))
        return r

    def sh(self, script, timeout=180):
        """stdout of SCRIPT (must succeed)."""
        return self.run(script, timeout=timeout).stdout

    def push(self, src, dest):
        """Copy the host's file SRC to DEST (absolute, inside)."""
        target = self.root + dest
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy(src, target)

    def read(self, path):
        """A file inside, read from the host side (the root is a plain directory)."""
        with open(self.root + path) as f:
            return f.read()

    def unit(self, name, *props):
        """{property: value} of systemctl show."""
        out = self.sh("systemctl show %s -p %s" % (name, ",".join(props)))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def pids(self, comm):
        """PIDs (in the container) of processes named COMM. The shell's own read,
        not a cat per process: this runs in many polls."""
        out = self.sh("for d in /proc/[0-9]*; do read -r c 2>/dev/null <$d/comm || continue; "
                      "[ \"$c\" = '%s' ] && echo ${d#/proc/}; done; true" % comm)
        return sorted(int(p) for p in out.split())

    def wait(self, fn, timeout=60, what="condition"):
        """conftest's wait_until: FN runs commands inside (nsenter, the CLI, a TLS
        handshake: tens of ms of CPU each), so it pauses twice what a poll took."""
        return wait_until(fn, timeout, what)

    def stop(self):
        """Power off (nspawn turns SIGTERM into a clean shutdown), then remove the root."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        if self.tmpfs:
            subprocess.run(["umount", "-l", self.root], check=True)
            os.rmdir(self.root)
        else:
            remove_root(self.root)


def readme_blocks(path, section="## Quick start on real hosts"):
    """[(side, text)] of the ```sh blocks marked <!-- real-host-steps: SIDE -->
    in SECTION of the README at PATH, in order (SIDE: master or host)."""
    with open(path) as f:
        text = f.read()
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    body = text[start:end if end >= 0 else len(text)]
    blocks = re.findall(r"<!-- real-host-steps: (master|host) -->\s*\n```sh\n(.*?)```", body, re.S)
    if not blocks:
        pytest.fail("README has no marked real-host steps in '%s'" % section)
    return blocks
