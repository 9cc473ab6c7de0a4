"""End-to-end tests of tandem-agent with curl, openssl and Python's
ssl module as clients, on 127.0.0.1 (and ::1 when the host has it).

Release tarballs (good and deliberately broken builds) are made with the
project's own `make release` into the build directory under test.
"""

import hashlib
import http.client
import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import tarfile
import time

import pytest

from conftest import Proc, bin_path, run, wait_until
from release_util import run_make_release
from worker_util import curl_run, write_conf

VERSION_RE = re.compile(r"^tandem-agent (\S+)$")


# ---------------------------------------------------------------- helpers

def write_config(path, pki, **extra):
    """An agent config file beside the PKI, with paths relative to it."""
    d = os.path.dirname(path)
    keys = {
        "ca": os.path.relpath(pki.ca_crt, d),
        "cert": os.path.relpath(pki.agent[0], d),
        "key": os.path.relpath(pki.agent[1], d),
        "listen": "127.0.0.1:0",
        "log_level": "debug",
    }
    keys.update(extra)
    return write_conf(path, keys, "written by test_agent.py")


def read_ready(fd, timeout=15.0, proc=None):
    """Read the --ready-fd pipe until EOF; returns the bytes (b"" if none)."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail("no EOF on the ready pipe within %.0fs (got %r)" % (timeout, data))
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return data
        data += chunk


def start_agent(procs, tmp_path, args, exe=None, env=None, name="agent", expect_ready=True):
    """Start the agent with --ready-fd; returns (Proc, port or None, ready bytes)."""
    rfd, wfd = os.pipe()
    try:
        argv = [exe or bin_path("tandem-agent")] + list(args) + ["--ready-fd", str(wfd)]
        p = Proc(argv, str(tmp_path / "logs"), name=name, env=env, pass_fds=(wfd,),
                 cwd=str(tmp_path))
        procs.append(p)
    finally:
        os.close(wfd)
    try:
        data = read_ready(rfd, proc=p)
    finally:
        os.close(rfd)
    m = re.fullmatch(rb"READY port=(\d+)\n", data)
    if expect_ready:
        assert m, "ready line %r; stderr:\n%s" % (data, p.stderr())
        return p, int(m.group(1)), data
    return p, (int(m.group(1)) if m else None), data


def curl(pki, who, url, *extra, method=None):
    """curl with client cert WHO=(crt,key) or None; returns (rc, status, headers, body),
    body being curl's stderr when the transfer failed."""
    r = curl_run(url, pki.ca_crt, who, *extra, method=method, max_time=20)
    if r.rc != 0:
        return r.rc, None, {}, r.stderr
    return 0, r.status, r.headers, r.body


def get_json(pki, who, port, path, host="127.0.0.1"):
    rc, status, headers, body = curl(pki, who, "https://%s:%d%s" % (host, port, path))
    assert rc == 0, body
    assert headers.get("content-type", "").startswith("application/json"), headers
    return status, json.loads(body)


def ssl_context(pki, who):
    ctx = ssl.create_default_context(cafile=pki.ca_crt)
    ctx.load_cert_chain(who[0], who[1])
    return ctx


class Releases:
    """Release tarballs from release_util.run_make_release, extracted so the
    tests can run the agent from them."""

    def __init__(self, build_dir, outdir):
        self.build_dir = build_dir
        self.outdir = outdir
        self.cache = {}

    def make(self, version, kind="good", out=None, check=True):
        out = out or os.path.join(self.outdir, "agent-%s-%s.tar.gz" % (version, kind))
        return run_make_release(self.build_dir, version, out, kind, check=check), out

    def get(self, version, kind="good"):
        """A built and extracted release: (tarball, sha256 printed, release dir)."""
        key = (version, kind)
        if key not in self.cache:
            r, out = self.make(version, kind)
            last = r.stdout.strip().splitlines()[-1]
            digest, path = last.split(None, 1)
            assert path == out
            rel = os.path.join(self.outdir, "rel-%s-%s" % (version, kind))
            os.makedirs(rel)
            with tarfile.open(out, "r:gz") as t:
                t.extractall(rel)
            self.cache[key] = (out, digest, rel)
        return self.cache[key]


@pytest.fixture(scope="module")
def releases(build_dir, tmp_path_factory):
    return Releases(build_dir, str(tmp_path_factory.mktemp("releases")))


@pytest.fixture
def agent_cfg(tmp_path, pki):
    return write_config(os.path.join(pki.dir, "agent.conf"), pki)


# ---------------------------------------------------------------- endpoints

def test_endpoints_status_and_bodies(procs, tmp_path, pki, agent_cfg):
    version = VERSION_RE.match(run([bin_path("tandem-agent"), "--version"]).stdout.strip())
    assert version, "--version prints 'tandem-agent X'"
    version = version.group(1)
    before = time.time()
    p, port, _ = start_agent(procs, tmp_path, ["--config", agent_cfg])

    status, h = get_json(pki, pki.master, port, "/health")
    assert status == 200
    assert set(h) == {"status", "role", "version", "release", "pid", "started_at", "uptime_s",
                      "cert_not_after", "cert_fingerprint", "cert_renewed", "crl",
                      "crl_number", "crl_next_update"}
    assert h["status"] == "ok" and h["role"] == "agent" and h["version"] == version
    assert h["pid"] == p.pid
    # The build directory holds no release.json: both fields are null.
    assert h["release"] == {"sha": None, "sha256": None}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", h["started_at"])
    started = time.mktime(time.strptime(h["started_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before - 2 <= started <= time.time() + 1
    assert isinstance(h["uptime_s"], int) and 0 <= h["uptime_s"] < 60

    assert get_json(pki, pki.master, port, "/livez") == (200, {"status": "alive"})
    assert get_json(pki, pki.master, port, "/readyz") == (200, {"status": "ready"})

    status, info = get_json(pki, pki.master, port, "/info")
    assert status == 200
    assert set(info) == {"hostname", "os", "arch", "kernel_release", "cpu_cores", "memory_mb",
                         "agent_version", "boot_id"}
    assert info["hostname"] == socket.gethostname()
    assert info["arch"] == os.uname().machine
    assert info["kernel_release"] == os.uname().release
    assert info["cpu_cores"] == os.sysconf("SC_NPROCESSORS_ONLN")
    with open("/proc/meminfo") as f:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+) kB", f.read()).group(1))
    assert abs(info["memory_mb"] - mem_kb // 1024) <= 1
    with open("/proc/sys/kernel/random/boot_id") as f:
        assert info["boot_id"] == f.read().strip()
    assert info["agent_version"] == version
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?$', f.read(), re.M)
        if m:
            assert info["os"] == m.group(1)

    # HEAD is served like GET, without a body.
    rc, status, headers, body = curl(pki, pki.master, "https://127.0.0.1:%d/health" % port,
                                     method="HEAD")
    assert rc == 0 and status == 200 and body == ""

    # Unknown path: 404 with a JSON error body.
    status, body = get_json(pki, pki.master, port, "/nope")
    assert status == 404 and "no such endpoint" in body["detail"]["error"]
    # Wrong method: 405 with Allow and a JSON body.
    for path in ("/health", "/info", "/readyz", "/livez"):
        rc, status, headers, body = curl(pki, pki.master, "https://127.0.0.1:%d%s" % (port, path),
                                         method="POST")
        assert rc == 0 and status == 405, (path, status, body)
        assert headers["allow"] == "GET, HEAD"
        assert "method not allowed" in json.loads(body)["detail"]["error"]
    rc, status, headers, body = curl(pki, pki.master, "https://127.0.0.1:%d/health" % port,
                                     method="DELETE")
    assert status == 405 and headers["allow"] == "GET, HEAD"

    # The log names the ephemeral port the ready line reported.
    assert re.search(r"listening on 127\.0\.0\.1:0 \(port %d\)" % port, p.stderr())
    assert p.stop() == 0


def test_openssl_client_raw_request(procs, tmp_path, pki, agent_cfg):
    """openssl s_client as an independent TLS client speaking raw HTTP/1.1."""
    p, port, _ = start_agent(procs, tmp_path, ["--config", agent_cfg])
    req = b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    r = subprocess.run(["openssl", "s_client", "-quiet", "-connect",
                        "127.0.0.1:%d" % port, "-CAfile", pki.ca_crt, "-cert", pki.updater[0],
                        "-key", pki.updater[1], "-verify_return_error"],
                       input=req, capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace")
    assert out.startswith("HTTP/1.1 200"), (out, r.stderr)
    body = json.loads(out.split("\r\n\r\n", 1)[1])
    assert body["status"] == "ok" and body["pid"] == p.pid

    # Without a client certificate the handshake is refused: no HTTP at all.
    r = subprocess.run(["openssl", "s_client", "-quiet", "-connect",
                        "127.0.0.1:%d" % port, "-CAfile", pki.ca_crt], input=req,
                       capture_output=True, timeout=30)
    assert b"HTTP/1.1" not in r.stdout
    assert p.alive()
    # SIGINT stops it as gracefully as SIGTERM.
    p.signal(signal.SIGINT)
    assert p.wait() == 0
    assert "signal SIGINT: stopping" in p.stderr()


def test_info_roles_and_mtls_refusals(procs, tmp_path, pki, agent_cfg):
    p, port, _ = start_agent(procs, tmp_path, ["--config", agent_cfg])
    other_updater = pki.issue("updater-host2", "updater@host2", ou="updater")
    other_agent = pki.issue("host2", "host2", ou="agent")

    # /info: the master and this host's own updater.
    assert get_json(pki, pki.master, port, "/info")[0] == 200
    status, info = get_json(pki, pki.updater, port, "/info")
    assert status == 200 and info["agent_version"]
    # Anyone else: 403 with a JSON reason, even other CA-signed certificates.
    for who, cn in ((other_updater, "updater@host2"), (other_agent, "host2"),
                    (pki.agent, "host1")):
        status, body = get_json(pki, who, port, "/info")
        assert status == 403, (cn, body)
        assert cn in body["detail"]["error"]
    # /health, /livez, /readyz answer any CA-signed client, even one whose
    # subject names no role; /info refuses that one like any other.
    norole = pki.issue("norole", "evil@host1", ou="agent", eku=("clientAuth",))
    for who in (other_updater, other_agent, pki.updater, pki.master, norole):
        for path in ("/health", "/livez", "/readyz"):
            assert get_json(pki, who, port, path)[0] == 200
    status, body = get_json(pki, norole, port, "/info")
    assert status == 403, body
    assert body["detail"]["error"].endswith("not allowed for unknown certificate CN=evil@host1")

    # No client certificate, a foreign CA, a serverAuth-only certificate and an
    # expired one: refused at the handshake (curl fails, no HTTP status).
    from conftest import OpensslPKI
    import datetime
    foreign = OpensslPKI(str(tmp_path / "foreign"), name="Foreign CA")
    foreign_master = foreign.issue("master", "tandem-master", ou="master", eku=("clientAuth",))
    server_only = pki.issue("srvonly", "tandem-master", ou="master", eku=("serverAuth",))
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = pki.issue("expired", "tandem-master", ou="master", eku=("clientAuth",),
                        not_before=now - datetime.timedelta(days=10),
                        not_after=now - datetime.timedelta(days=1))
    url = "https://127.0.0.1:%d/health" % port
    for who in (None, foreign_master, server_only, expired):
        rc, status, _, err = curl(pki, who, url)
        assert rc != 0 and status is None, (who, status, err)
    assert p.alive()
    assert p.stop() == 0


def test_ipv6_listen(procs, tmp_path, pki, agent_cfg):
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    p, port, _ = start_agent(procs, tmp_path, ["--config", agent_cfg, "--listen", "[::1]:0"])
    # The certificate names DNS:localhost: resolve it to ::1 for curl.
    rc, status, _, body = curl(pki, pki.master, "https://localhost:%d/health" % port,
                               "--resolve", "localhost:%d:[::1]" % port)
    assert rc == 0 and status == 200, body
    assert json.loads(body)["role"] == "agent"
    # Nothing answers on IPv4 for that port.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    assert p.stop() == 0

    # "[::]" serves both families.
    p, port, _ = start_agent(procs, tmp_path, ["--config", agent_cfg, "--listen", "[::]:0"],
                             name="dual")
    assert get_json(pki, pki.master, port, "/livez")[0] == 200
    rc, status, _, body = curl(pki, pki.master, "https://localhost:%d/livez" % port,
                               "--resolve", "localhost:%d:[::1]" % port)
    assert rc == 0 and status == 200, body
    assert p.stop() == 0


# ---------------------------------------------------------------- config, -n, self-test

def test_config_file_strict_and_flags_override(procs, tmp_path, pki):
    agent = bin_path("tandem-agent")
    cfg = os.path.join(pki.dir, "strict.conf")
    write_config(cfg, pki, colour="blue")
    r = run([agent, "--config", cfg, "-n"], check=False, cwd=str(tmp_path))
    assert r.returncode == 2
    assert "colour" in r.stderr and "strict.conf:7: unknown key" in r.stderr

    # Relative paths resolve against the config file's directory, not the cwd.
    write_config(cfg, pki, listen="127.0.0.1:1")
    r = run([agent, "--config", cfg, "-n"], cwd=str(tmp_path))
    assert r.stdout.startswith("configuration ok: certificate CN=host1")

    # --print-config shows the flag's value over the file's and re-parses.
    r = run([agent, "--config", cfg, "--listen", "127.0.0.1:0", "--master-cn", "boss",
             "--print-config"], cwd=str(tmp_path))
    assert 'listen = "127.0.0.1:0"' in r.stdout and 'master_cn = "boss"' in r.stdout
    assert 'ca = "%s"' % os.path.realpath(pki.ca_crt) in r.stdout
    printed = str(tmp_path / "printed.conf")
    with open(printed, "w") as f:
        f.write(r.stdout)
    r2 = run([agent, "--config", printed, "--print-config"])
    assert r2.stdout == r.stdout

    # The flag wins at run time too: the file's port 1 is never tried.
    p, port, _ = start_agent(procs, tmp_path, ["--config", cfg, "--listen", "127.0.0.1:0"])
    assert port != 1
    assert get_json(pki, pki.master, port, "/health")[0] == 200
    assert p.stop() == 0

    # Usage errors exit 2 with a reason.
    for args, why in (([], "ca is not set"), (["--config", cfg, "--bogus"], "unknown option"),
                      (["--config", cfg, "-n", "--self-test"], "exclude each other"),
                      (["--config", cfg, "--ready-fd", "x"], "--ready-fd"),
                      (["--config", cfg, "-o", "max_conns=0"], "max_conns"),
                      (["--config", cfg, "--listen", "nonsense"], "listen"),
                      (["--config", str(tmp_path / "missing.conf")], "missing.conf")):
        r = run([agent] + args, check=False)
        assert r.returncode == 2, (args, r.stderr)
        assert why in r.stderr, (args, r.stderr)

    # -n fails (1) for certificate problems.
    wrong = os.path.join(pki.dir, "wrongkey.conf")
    write_config(wrong, pki, key=os.path.basename(pki.updater[1]))
    r = run([agent, "--config", wrong, "-n"], check=False)
    assert r.returncode == 1 and "configuration check failed" in r.stderr


def one_line(r):
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    return lines[0]


def test_self_test(tmp_path, pki, agent_cfg):
    agent = bin_path("tandem-agent")
    r = run([agent, "--config", agent_cfg, "--self-test"])
    assert re.fullmatch(r"self-test: ok \(certificate CN=host1 valid until \S+, key matches, "
                        r"127\.0\.0\.1:0 can be bound\)", one_line(r))

    # A missing key.
    cfg = os.path.join(pki.dir, "nokey.conf")
    write_config(cfg, pki, key="does-not-exist.key")
    r = run([agent, "--config", cfg, "--self-test"], check=False)
    assert r.returncode == 1
    line = one_line(r)
    assert line.startswith("self-test: FAILED: ") and "does-not-exist.key" in line

    # A key that does not match the certificate.
    write_config(cfg, pki, key=os.path.basename(pki.updater[1]))
    r = run([agent, "--config", cfg, "--self-test"], check=False)
    assert r.returncode == 1
    line = one_line(r)
    assert line.startswith("self-test: FAILED: ") and "match" in line, line

    # A certificate of the wrong role (the updater's cert with its own key).
    write_config(cfg, pki, cert=os.path.basename(pki.updater[0]),
                 key=os.path.basename(pki.updater[1]))
    r = run([agent, "--config", cfg, "--self-test"], check=False)
    assert r.returncode == 1 and "role updater, not agent" in one_line(r)

    # A port already in use.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = run([agent, "--config", agent_cfg, "--listen", "127.0.0.1:%d" % port,
                 "--self-test"], check=False)
        assert r.returncode == 1
        line = one_line(r)
        assert line.startswith("self-test: FAILED: cannot bind 127.0.0.1:%d" % port)
        assert "in use" in line
    # The same port passes once it is free again.
    r = run([agent, "--config", agent_cfg, "--listen", "127.0.0.1:%d" % port, "--self-test"])
    assert one_line(r).startswith("self-test: ok")


# ---------------------------------------------------------------- readiness and signals

def test_ready_fd_only_once_listening(procs, tmp_path, pki, agent_cfg):
    p, port, data = start_agent(procs, tmp_path, ["--config", agent_cfg])
    # The pipe carried exactly one line and was closed (read_ready saw EOF);
    # the port accepts at once, with no retry.
    assert data == b"READY port=%d\n" % port
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    err = p.stderr()
    assert err.index("listening on") < err.index("ready on port %d" % port)

    # Failing to listen: no ready line, the pipe just closes, exit 1.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        bport = busy.getsockname()[1]
        q, qport, qdata = start_agent(procs, tmp_path, ["--config", agent_cfg, "--listen",
                                                        "127.0.0.1:%d" % bport],
                                      name="busy", expect_ready=False)
        assert qdata == b"" and qport is None
        assert q.wait() == 1
        assert "Address already in use" in q.stderr()

    # A --ready-fd that is not open is refused before anything starts.
    r = run([bin_path("tandem-agent"), "--config", agent_cfg, "--ready-fd", "77"], check=False)
    assert r.returncode == 1 and "not an open file descriptor" in r.stderr
    assert p.stop() == 0


def test_sd_notify(procs, tmp_path, pki, agent_cfg):
    sock_path = str(tmp_path / "notify.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(sock_path)
    srv.settimeout(15)
    try:
        p, port, _ = start_agent(procs, tmp_path, ["--config", agent_cfg],
                                 env={"NOTIFY_SOCKET": sock_path})
        msg = srv.recv(4096).decode()
        assert msg == "READY=1\nMAINPID=%d" % p.pid
        p.signal(signal.SIGTERM)
        assert srv.recv(4096).decode() == "STOPPING=1"
        assert p.wait() == 0
    finally:
        srv.close()


def test_sighup_reopens_log_file(procs, tmp_path, pki, agent_cfg):
    log = str(tmp_path / "agent.log")
    p, port, _ = start_agent(procs, tmp_path, ["--config", agent_cfg, "--log-file", log])
    wait_until(lambda: "ready on port" in open(log).read(), 5, "ready in the log file")
    os.rename(log, log + ".1")
    p.signal(signal.SIGHUP)
    wait_until(lambda: os.path.exists(log) and "log file reopened" in open(log).read(), 10,
               "a new log file after SIGHUP")
    assert get_json(pki, pki.master, port, "/livez")[0] == 200
    assert p.stop() == 0
    assert "stopped" in open(log).read()
    assert "stopped" not in open(log + ".1").read()


def test_sigterm_with_request_in_flight(procs, tmp_path, pki, agent_cfg, releases):
    """SIGTERM while a request runs: it finishes, new connections are refused,
    /readyz turns 503 on a kept-alive connection, the agent exits 0."""
    _, _, rel = releases.get("9.9.9-test", "slow-health")
    exe = os.path.join(rel, "bin", "tandem-agent")
    p, port, _ = start_agent(procs, tmp_path, ["--config", agent_cfg], exe=exe,
                             env={"TANDEM_SLOW_MS": "1500"})
    keep = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                       context=ssl_context(pki, pki.master))
    keep.request("GET", "/readyz")
    resp = keep.getresponse()
    assert resp.status == 200 and json.loads(resp.read()) == {"status": "ready"}

    inflight = subprocess.Popen(
        ["curl", "-sS", "--max-time", "20", "--cacert", pki.ca_crt, "--cert", pki.master[0],
         "--key", pki.master[1], "-w", "\n%{http_code}", "https://127.0.0.1:%d/health" % port],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.wait_line(r"slow-health: holding GET /health", stream="stderr")
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        p.wait_line(r"signal SIGTERM: stopping", stream="stderr")
        p.wait_line(r"no longer accepting connections; 1 request\(s\) in flight",
                    stream="stderr")
        # An already open keep-alive connection learns that we are going away.
        keep.request("GET", "/readyz")
        resp = keep.getresponse()
        assert resp.status == 503
        assert "stopping" in json.loads(resp.read())["detail"]["error"]
        # A new connection is no longer served (it gets no HTTP answer at all).
        late = subprocess.run(
            ["curl", "-sS", "--max-time", "20", "--cacert", pki.ca_crt, "--cert",
             pki.master[0], "--key", pki.master[1], "-w", "%{http_code}",
             "https://127.0.0.1:%d/livez" % port], capture_output=True, timeout=30)
        assert late.returncode != 0 and late.stdout in (b"", b"000"), late
        out, err = inflight.communicate(timeout=20)
    finally:
        if inflight.poll() is None:
            inflight.kill()
        keep.close()
    body, _, code = out.decode().rpartition("\n")
    assert code == "200", (out, err)
    h = json.loads(body)
    assert h["status"] == "ok" and h["version"] == "9.9.9-test" and h["pid"] == p.pid
    assert p.wait() == 0
    assert time.monotonic() - t0 < 8
    assert "request(s) still running" not in p.stderr()


def test_sigterm_grace_expires(procs, tmp_path, pki, releases):
    """A request longer than shutdown_grace is cut; the agent still exits 0 promptly."""
    _, _, rel = releases.get("9.9.9-test", "slow-health")
    cfg = write_config(os.path.join(pki.dir, "grace.conf"), pki, shutdown_grace="300ms")
    p, port, _ = start_agent(procs, tmp_path, ["--config", cfg],
                             exe=os.path.join(rel, "bin", "tandem-agent"),
                             env={"TANDEM_SLOW_MS": "4000"})
    inflight = subprocess.Popen(
        ["curl", "-sS", "--max-time", "20", "--cacert", pki.ca_crt, "--cert", pki.master[0],
         "--key", pki.master[1], "https://127.0.0.1:%d/health" % port],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.wait_line(r"slow-health: holding", stream="stderr")
        p.signal(signal.SIGTERM)
        # The handler itself still runs to its end (4 s); the exit waits for it
        # (libmicrohttpd joins its threads) but not for the grace to pass twice.
        assert p.wait(timeout=15) == 0
        p.wait_line(r"still running after 300 ms", stream="stderr")
        out, _ = inflight.communicate(timeout=20)
        # The connection was cut after the grace: the client got no answer.
        assert inflight.returncode != 0 and out == b""
    finally:
        if inflight.poll() is None:
            inflight.kill()


# ---------------------------------------------------------------- make release

def test_make_release_tarball(procs, tmp_path, pki, agent_cfg, releases):
    tarball, digest, rel = releases.get("9.9.9-test")
    with open(tarball, "rb") as f:
        raw = f.read()
    assert hashlib.sha256(raw).hexdigest() == digest
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0", "gzip -n: no mtime"

    # Deterministic: the same version built again gives the same bytes.
    r, again = releases.make("9.9.9-test", out=str(tmp_path / "again.tar.gz"))
    with open(again, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == digest
    assert r.stdout.strip().splitlines()[-1] == "%s  %s" % (digest, again)

    expected = ["bin", "bin/tandem-agent", "bin/tandem-updater", "files.json", "manifest.json"]
    with tarfile.open(tarball, "r:gz") as t:
        members = t.getmembers()
        assert [m.name for m in members] == expected
        for m in members:
            assert (m.uid, m.gid, m.mtime) == (0, 0, 0), m.name
            assert not m.issym() and not m.islnk()
        modes = {m.name: m.mode for m in members}
        assert modes["bin/tandem-agent"] == 0o755 and modes["manifest.json"] == 0o644
        assert members[0].isdir()
        manifest = json.load(t.extractfile("manifest.json"))
        files = json.load(t.extractfile("files.json"))
    # files.json lists every other member with the digest of its bytes.
    assert [f["path"] for f in files["files"]] == [n for n in expected if n != "files.json"]
    want = {"name": "tandem-agent", "version": "9.9.9-test", "entrypoint": "bin/tandem-agent",
            "preflight": ["bin/tandem-agent", "--self-test"],
            "updater_entrypoint": "bin/tandem-updater",
            # tandem-agent takes --ready-fd: the updater waits for its READY line.
            "readiness": "ready-fd"}
    assert manifest == want

    # The extracted binary is stamped with the version and reads the release
    # record of the directory it runs from.
    exe = os.path.join(rel, "bin", "tandem-agent")
    assert run([exe, "--version"]).stdout.strip() == "tandem-agent 9.9.9-test"
    assert one_line(run([exe, "--config", agent_cfg, "--self-test"])).startswith("self-test: ok")
    with open(os.path.join(rel, "release.json"), "w") as f:
        json.dump({"sha": "v9 label", "sha256": digest.upper(), "version": "9.9.9-test",
                   "installed_at": "2026-01-01T00:00:00Z"}, f)
    p, port, _ = start_agent(procs, tmp_path, ["--config", agent_cfg], exe=exe)
    status, h = get_json(pki, pki.updater, port, "/health")
    assert status == 200 and h["version"] == "9.9.9-test"
    assert h["release"] == {"sha": "v9 label", "sha256": digest}
    assert p.stop() == 0

    # A malformed record: both null, the agent still serves.
    with open(os.path.join(rel, "release.json"), "w") as f:
        f.write('{"sha": "x", "sha256": ')
    p, port, _ = start_agent(procs, tmp_path, ["--config", agent_cfg], exe=exe, name="bad")
    assert get_json(pki, pki.master, port, "/health")[1]["release"] == {"sha": None,
                                                                         "sha256": None}
    assert "release record unusable" in p.stderr()
    assert p.stop() == 0
    os.unlink(os.path.join(rel, "release.json"))

    # Bad parameters are refused before anything is built.
    r, _ = releases.make("9.9.9-test", kind="half-broken", check=False)
    assert r.returncode != 0 and "RELEASE_KIND" in r.stderr
    r, _ = releases.make("1.0/../x", check=False)
    assert r.returncode != 0 and "VERSION" in r.stderr


def test_broken_release_kinds(procs, tmp_path, pki, agent_cfg, releases):
    exes = {}
    for kind in ("exit-at-once", "never-ready", "wrong-version", "crash-later"):
        _, _, rel = releases.get("7.0.0", kind)
        exes[kind] = os.path.join(rel, "bin", "tandem-agent")
        # Every kind gets past the updater's preflight.
        r = run([exes[kind], "--config", agent_cfg, "--self-test"])
        assert one_line(r).startswith("self-test: ok"), kind
        assert run([exes[kind], "--version"]).stdout.strip() == "tandem-agent 7.0.0"

    p, port, data = start_agent(procs, tmp_path, ["--config", agent_cfg],
                                exe=exes["exit-at-once"], name="exit", expect_ready=False)
    assert data == b"" and p.wait() == 1

    p, port, _ = start_agent(procs, tmp_path, ["--config", agent_cfg], exe=exes["never-ready"],
                             name="never")
    for _ in range(3):
        status, h = get_json(pki, pki.updater, port, "/health")
        assert status == 503 and h["status"] == "starting" and h["version"] == "7.0.0"
        status, body = get_json(pki, pki.updater, port, "/readyz")
        assert status == 503
    assert get_json(pki, pki.updater, port, "/livez")[0] == 200
    assert p.stop() == 0

    p, port, _ = start_agent(procs, tmp_path, ["--config", agent_cfg],
                             exe=exes["wrong-version"], name="wrong")
    status, h = get_json(pki, pki.updater, port, "/health")
    assert status == 200 and h["version"] == "0.0.0-wrong"
    assert p.stop() == 0

    t0 = time.monotonic()
    p, port, _ = start_agent(procs, tmp_path, ["--config", agent_cfg], exe=exes["crash-later"],
                             name="crash", env={"TANDEM_CRASH_AFTER_MS": "1500"})
    status, h = get_json(pki, pki.updater, port, "/health")
    assert status == 200 and h["version"] == "7.0.0"
    assert p.wait(timeout=15) == 1
    assert time.monotonic() - t0 >= 1.4
