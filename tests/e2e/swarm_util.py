"""Helpers for the `tandem swarm` end-to-end tests: a master home with its CA,
hosts enrolled through the CLI, and real tandem-updater + tandem-agent pairs
started from the very bundles `swarm enroll` wrote (only test timings are
appended, in a second file next to updater.conf so relative paths still
resolve inside the bundle)."""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import Proc, bin_path, free_port, wait_until
from release_util import release_copy
from worker_util import curl_run

# Shorter than production so a test run stays fast; every key exists in updater/api.c.
TEST_UPDATER_KEYS = {
    "stop_agent_on_exit": "true",
    "probe_deadline": "8s",
    "probe_stable": "300ms",
    "stop_grace": "2s",
    "min_free": "1M",
    "log_level": "debug",
}


def tandem(home, *args, check=None, timeout=180, env=None):
    """Run `tandem --home HOME ARGS`; CHECK = expected exit code (or None)."""
    argv = [bin_path("tandem"), "--home", str(home)] + [str(a) for a in args]
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check is not None and r.returncode != check:
        pytest.fail("%s: exit %d, expected %d\nstdout:\n%s\nstderr:\n%s"
                    % (" ".join(argv), r.returncode, check, r.stdout, r.stderr))
    return r


def tandem_json(home, *args, check=0):
    r = tandem(home, *args, "--json", check=check)
    try:
        return json.loads(r.stdout)
    except ValueError:
        pytest.fail("not JSON: %r\nstderr:\n%s" % (r.stdout, r.stderr))


# Where from_template keeps what it made once in this test process (set by conftest's
# templates fixture, under the process's pytest base directory; None: nothing is kept).
TEMPLATE_DIR = None


def from_template(name, dst, make):
    """Directory DST (which must not exist; its parent is made 0700 as `tandem` makes
    a home's) as MAKE(path) leaves a new directory PATH: made once per test process
    as the template NAME, then copied with its modes. For setup whose result does not
    depend on the test: a master home after `pki init` (a CLI run with two key
    generations, ≈ 0.1 s of CPU under ASan), release keys. Every copy of one template
    holds the same keys: a test that needs two different CAs makes the second itself."""
    dst = str(dst)
    os.makedirs(os.path.dirname(dst), mode=0o700, exist_ok=True)
    if TEMPLATE_DIR is None:
        make(dst)
        return dst
    tpl = os.path.join(TEMPLATE_DIR, name)
    if not os.path.isdir(tpl):
        make(tpl + ".new")
        os.rename(tpl + ".new", tpl)
    shutil.copytree(tpl, dst, symlinks=True)
    return dst


def master_home(home):
    """HOME as `tandem pki init` leaves it (the CA, the master's certificate), from the
    process's template (from_template)."""
    return from_template("master-home", home, lambda p: tandem(p, "pki", "init", check=0))


def make_release(build_dir, version, outdir, kind="good"):
    """A release tarball from the project's `make release` (cached per version/kind,
    built once per run: release_util.release_copy)."""
    out = os.path.join(outdir, "agent-%s-%s.tar.gz" % (version, kind))
    if not os.path.exists(out):
        release_copy(build_dir, version, out, kind)
    return out


class Fleet:
    """A master home and the worker hosts enrolled into it."""

    def __init__(self, root):
        self.root = str(root)
        self.home = os.path.join(self.root, "master")
        self.logs = os.path.join(self.root, "logs")
        self.procs = {}
        self.ports = {}
        master_home(self.home)

    def tandem(self, *args, check=None):
        return tandem(self.home, *args, check=check)

    def json(self, *args, check=0):
        return tandem_json(self.home, *args, check=check)

    def bundle(self, name):
        return os.path.join(self.home, "hosts", name)

    def enroll(self, name, updater=True, updater_port=None, extra=(), address="127.0.0.1"):
        agent_port = free_port()
        updater_port = updater_port or free_port()
        args = ["swarm", "enroll", name, "--address", address,
                "--agent-port", agent_port, "--updater-port", updater_port]
        if updater:
            args.append("--updater")
        args += list(extra)
        host = tandem_json(self.home, *args, check=0)
        self.ports[name] = (agent_port, updater_port)
        return host

    def start(self, name, conf_name="test.conf", launcher=None, keys=None, env=None):
        """Start the updater of NAME from its bundle (under tandem-launcher when LAUNCHER
        is a list of its extra options); waits for LISTENING."""
        bundle = self.bundle(name)
        with open(os.path.join(bundle, "updater.conf")) as f:
            text = f.read()
        for k, v in dict(TEST_UPDATER_KEYS, **(keys or {})).items():
            text += "%s = %s\n" % (k, v)
        conf = os.path.join(bundle, conf_name)
        with open(conf, "w") as f:
            f.write(text)
        if launcher is None:
            argv = [bin_path("tandem-updater"), "--config", conf]
        else:
            argv = [bin_path("tandem-launcher"), "--config", conf,
                    "--updater", bin_path("tandem-updater")] + list(launcher)
        p = Proc(argv, self.logs, name="updater-" + name, env=env)
        self.procs[name] = p
        m = p.wait_line(r"^LISTENING port=(\d+)$", timeout=30)
        assert int(m.group(1)) == self.ports[name][1]
        return p

    def wait_updater(self, name, version, timeout):
        """Until `swarm status` shows host NAME's updater (under tandem-launcher) at VERSION.
        The status is asked once the launcher printed SELF_UPDATE committed VERSION (or at
        the deadline): a poll is a CLI run and a handshake with the updater, ≈ 200 ms of
        CPU under ASan, and the probation it would poll through lasts seconds."""
        deadline = time.monotonic() + timeout
        self.procs[name].wait_count(r"^SELF_UPDATE committed %s$" % re.escape(version), 0,
                                    deadline)
        return wait_until(lambda: self.json("swarm", "status", "--host", name)["hosts"][0].get(
            "updater_version") == version, max(deadline - time.monotonic(), 1.0),
            "updater %s" % version)

    def install_dir(self, name):
        return os.path.join(self.bundle(name), "install")

    def stop_all(self):
        for p in self.procs.values():
            if p.alive():
                p.signal(signal.SIGTERM)
        for p in self.procs.values():
            if p.alive():
                try:
                    p.p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    pass
            p.kill()


def hosts_by_name(doc):
    return {h["host"]: h for h in doc["hosts"]}


# ---- shared by the certificate lifecycle tests (test_certs_*.py) ----

def fp_of(path):
    """SHA-256 of the first PEM certificate in PATH, as the master and the hosts print it."""
    import hashlib
    import ssl
    with open(path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def curl_as(fleet, name, port, pair, path, body=None, method=None, cacert=None):
    """curl to host NAME's server on PORT presenting PAIR (cert, key), verifying it
    against CACERT (default: the master's CA); (HTTP status, 0 when the handshake
    failed; the JSON answer, else its text)."""
    extra = ["-H", "Content-Type: application/json", "--data-binary", "@-"] \
        if body is not None else []
    r = curl_run("https://%s:%d%s" % (name, port, path),
                 cacert or os.path.join(fleet.home, "ca", "ca.crt"), pair, *extra,
                 method=method, resolve="%s:%d:127.0.0.1" % (name, port), max_time=30,
                 input=body)
    try:
        doc = json.loads(r.body)
    except ValueError:
        doc = r.body
    return r.status or 0, doc


@pytest.fixture(scope="module")
def releases(build_dir, tmp_path_factory):
    """Releases 1.0.0 and 2.0.0 (import this fixture where it is used)."""
    out = str(tmp_path_factory.mktemp("releases"))
    return {"v1": make_release(build_dir, "1.0.0", out),
            "v2": make_release(build_dir, "2.0.0", out)}


@pytest.fixture
def fleet(tmp_path):
    """A master home under TMP_PATH; its hosts are stopped at the end."""
    f = Fleet(tmp_path / "fleet")
    yield f
    f.stop_all()


@pytest.fixture
def fleet_web1(tmp_path):
    """A master home under TMP_PATH with one host, web1, enrolled and its updater
    started; its hosts are stopped at the end (import it as `fleet` where a module's
    tests all start from one host)."""
    f = Fleet(tmp_path / "fleet")
    try:
        f.enroll("web1")
        f.start("web1")
        yield f
    finally:
        f.stop_all()
