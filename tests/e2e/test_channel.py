"""The secure channel end to end: every mTLS refusal, limit and deadline.

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
import threading
import time

import pytest

from conftest import OpensslPKI, Proc, bin_path, run, wait_until
from worker_util import curl_run

BIG_UPLOAD_MB = int(os.environ.get("TANDEM_BIG_UPLOAD_MB", "200"))
FORM_MB = int(os.environ.get("TANDEM_FORM_MB", "64"))
RSS_LIMIT_KB = 16 * 1024
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def is_sanitized_build(path):
    """ASan or TSan: shadow memory makes RSS bounds meaningless."""
    with open(path, "rb") as f:
        data = f.read()
    return b"__asan_init" in data or b"__tsan_init" in data


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


def curl(srv, pki, path, cert="master", extra=(), timeout=120, cacert=None, input=None):
    """curl PATH on SRV; CERT is a pki attribute name, a (crt, key) pair or None.

    Returns (returncode, http_code or None, body, stderr)."""
    who = None
    if cert is not None:
        who = getattr(pki, cert) if isinstance(cert, str) else cert
    r = curl_run(srv.url + path, cacert or pki.ca_crt, who, *extra, max_time=timeout - 5,
                 input=input, real_curl=True)
    return r.rc, r.status, r.body, r.stderr


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
    """CA-signed, clientAuth, but the subject names no role: past TLS, then 403 with
    the JSON error on every route but those open to any client."""
    crt = pki.issue("norole", cn, ou=ou, eku=("clientAuth",))
    srv = testd()
    assert_no_role(srv, pki, crt, cn)
    assert_serves(srv, pki, cert="master")


def assert_no_role(srv, pki, crt, cn):
    # A route open to any client answers it and shows how it was mapped.
    j = get_json(srv, pki, "/whoami", cert=crt)
    assert j["role"] == "unknown" and j["cn"] == cn and j["host"] == ""
    srv.wait_log(r"connected with CN=\"%s\" .*which maps to no role" % re.escape(cn))
    # A role mask, and a route that names no roles, both refuse it: 403 and a reason.
    for path, extra in (("/master-only", ()), ("/stats", ()),
                        ("/small", ("--data-binary", "x" * 10))):
        rc, code, body, err = curl(srv, pki, path, cert=crt, extra=extra)
        assert rc == 0 and code == 403, (path, code, body, err)
        why = json.loads(body)["detail"]["error"]
        assert why.endswith("is not allowed for unknown certificate CN=%s" % cn), why


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
    assert_no_role(srv, pki, pki.master, "tandem-master")
    assert_serves(srv, pki, cert="agent")
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
        s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\nX-Trickle: ")
        t0 = time.monotonic()
        cut = None
        # One byte of a header value every 50 ms, far below any size limit:
        # only the header deadline can end this.
        while time.monotonic() - t0 < 15:
            try:
                s.sendall(b"a")
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


def test_per_ip_connection_limit(testd, pki):
    srv = testd("--max-per-ip", "2")
    held = [tls_socket(srv, pki, cert="agent"), tls_socket(srv, pki, cert="agent")]
    try:
        for s in held:
            s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s)[0] == 200
        # A third agent connection from the same address is told it is busy.
        s3 = tls_socket(srv, pki, cert="agent")
        try:
            st, hdrs, body = read_response(s3)
        finally:
            s3.close()
        assert st == 503 and hdrs.get("retry-after") == "1", (st, hdrs)
        assert "server busy" in json.loads(body)["detail"]["error"]
        srv.wait_log(r"refused: agent certificate CN=host1: busy")
        rc, code, _, _ = curl(srv, pki, "/whoami", cert="agent")
        assert code == 503
        # The master is not limited per address.
        assert curl(srv, pki, "/whoami")[1] == 200
        # The held connections are unaffected.
        for s in held:
            s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s)[0] == 200
        held.pop().close()
        # Once one is closed, the slot frees (the relay notices the EOF).
        wait_until(lambda: curl(srv, pki, "/whoami", cert="agent")[1] == 200, 10,
                   "a freed slot")
    finally:
        for s in held:
            s.close()
    wait_until(lambda: stats(srv, pki)["connections"] == 1, 10, "connections to drain")


def test_silent_connections_evicted_per_address(testd, pki):
    """An address holds at most --max-per-ip silent connections: a newer one
    evicts its oldest, and a real client still gets through."""
    srv = testd("--max-per-ip", "2")
    silent = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(3)]
    try:
        silent[0].settimeout(10)
        t0 = time.monotonic()
        try:
            assert silent[0].recv(1) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - t0 < 5.0
        srv.wait_log(r"silent connection evicted")
        assert curl(srv, pki, "/whoami")[1] == 200
    finally:
        for s in silent:
            s.close()


def test_total_connection_limit(testd, pki):
    """Of --max-conns 3, one is kept for the master and the updater."""
    srv = testd("--max-conns", "3")
    held = [tls_socket(srv, pki, cert="agent") for _ in range(2)]
    try:
        for s in held:
            s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s)[0] == 200
        assert curl(srv, pki, "/whoami", cert="agent")[1] == 503
        srv.wait_log(r"busy, every connection open to its role is taken")
        held.append(tls_socket(srv, pki))
        held[-1].sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(held[-1])[0] == 200
        # All 3 taken: even the master is told it is busy.
        assert curl(srv, pki, "/whoami")[1] == 503
    finally:
        for s in held:
            s.close()
    wait_until(lambda: curl(srv, pki, "/whoami")[1] == 200, 10, "slots to free")
    wait_until(lambda: stats(srv, pki)["connections"] == 1, 10, "connections to drain")


# ---------------------------------------------------------------- interop


@pytest.mark.parametrize("who,role,host", [
    ("master", "master", ""),
    ("agent", "agent", "host1"),
    ("updater", "updater", "host1"),
])
def test_curl_identity(testd, pki, who, role, host):
    srv = testd()
    j = get_json(srv, pki, "/whoami", cert=who)
    crt = getattr(pki, who)[0]
    assert j["role"] == role and j["host"] == host and j["ou"] == role
    assert j["fingerprint"] == pki.fingerprint(crt)
    assert re.fullmatch(r"[0-9a-f]{64}", j["fingerprint"])
    assert j["peer"] == "127.0.0.1"


def test_curl_by_hostname_and_wrong_ca(testd, pki, tmp_path):
    srv = testd()
    # By name (DNS SAN) as well as by IP (IP SAN).
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", pki.ca_crt,
                        "--cert", pki.master[0], "--key", pki.master[1],
                        "--resolve", "localhost:%d:127.0.0.1" % srv.port,
                        "https://localhost:%d/whoami" % srv.port],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["role"] == "master"
    # curl that trusts another CA refuses our server.
    other = OpensslPKI(str(tmp_path / "other"), name="Other CA")
    rc, code, body, err = curl(srv, pki, "/whoami", cacert=other.ca_crt)
    assert rc != 0 and code is None
    assert_serves(srv, pki)


def s_client(srv, cert, cafile, request, extra=()):
    crt, key = cert
    return subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port,
                           "-servername", "localhost", "-cert", crt, "-key", key,
                           "-CAfile", cafile, "-verify_return_error", "-ign_eof"] + list(extra),
                          input=request, capture_output=True, timeout=30)


def test_openssl_s_client(testd, pki):
    srv = testd()
    r = s_client(srv, pki.agent, pki.ca_crt,
                 b"GET /whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, out + r.stderr.decode(errors="replace")
    assert "Verify return code: 0 (ok)" in out
    assert re.search(r"Protocol\s*:\s*TLSv1\.2", out)
    # Our preference: ChaCha20-Poly1305 first, ECDHE always.
    assert re.search(r"Cipher\s*:\s*ECDHE-ECDSA-CHACHA20-POLY1305", out), out
    assert "HTTP/1.1 200 OK" in out
    body = out[out.index("HTTP/1.1 200 OK"):].split("\r\n\r\n", 1)[1]
    body = body[:body.index("}\n") + 1]
    assert json.loads(body)["fingerprint"] == pki.fingerprint(pki.agent[0])
    assert_serves(srv, pki)


def test_rsa_certificates(testd, pki):
    rsa_server = pki.issue("rsa-server", "localhost", ou="agent",
                           eku=("serverAuth", "clientAuth"), key_type="rsa")
    pki.rsa_client = pki.issue("rsa-client", "host7", ou="agent", eku=("clientAuth",),
                               key_type="rsa")
    for server_cert in (None, rsa_server):
        srv = testd(cert=server_cert)
        j = get_json(srv, pki, "/whoami", cert="rsa_client")
        assert j["cn"] == "host7" and j["role"] == "agent"
        assert j["fingerprint"] == pki.fingerprint(pki.rsa_client[0])
        r = s_client(srv, pki.rsa_client, pki.ca_crt,
                     b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = r.stdout.decode(errors="replace")
        assert r.returncode == 0 and "HTTP/1.1 200 OK" in out, out
        if server_cert is not None:
            assert "ECDHE-RSA-" in out
        assert_serves(srv, pki)


def test_key_readable_by_others_refused(tmp_path, pki):
    crt, key = pki.server
    os.chmod(key, 0o644)
    r = run([bin_path("tandem-testd"), "--ca", pki.ca_crt, "--cert", crt, "--key", key],
            check=False, timeout=20)
    assert r.returncode == 1
    assert "private key is accessible by group/others" in r.stderr
    assert "READY" not in r.stdout


# ---------------------------------------------------------------- streaming and load


def test_big_streamed_upload_intact_in_bounded_memory(testd, pki, tmp_path):
    path = str(tmp_path / "big.bin")
    digest = make_file(path, BIG_UPLOAD_MB)
    srv = testd()
    before = stats(srv, pki)
    # -T streams the file (no whole-file buffer in curl); -X POST keeps the route.
    rc, code, body, err = curl(srv, pki, "/upload",
                               extra=["-T", path, "-X", "POST", "-H", "Expect:",
                                      "-H", "Content-Type: application/octet-stream"],
                               timeout=600)
    assert rc == 0 and code == 200, (rc, code, body, err)
    j = json.loads(body)
    assert j["bytes"] == BIG_UPLOAD_MB << 20
    assert j["sha256"] == digest
    after = stats(srv, pki)
    print("testd VmHWM before %d kB, after %d MiB upload %d kB"
          % (before["vmhwm_kb"], BIG_UPLOAD_MB, after["vmhwm_kb"]))
    if is_sanitized_build(srv.bin):
        pytest.skip("RSS bound not meaningful under ASan/TSan (shadow memory, quarantine)")
    assert 0 < after["vmhwm_kb"] < RSS_LIMIT_KB, after
    os.unlink(path)


def test_big_multipart_upload_intact(testd, pki, tmp_path):
    path = str(tmp_path / "release.tar.gz")
    digest = make_file(path, FORM_MB)
    srv = testd()
    rc, code, body, err = curl(srv, pki, "/form",
                               extra=["-H", "Expect:", "-F", "sha=v1.2.3",
                                      "-F", "tarball=@%s;type=application/gzip" % path,
                                      "-F", "sha256=%s" % digest],
                               timeout=600)
    assert rc == 0 and code == 200, (rc, code, body, err)
    parts = json.loads(body)["parts"]
    assert [p["name"] for p in parts] == ["sha", "tarball", "sha256"]
    assert parts[0]["bytes"] == 6
    assert parts[0]["sha256"] == hashlib.sha256(b"v1.2.3").hexdigest()
    assert parts[1]["filename"] == "release.tar.gz"
    assert parts[1]["bytes"] == FORM_MB << 20
    assert parts[1]["sha256"] == digest
    assert parts[2]["sha256"] == hashlib.sha256(digest.encode()).hexdigest()
    if not is_sanitized_build(srv.bin):
        assert stats(srv, pki)["vmhwm_kb"] < RSS_LIMIT_KB
    os.unlink(path)


def test_body_limit_and_bad_multipart(testd, pki):
    srv = testd()
    rc, code, body, _ = curl(srv, pki, "/small", extra=["--data-binary", "x" * 1024])
    assert code == 200 and json.loads(body)["bytes"] == 1024
    rc, code, body, _ = curl(srv, pki, "/small", extra=["--data-binary", "x" * 1025])
    assert code == 413, body
    assert "exceeds the limit of 1024 bytes" in json.loads(body)["detail"]["error"]
    # Chunked (no Content-Length): refused from the headers, the body unread.
    rc, code, body, _ = curl(srv, pki, "/small",
                             extra=["-H", "Transfer-Encoding: chunked",
                                    "--data-binary", "@-"], input=b"y" * 200000)
    assert code == 400, (rc, body)
    assert "Transfer-Encoding" in json.loads(body)["detail"]["error"]
    rc, code, body, _ = curl(srv, pki, "/form", extra=["--data-binary", "not multipart"])
    assert code == 400 and "multipart" in json.loads(body)["detail"]["error"]
    assert_serves(srv, pki)


def test_hundred_requests_on_one_keepalive_connection(testd, pki):
    srv = testd("--debug")
    crt, key = pki.master
    argv = ["curl", "-sS", "--max-time", "60", "--cacert", pki.ca_crt, "--cert", crt,
            "--key", key, "-w", "\n@@ %{http_code} %{num_connects}\n"]
    argv += [srv.url + "/whoami"] * 100
    r = subprocess.run(argv, capture_output=True, timeout=90)
    assert r.returncode == 0, r.stderr
    marks = re.findall(r"^@@ (\d+) (\d+)$", r.stdout.decode(), re.M)
    assert len(marks) == 100
    assert all(code == "200" for code, _ in marks)
    assert sum(int(n) for _, n in marks) == 1, "curl opened more than one connection"
    # The server saw exactly one TLS handshake for all of them.
    wait_until(lambda: srv.log().count("GET /whoami 200") == 100, 10, "100 request logs")
    assert len(re.findall(r"127\.0\.0\.1 connected as tandem-master", srv.log())) == 1


def test_client_reset_mid_upload(testd, pki):
    srv = testd()
    s = tls_socket(srv, pki)
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
              b"Content-Type: application/octet-stream\r\n\r\n" % (100 << 20))
    chunk = os.urandom(1 << 16)
    for _ in range(80):  # 5 MiB of the announced 100
        s.sendall(chunk)
    wait_until(lambda: stats(srv, pki)["requests"] == 2, 10, "the upload to be in flight")
    # RST instead of FIN, no close_notify.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    wait_until(lambda: stats(srv, pki)["connections"] == 1, 10,
               "the reset connection to be released")
    st = stats(srv, pki)
    assert st["requests"] == 1  # only the /stats request itself
    srv.wait_log(r"POST /upload unanswered .* aborted .*client went away|"
                 r"closing connection .*TLS read failed")
    assert_serves(srv, pki)


def test_graceful_sigterm_finishes_request_in_flight(testd, pki):
    srv = testd()
    crt, key = pki.master
    slow = subprocess.Popen(["curl", "-sS", "--max-time", "30", "--cacert", pki.ca_crt,
                             "--cert", crt, "--key", key, srv.url + "/slow?ms=20000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: stats(srv, pki)["requests"] == 2, 10, "/slow to be in flight")
        t0 = time.monotonic()
        srv.proc.signal(signal.SIGTERM)
        out, err = slow.communicate(timeout=30)
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
    assert slow.returncode == 0, err
    assert json.loads(out) == {"slept_ms": 20000}
    assert srv.proc.wait(timeout=20) == 0
    # The handler saw the shutdown and wrapped up early instead of holding the stop
    # (the server's grace period is 5 s; the request alone would take 20 s).
    assert time.monotonic() - t0 < 10
    srv.wait_log(r"testd: stopped")


@pytest.mark.parametrize("tickets", [True, False])
def test_session_resumption_keeps_identity(testd, pki, tmp_path, tickets):
    """A resumed session (ticket) still yields the full, re-checked identity."""
    srv = testd() if tickets else testd("--no-tickets")
    sess = str(tmp_path / "sess.pem")
    req = b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answers = []
    for extra in (["-sess_out", sess], ["-sess_in", sess]):
        r = s_client(srv, pki.updater, pki.ca_crt, req, extra=extra)
        out = r.stdout.decode(errors="replace")
        assert r.returncode == 0 and "HTTP/1.1 200 OK" in out, out
        body = out[out.index("HTTP/1.1 200 OK"):].split("\r\n\r\n", 1)[1]
        answers.append((out, json.loads(body[:body.index("}\n") + 1])))
    (first_out, first), (second_out, second) = answers
    assert first["resumed"] is False
    assert first_out.count("\nNew, TLSv1.2") == 1
    if tickets:
        assert "\nReused, TLSv1.2" in second_out
        assert second["resumed"] is True
    else:
        assert "\nReused," not in second_out
        assert second["resumed"] is False
    for j in (first, second):
        assert j["cn"] == "updater@host1" and j["role"] == "updater" and j["host"] == "host1"
        assert j["fingerprint"] == pki.fingerprint(pki.updater[0])
    assert_serves(srv, pki)


def test_ipv6_loopback(testd, pki):
    srv = testd("--listen", "[::1]:0")  # the last --listen wins
    raw = socket.create_connection(("::1", srv.port), timeout=10)
    with client_ctx(pki, "agent").wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = read_response(s)
    assert status == 200 and headers["content-type"] == "application/json"
    j = json.loads(body)
    assert j["peer"] == "::1" and j["role"] == "agent"


def test_oversized_request_headers(testd, pki):
    srv = testd()
    s = tls_socket(srv, pki)
    try:
        s.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(64):  # 64 x 8 KiB of headers, far over the server's buffer
                s.sendall(b"X-Pad: " + b"p" * 8192 + b"\r\n")
            s.sendall(b"\r\n")
            status, _, _ = read_response(s, deadline_s=10)
            assert status in (413, 431, 400), status
        except (ConnectionError, ssl.SSLError, OSError):
            pass  # cut off instead of answered: just as good
    finally:
        s.close()
    wait_until(lambda: stats(srv, pki)["connections"] == 1, 10, "the connection to go")
    assert_serves(srv, pki)


def test_expect_100_continue(testd, pki, tmp_path):
    srv = testd()
    path = str(tmp_path / "two.bin")
    digest = make_file(path, 2)
    # curl waits for "100 Continue" before sending the body.
    rc, code, body, err = curl(srv, pki, "/upload",
                               extra=["-T", path, "-X", "POST",
                                      "-H", "Expect: 100-continue", "-v"])
    assert code == 200, (body, err)
    assert "HTTP/1.1 100 Continue" in err
    assert json.loads(body)["sha256"] == digest
    # Too large: refused on the headers, the body is never sent.
    rc, code, body, err = curl(srv, pki, "/small",
                               extra=["-T", path, "-X", "POST",
                                      "-H", "Expect: 100-continue", "-v"])
    assert code == 413, (body, err)
    assert "100 Continue" not in err
    assert_serves(srv, pki)


def test_concurrent_clients(testd, pki):
    """Many clients at once, each uploading and reading its own digest back."""
    srv = testd("--max-conns", "40", "--max-per-ip", "40")
    results = {}

    def client(i):
        try:
            data = os.urandom(256 * 1024 + i)
            with tls_socket(srv, pki, cert="agent" if i % 2 else "updater") as s:
                for _ in range(3):  # keep-alive, several requests each
                    s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                              % len(data) + data)
                    status, _, body = read_response(s)
                    ok = status == 200 and json.loads(body)["sha256"] == \
                        hashlib.sha256(data).hexdigest()
                    if not ok:
                        results[i] = "bad answer %d %r" % (status, body[:200])
                        return
            results[i] = "ok"
        except Exception as e:  # reported below with the client number
            results[i] = repr(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {i: "ok" for i in range(30)}
    wait_until(lambda: stats(srv, pki)["connections"] == 1, 10, "connections to drain")
    assert_serves(srv, pki)
