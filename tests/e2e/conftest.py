"""Shared end-to-end harness for tandem.

Everything here drives real processes on 127.0.0.1 and waits with deadlines
(polling a socket, a file or a process), never with fixed sleeps.

Fixtures and helpers other test files use:

  build_dir            absolute path of the build directory (TANDEM_BUILD or ./build)
  bin_path(name)       path of a built binary (build/NAME or build/tests/NAME)
  Proc                 a started process with its output captured to files;
                       wait_line(regex), wait_count(regex, n, deadline),
                       stop(), kill, returncode
  wait_until(fn, timeout, what)   poll fn() until truthy or fail with WHAT
  wait_port(port)      until 127.0.0.1:PORT accepts a TCP connection
  free_port()          a currently free TCP port on 127.0.0.1
  OpensslPKI           a throw-away CA built with the openssl CLI, able to
                       issue certificates with any role, EKU, SAN and validity
                       window (expired, not yet valid), for interop tests
  pki (fixture)        an OpensslPKI under tmp_path with a CA, a master, an
                       agent "host1", an updater "updater@host1" and a server
                       certificate for 127.0.0.1 / localhost (a copy of one
                       made per test process: pki_template)
  templates (fixture)  autouse: the directory of swarm_util.from_template, where
                       setup made once per test process is kept and copied from
"""

import datetime
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _build_dir():
    return os.environ.get("TANDEM_BUILD") or os.path.join(ROOT, "build")


def pytest_configure(config):
    # pytest-xdist defines this mark; declared here too so a run without it
    # (one process) knows the mark.
    config.addinivalue_line("markers", "xdist_group(name): tests that run on one "
                            "xdist worker, in file order")
    config.addinivalue_line("markers", "sweep: one test per crash point; with "
                            "TANDEM_E2E_SWEEP=smoke only the first and the last point run")


def _sweep_smoke(config, items):
    """TANDEM_E2E_SWEEP=smoke (the sanitizer stages of make check): of each
    test marked sweep, only its first and last crash point run. They check
    durability, which the normal e2e stage checks at every point; under a
    sanitizer what matters is that the crash and the recovery code run at
    all, on both sides of the commit."""
    if os.environ.get("TANDEM_E2E_SWEEP") != "smoke":
        return
    groups = {}
    for item in items:
        if item.get_closest_marker("sweep") is not None and hasattr(item, "callspec"):
            groups.setdefault((item.module.__name__, item.originalname), []).append(item)
    drop = {id(it) for g in groups.values() for it in g[1:-1]}
    if drop:
        config.hook.pytest_deselected(items=[it for it in items if id(it) in drop])
        items[:] = [it for it in items if id(it) not in drop]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # First, before pytest-xdist's own hook turns each item's xdist_group
    # mark into the "@group" suffix its loadgroup scheduler reads (run after
    # it, the marks added here were ignored and one file's tests were spread
    # over several workers, each with its own module fixture).
    # Under pytest-xdist (make e2e: --dist loadgroup) the tests of one file
    # run on one worker, in file order: a module fixture (a fleet, a
    # container) is built once, and a test that starts from the state an
    # earlier one left still finds it. Files that share an output of the
    # build tree (make deb) name one group with pytestmark.
    _sweep_smoke(config, items)
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    _longest_groups_first(items)


# The xdist groups that take longest, longest first (wiki/Development.md, the
# --durations of make e2e). --dist loadgroup hands groups to workers in
# collection order, so a long group collected last (make deb and the systemd
# container sort after most files) ends the run alone on one worker while
# the others sit idle. Any other group keeps its place after these; the list
# changes only the order, never what runs.
LONGEST_GROUPS = ("build-deb", "test_chaos", "test_selfupdate", "test_rollout",
                  "test_certs_renew", "test_demo", "test_cli", "test_signing")


def _longest_groups_first(items):
    def rank(item):
        name = item.get_closest_marker("xdist_group")
        name = name.args[0] if name.args else name.kwargs.get("name")
        return LONGEST_GROUPS.index(name) if name in LONGEST_GROUPS else len(LONGEST_GROUPS)
    items.sort(key=rank)  # stable: each file keeps its own order


@pytest.fixture(scope="session")
def build_dir():
    return _build_dir()


@pytest.fixture(scope="session", autouse=True)
def release_cache(tmp_path_factory):
    """The directory where release_util.release_copy keeps each release it built in
    this run: shared by the pytest-xdist workers (their base directories are
    siblings), so a release the suite's files all push is built once, not once
    per file."""
    import release_util  # it imports this module
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    release_util.CACHE_DIR = str(shared / "release-cache")
    yield release_util.CACHE_DIR
    release_util.CACHE_DIR = None


@pytest.fixture(scope="session", autouse=True)
def templates(tmp_path_factory):
    """The directory where swarm_util.from_template keeps the setup it made once in this
    test process (a master home after `pki init`, release keys), copied for each test."""
    import swarm_util  # it imports this module
    swarm_util.TEMPLATE_DIR = str(tmp_path_factory.mktemp("templates"))
    yield swarm_util.TEMPLATE_DIR
    swarm_util.TEMPLATE_DIR = None


def bin_path(name):
    """Path of a built binary: build/NAME, else build/tests/NAME."""
    b = _build_dir()
    for p in (os.path.join(b, name), os.path.join(b, "tests", name)):
        if os.path.exists(p):
            return p
    pytest.fail("binary %s not built under %s (run make)" % (name, b))


def sigint_live():
    """preexec_fn for a child a test interrupts with SIGINT, as a terminal's Ctrl-C.

    A command started with `&` from a non-interactive shell (a CI runner, `nohup make
    check &`) inherits SIGINT ignored, as POSIX says, and so does everything it starts:
    a shell script then cannot trap SIGINT and `tandem` leaves it ignored. A process
    in the foreground of a terminal has it live; this restores that for the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_until(fn, timeout=10.0, what="condition", interval=None):
    """Poll FN until it returns something truthy; fail the test at the deadline.

    Between polls: INTERVAL when given; else 20 ms, or twice what FN itself took
    when that is longer (at most 250 ms). A poll that starts a process (curl, the
    CLI: tens of ms of CPU each, more under a sanitizer) then takes at most a
    third of a CPU, leaving the rest to the daemons it waits for, while a cheap
    poll (a file, a socket) still runs every 20 ms."""
    deadline = time.monotonic() + timeout
    while True:
        t0 = time.monotonic()
        v = fn()
        if v:
            return v
        now = time.monotonic()
        if now >= deadline:
            pytest.fail("timed out after %.1fs waiting for %s" % (timeout, what))
        pause = interval if interval is not None else min(max(0.02, 2 * (now - t0)), 0.25)
        time.sleep(pause)  # polling interval, not a wait for a server


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port, host="127.0.0.1", timeout=10.0):
    wait_until(lambda: port_open(port, host), timeout, "%s:%d to accept" % (host, port))


# Ports handed out by this process: never handed out twice.
_PORTS_GIVEN = set()
_PORT_RNG = random.SystemRandom()


def free_port():
    """A port on 127.0.0.1 that is free now, for a server a test starts.

    Picked at random below the kernel's ephemeral range (32768 up): a port
    from bind(port 0) lies in that range, where every client connection of
    every test takes its local port and other tests' bind(0) draw too, so
    between this check and the server's own bind another socket could take
    it (seen: an agent that could not bind, and a foreign agent answering
    its probe). Below the range only another test's free_port() competes."""
    for _ in range(1000):
        port = _PORT_RNG.randint(10000, 32767)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError("no free port on 127.0.0.1 in 10000-32767")


class Proc:
    """A process under test; stdout/stderr go to files under LOGDIR."""

    def __init__(self, argv, logdir, name=None, env=None, cwd=None, pass_fds=(), **kw):
        self.name = name or os.path.basename(argv[0])
        os.makedirs(logdir, exist_ok=True)
        self.out_path = os.path.join(logdir, self.name + ".out")
        self.err_path = os.path.join(logdir, self.name + ".err")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=self._out, stderr=self._err, env=full_env,
                                  cwd=cwd, pass_fds=pass_fds, start_new_session=True, **kw)
        self.pid = self.p.pid

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_line(self, pattern, timeout=10.0, stream="stdout"):
        """Wait until a line matching PATTERN appears; returns the match."""
        rx = re.compile(pattern, re.M)

        def probe():
            m = rx.search(self.stdout() if stream == "stdout" else self.stderr())
            if m:
                return m
            if self.p.poll() is not None:
                # Re-read once: the line may have been written just before exit.
                m = rx.search(self.stdout() if stream == "stdout" else self.stderr())
                if m:
                    return m
                pytest.fail("%s exited with %s before printing /%s/\nstdout:\n%s\nstderr:\n%s"
                            % (self.name, self.p.returncode, pattern, self.stdout()[-4000:],
                               self.stderr()[-4000:]))
            return None

        return wait_until(probe, timeout, "%s to print /%s/" % (self.name, pattern))

    def count_lines(self, pattern):
        """How many lines of stdout match PATTERN (a regex)."""
        return len(re.findall(pattern, self.stdout(), re.M))

    def wait_count(self, pattern, count, deadline):
        """Until more than COUNT lines of stdout match PATTERN, or the monotonic DEADLINE,
        or the process exits; returns the number of matching lines. Never fails the test:
        a cheap first wait (a file read every 20 ms) before the real check, e.g. the
        launcher's outcome line before asking the updater's /health, which costs a
        process and a TLS handshake on both sides per poll."""
        while True:
            n = self.count_lines(pattern)
            if n > count or time.monotonic() >= deadline or not self.alive():
                return n
            time.sleep(0.02)  # polling a file the process writes, not a server

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def wait(self, timeout=10.0):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail("%s did not exit within %.1fs" % (self.name, timeout))

    def stop(self, timeout=10.0):
        """SIGTERM and wait; returns the exit status."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self):
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                self.p.kill()
            self.p.wait()
        self._out.close()
        self._err.close()


def kill_strays(root):
    """SIGKILL every process whose command line names a path under ROOT. An agent
    runs in a session of its own so that it outlives its updater (a new updater
    adopts it): a test that kills the updater with -9 and starts another leaves
    that agent outside every process group the test started."""
    me = os.getpid()
    prefix = (str(root).rstrip("/") + "/").encode()
    for _ in range(5):
        found = False
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == me:
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if prefix in cmd:
                try:
                    os.kill(int(d), signal.SIGKILL)
                    found = True
                except OSError:
                    pass
        if not found:
            return


@pytest.fixture
def procs(tmp_path):
    """Collects Procs; every one still running is killed at teardown, and so is
    every process left running from the test's directory (kill_strays)."""
    started = []
    yield started
    for p in started:
        p.kill()
    kill_strays(tmp_path)


def run(argv, check=True, timeout=60, **kw):
    """Run a command to completion, capture text output."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        pytest.fail("%s failed (%d)\nstdout:\n%s\nstderr:\n%s"
                    % (" ".join(argv), r.returncode, r.stdout, r.stderr))
    return r


def _asn1_time(dt):
    return dt.strftime("%Y%m%d%H%M%SZ")


class OpensslPKI:
    """A CA made with the openssl CLI (independent of our own pki/)."""

    def __init__(self, directory, name="Test CA"):
        self.dir = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.ca_key = os.path.join(directory, "ca.key")
        self.ca_crt = os.path.join(directory, "ca.crt")
        self._genkey(self.ca_key)
        run(["openssl", "req", "-x509", "-new", "-key", self.ca_key, "-out", self.ca_crt,
             "-days", "3650", "-subj", "/CN=%s" % name,
             "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-addext", "subjectKeyIdentifier=hash"])
        self._db = os.path.join(directory, "db")
        os.makedirs(self._db, exist_ok=True)
        open(os.path.join(self._db, "index.txt"), "w").close()
        with open(os.path.join(self._db, "serial"), "w") as f:
            f.write("1000\n")

    @staticmethod
    def _genkey(path, key_type="ec"):
        if key_type == "rsa":
            run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                 "-out", path])
        else:
            run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-out", path])
        os.chmod(path, 0o600)

    def issue(self, name, cn, ou=None, eku=("clientAuth", "serverAuth"),
              san=("DNS:localhost", "IP:127.0.0.1"), not_before=None, not_after=None,
              key_type="ec"):
        """Issue NAME.crt/NAME.key; returns (crt, key). Times are datetimes (UTC)."""
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        crt = os.path.join(self.dir, name + ".crt")
        self._genkey(key, key_type)
        subj = "/CN=%s" % cn + ("/OU=%s" % ou if ou else "")
        run(["openssl", "req", "-new", "-key", key, "-out", csr, "-subj", subj])
        now = datetime.datetime.now(datetime.timezone.utc)
        nb = not_before or (now - datetime.timedelta(hours=1))
        na = not_after or (now + datetime.timedelta(days=30))
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("[ca]\ndefault_ca = c\n[c]\n")
            f.write("database = %s/index.txt\nnew_certs_dir = %s\nserial = %s/serial\n"
                    % (self._db, self._db, self._db))
            f.write("default_md = sha256\npolicy = p\nunique_subject = no\n"
                    "copy_extensions = none\n")
            f.write("[p]\ncommonName = supplied\norganizationalUnitName = optional\n")
            f.write("[x]\nbasicConstraints = critical,CA:FALSE\n"
                    "keyUsage = critical,digitalSignature,keyEncipherment\n"
                    "authorityKeyIdentifier = keyid\nsubjectKeyIdentifier = hash\n")
            if eku:
                f.write("extendedKeyUsage = %s\n" % ",".join(eku))
            if san:
                f.write("subjectAltName = %s\n" % ",".join(san))
        run(["openssl", "ca", "-batch", "-config", ext, "-extensions", "x", "-notext",
             "-cert", self.ca_crt, "-keyfile", self.ca_key, "-in", csr, "-out", crt,
             "-startdate", _asn1_time(nb), "-enddate", _asn1_time(na)])
        return crt, key

    def fingerprint(self, crt):
        r = run(["openssl", "x509", "-in", crt, "-noout", "-fingerprint", "-sha256"])
        return r.stdout.strip().split("=", 1)[1].replace(":", "").lower()

    def copy_to(self, directory):
        """A copy of this CA and everything it issued under DIRECTORY (modes kept), as
        an OpensslPKI whose paths name the copy: it issues on from the copy's own
        serial and database, and changes to it never reach this one."""
        shutil.copytree(self.dir, directory)

        def moved(v):
            if isinstance(v, str) and (v == self.dir or v.startswith(self.dir + os.sep)):
                return directory + v[len(self.dir):]
            if isinstance(v, tuple):
                return tuple(moved(x) for x in v)
            return v
        p = OpensslPKI.__new__(OpensslPKI)
        p.__dict__.update({k: moved(v) for k, v in self.__dict__.items()})
        return p


@pytest.fixture(scope="session")
def pki_template(tmp_path_factory):
    """The pki fixture's CA and certificates, made once per test process (14 openssl
    runs); each test gets its own copy."""
    p = OpensslPKI(str(tmp_path_factory.mktemp("pki-template") / "pki"))
    p.master = p.issue("master", "tandem-master", ou="master", eku=("clientAuth",))
    p.agent = p.issue("host1", "host1", ou="agent")
    p.updater = p.issue("updater-host1", "updater@host1", ou="updater")
    p.server = p.issue("server", "localhost", ou="agent", eku=("serverAuth", "clientAuth"))
    return p


@pytest.fixture
def pki(tmp_path, pki_template):
    """A CA with a master, an agent "host1", an updater "updater@host1" and a server
    certificate for 127.0.0.1 / localhost, under TMP_PATH/pki: a copy of the
    process's template, so a test may issue more or change files freely."""
    return pki_template.copy_to(str(tmp_path / "pki"))
