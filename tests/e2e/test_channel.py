"""The secure channel end to end (issue 2, "What must be shown").

Drives tests/tools/tandem-testd (a server on common/tls + common/httpd) with
independent clients: curl, openssl s_client and Python's ssl module. Every
negative case is followed by a good request to prove the server still serves.
Each server is stopped with SIGTERM at the end of its test and must exit 0
with no sanitizer report (the ASan run thereby checks leaks per case).

Sizes can be reduced for slow (sanitizer) builds:
  TANDEM_BIG_UPLOAD_MB  raw streamed upload (default 200)
  TANDEM_FORM_MB        multipart upload (default 64)
"""

import datetime
import hashlib
import json
import os
import re
import select
import signal
import socket
import ssl
import struct
import subprocess
import time

import pytest

from conftest import OpensslPKI, Proc, bin_path, run, wait_until

BIG_UPLOAD_MB = int(os.environ.get("TANDEM_BIG_UPLOAD_MB", "200"))
FORM_MB = int(os.environ.get("TANDEM_FORM_MB", "64"))
RSS_LIMIT_KB = 16 * 1024
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def is_asan_build(path):
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


# ---------------------------------------------------------------- the server


class Server:
    """A running tandem-testd; stopped and checked at teardown."""

    def __init__(self, logdir, pki, extra=(), cert=None, name="testd"):
        crt, key = cert or pki.server
        self.bin = bin_path("tandem-testd")
        self.argv = [self.bin, "--ca", pki.ca_crt, "--cert", crt, "--key", key,
                     "--listen", "127.0.0.1:0"] + list(extra)
        self.proc = Proc(self.argv, logdir, name=name)
        m = self.proc.wait_line(r"^READY port=(\d+)$")
        self.port = int(m.group(1))
        self.url = "https://127.0.0.1:%d" % self.port

    def log(self):
        return self.proc.stderr()

    def wait_log(self, pattern, timeout=10.0):
        return self.proc.wait_line(pattern, timeout=timeout, stream="stderr")

    def check_clean_stop(self):
        if self.proc.alive():
            rc = self.proc.stop(timeout=20)
            assert rc == 0, "tandem-testd exited %s\n%s" % (rc, self.log()[-4000:])
        err = self.log()
        for mark in SANITIZER_MARKS:
            assert mark not in err, "sanitizer report in tandem-testd stderr:\n" + err[-6000:]


@pytest.fixture
def testd(tmp_path, pki, procs):
    """Factory: testd(extra_args..., cert=(crt, key)) -> TestdServer."""
    started = []

    def start(*extra, cert=None, name=None):
        t = Server(str(tmp_path / "logs"), pki, extra, cert=cert,
                  name=name or "testd%d" % len(started))
        procs.append(t.proc)
        started.append(t)
        return t

    yield start
    for t in started:
        t.check_clean_stop()


# ---------------------------------------------------------------- clients


def curl(srv, pki, path, cert="master", extra=(), timeout=120, cacert=None):
    """curl PATH on SRV; CERT is a pki attribute name, a (crt, key) pair or None.

    Returns (returncode, http_code or None, body, stderr)."""
    argv = ["curl", "-sS", "--max-time", str(timeout - 5), "--cacert", cacert or pki.ca_crt,
            "-o", "-", "-w", "\n@@CODE=%{http_code}"]
    if cert is not None:
        crt, key = getattr(pki, cert) if isinstance(cert, str) else cert
        argv += ["--cert", crt, "--key", key]
    argv += list(extra) + [srv.url + path]
    r = subprocess.run(argv, capture_output=True, timeout=timeout)
    out = r.stdout.decode(errors="replace")
    m = re.search(r"\n@@CODE=(\d+)$", out)
    code = int(m.group(1)) if m and m.group(1) != "000" else None
    body = out[:m.start()] if m else out
    return r.returncode, code, body, r.stderr.decode(errors="replace")


def get_json(srv, pki, path, cert="master", extra=()):
    rc, code, body, err = curl(srv, pki, path, cert=cert, extra=extra)
    assert rc == 0 and code == 200, "GET %s: rc=%d code=%s %s %s" % (path, rc, code, body, err)
    return json.loads(body)


def assert_serves(srv, pki, cert="master"):
    """A good client still gets a correct answer."""
    j = get_json(srv, pki, "/whoami", cert=cert)
    crt = getattr(pki, cert)[0]
    assert j["fingerprint"] == pki.fingerprint(crt)
    return j


def assert_refused(srv, pki, cert, expect_log, good="master"):
    """CERT must not get an HTTP answer; the server logs why; others still served."""
    rc, code, body, err = curl(srv, pki, "/whoami", cert=cert, timeout=30)
    assert rc != 0, "a refused client got an answer: %s %s" % (code, body)
    assert code is None, "a refused client got HTTP %s" % code
    assert '"fingerprint"' not in body
    srv.wait_log(expect_log)
    assert_serves(srv, pki, cert=good)


def client_ctx(pki, cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca_crt)
    crt, key = getattr(pki, cert) if isinstance(cert, str) else cert
    ctx.load_cert_chain(crt, key)
    return ctx


def tls_socket(srv, pki, cert="master", timeout=10.0):
    raw = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    try:
        return client_ctx(pki, cert).wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def read_response(sock, deadline_s=30.0):
    """One HTTP/1.1 response with Content-Length from SOCK: (status, headers, body)."""
    sock.settimeout(deadline_s)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("EOF before the response headers: %r" % buf)
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("EOF inside the response body")
        body += chunk
    return status, headers, body[:n]


def server_closed(sock):
    """True once the peer closed or reset SOCK (non-blocking probe)."""
    r, _, _ = select.select([sock], [], [], 0)
    if not r and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
        return False
    try:
        sock.setblocking(False)
        data = sock.recv(4096)
        return data == b""
    except (ssl.SSLWantReadError, BlockingIOError):
        return False
    except (ConnectionError, ssl.SSLError, OSError):
        return True
    finally:
        sock.setblocking(True)


def stats(srv, pki):
    return get_json(srv, pki, "/stats", extra=["-H", "Connection: close"])


def make_file(path, mb):
    """MB MiB of random bytes at PATH; returns the sha256 hex."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for _ in range(mb):
            chunk = os.urandom(1 << 20)
            h.update(chunk)
            f.write(chunk)
    return h.hexdigest()


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


# ---------------------------------------------------------------- negative matrix


def test_no_client_certificate(testd, pki):
    srv = testd()
    assert_refused(srv, pki, None, r"refused: TLS handshake: .*Certificate was missing")


def test_certificate_from_another_ca(testd, pki, tmp_path):
    other = OpensslPKI(str(tmp_path / "other"), name="Other CA")
    # Same subject as the real master: only the issuer differs.
    foreign = other.issue("master", "tandem-master", ou="master", eku=("clientAuth",))
    srv = testd()
    assert_refused(srv, pki, foreign, r"refused: .*rejected: .*not correctly signed by the trusted CA")


def test_expired_client_certificate(testd, pki):
    now = utcnow()
    crt = pki.issue("expired", "host2", ou="agent", eku=("clientAuth",),
                    not_before=now - datetime.timedelta(days=30),
                    not_after=now - datetime.timedelta(days=1))
    srv = testd()
    assert_refused(srv, pki, crt, r"refused: .*rejected: .*validity has expired")


def test_not_yet_valid_client_certificate(testd, pki):
    now = utcnow()
    crt = pki.issue("future", "host2", ou="agent", eku=("clientAuth",),
                    not_before=now + datetime.timedelta(days=1),
                    not_after=now + datetime.timedelta(days=30))
    srv = testd()
    assert_refused(srv, pki, crt, r"refused: .*rejected: .*validity starts in the future")


def test_server_auth_only_certificate_as_client(testd, pki):
    crt = pki.issue("srvonly", "host2", ou="agent", eku=("serverAuth",))
    srv = testd()
    assert_refused(srv, pki, crt, r"refused: .*rejected: .*extendedKeyUsage")


@pytest.mark.parametrize("cn,ou", [
    ("evil@host2", None),          # '@' but not updater@<host>
    ("updater@", None),            # updater of no host
    ("Tandem-Master", None),       # case variant of the master CN
    ("host2", "master"),           # OU claims another role than the CN
    ("tandem-master", "agent"),
])
def test_subject_mapping_to_no_role(testd, pki, cn, ou):
    crt = pki.issue("norole", cn, ou=ou, eku=("clientAuth",))
    srv = testd()
    assert_refused(srv, pki, crt, r"refused: .*maps to no role")


def test_wrong_role_for_master_only_route(testd, pki):
    srv = testd()
    for cert in ("agent", "updater"):
        rc, code, body, err = curl(srv, pki, "/master-only", cert=cert)
        assert rc == 0 and code == 403, (code, body, err)
        j = json.loads(body)
        assert "not allowed" in j["detail"]["error"]
        cn = "host1" if cert == "agent" else "updater@host1"
        assert j["detail"]["error"].endswith("for %s certificate CN=%s" % (cert, cn))
    assert get_json(srv, pki, "/master-only", cert="master") == {"ok": True}
    assert_serves(srv, pki, cert="agent")


def test_master_cn_is_configurable(testd, pki):
    boss = pki.issue("boss", "fleet-boss", eku=("clientAuth",))
    srv = testd("--master-cn", "fleet-boss")
    rc, code, body, _ = curl(srv, pki, "/master-only", cert=boss)
    assert code == 200, body
    # "tandem-master" is now an ordinary name, and its OU=master contradicts that.
    assert_refused(srv, pki, "master", r"refused: .*maps to no role", good="agent")
    assert get_json(srv, pki, "/whoami", cert=boss)["role"] == "master"


def test_plain_http_to_tls_port(testd, pki):
    srv = testd()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        got = b""
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
    # Cut off promptly (not after the handshake timeout) with no HTTP answer.
    assert time.monotonic() < deadline
    assert b"HTTP/" not in got and b"fingerprint" not in got
    srv.wait_log(r"refused: TLS handshake")
    # curl speaking plain HTTP to the port fails too.
    r = subprocess.run(["curl", "-sS", "--max-time", "10",
                        "http://127.0.0.1:%d/whoami" % srv.port],
                       capture_output=True, timeout=20)
    assert r.returncode != 0 and b"fingerprint" not in r.stdout
    assert_serves(srv, pki)


@pytest.mark.parametrize("proto", ["-tls1", "-tls1_1"])
def test_old_tls_versions_refused(testd, pki, proto):
    srv = testd()
    crt, key = pki.master
    r = subprocess.run(["openssl", "s_client", proto, "-cipher", "DEFAULT@SECLEVEL=0",
                        "-connect", "127.0.0.1:%d" % srv.port, "-servername", "localhost",
                        "-cert", crt, "-key", key, "-CAfile", pki.ca_crt],
                       input=b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                       capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode != 0, out
    assert "HTTP/1.1 200" not in out
    # The ClientHello did reach the server, which refused the version itself.
    srv.wait_log(r"refused: TLS handshake: .*not within min/max boundaries")
    assert_serves(srv, pki)


def test_silent_client_cut_after_handshake_timeout(testd, pki):
    srv = testd("--handshake-timeout-ms", "600")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        t0 = time.monotonic()
        s.settimeout(10)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        elapsed = time.monotonic() - t0
    assert data == b""
    assert 0.5 <= elapsed < 5.0, "silent client cut after %.2fs" % elapsed
    srv.wait_log(r"refused: TLS handshake: timed out after 600 ms")
    assert_serves(srv, pki)


def test_trickling_client_cut_by_header_timeout(testd, pki):
    srv = testd("--header-timeout-ms", "800")
    s = tls_socket(srv, pki)
    try:
        s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n")
        t0 = time.monotonic()
        cut = None
        # One header byte every 50 ms, far below any size limit: only the
        # header deadline can end this.
        while time.monotonic() - t0 < 15:
            try:
                s.sendall(b"X-Trickle: a\r\n"[int((time.monotonic() - t0) * 20) % 14:][:1])
            except (ConnectionError, ssl.SSLError, OSError):
                cut = time.monotonic() - t0
                break
            r, _, _ = select.select([s], [], [], 0.05)  # pacing of the trickle
            if r and server_closed(s):
                cut = time.monotonic() - t0
                break
    finally:
        s.close()
    assert cut is not None, "trickling client never cut off"
    assert 0.7 <= cut < 5.0, "cut after %.2fs" % cut
    srv.wait_log(r"request headers not received in time")
    assert_serves(srv, pki)
