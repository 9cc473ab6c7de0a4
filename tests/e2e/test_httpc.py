"""End-to-end tests of our HTTPS client (common/httpc via tandem-testc).

tandem-testc runs against tandem-testd (common/httpd) and against
`openssl s_server` with certificates from the openssl CLI (`pki` fixture).
Every negative case checks the exit status (1: connection/TLS/pin/timeout,
2: usage) and that nothing is printed as a response.
"""

import hashlib
import json
import os
import re
import socket
import subprocess
import time

import pytest

from conftest import OpensslPKI, Proc, bin_path, free_port, run, wait_port, wait_until


def _testd(pki, procs, tmp_path, *extra, name="testd"):
    crt, key = pki.server
    p = Proc([bin_path("tandem-testd"), "--ca", pki.ca_crt, "--cert", crt, "--key", key]
             + list(extra), str(tmp_path / "logs"), name=name)
    procs.append(p)
    m = p.wait_line(r"READY port=(\d+)")
    return p, int(m.group(1))


@pytest.fixture
def testd(pki, procs, tmp_path):
    """A tandem-testd on 127.0.0.1 with debug logging; (Proc, port)."""
    return _testd(pki, procs, tmp_path, "--debug")


def run_testc(pki, target, path, *args, identity="master", ca=None, timeout=60):
    argv = [bin_path("tandem-testc"), "--ca", ca or pki.ca_crt]
    if identity is not None:
        crt, key = getattr(pki, identity)
        argv += ["--cert", crt, "--key", key]
    argv += list(args) + [target, path]
    return run(argv, check=False, timeout=timeout)


def ok_body(r, status=200):
    assert r.returncode == 0, "exit %d, stderr: %s" % (r.returncode, r.stderr)
    first, _, body = r.stdout.partition("\n")
    assert first == "status=%d" % status, r.stdout[:500]
    return body


def failed(r, pattern, code=1):
    assert r.returncode == code, "exit %d (want %d)\nstdout: %s\nstderr: %s" % (
        r.returncode, code, r.stdout[:500], r.stderr)
    assert r.stdout == "", "a failed exchange printed a response: %r" % r.stdout[:200]
    assert re.search(pattern, r.stderr), "stderr %r lacks /%s/" % (r.stderr, pattern)
    if code == 1:
        assert len(r.stderr.strip().splitlines()) == 1, "reason is not one line: %r" % r.stderr


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_file(path, size):
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n
    return str(path)


def test_whoami_identity(pki, testd):
    _, port = testd
    body = ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/whoami"))
    who = json.loads(body)
    assert who["cn"] == "tandem-master"
    assert who["role"] == "master"
    assert who["fingerprint"] == pki.fingerprint(pki.master[0])
    # Another identity is seen as itself.
    who = json.loads(ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/whoami", identity="updater")))
    assert who["role"] == "updater" and who["host"] == "host1"
    # 403 is a complete response: exit 0 with the status printed.
    body = ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/master-only", identity="agent"), 403)
    assert body


def test_pin_match_and_sni(pki, testd):
    _, port = testd
    fp = pki.fingerprint(pki.server[0])
    ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/whoami", "--pin", fp))
    ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/whoami", "--pin", fp.upper()))
    # The certificate names localhost: the hostname check passes for it, fails otherwise.
    ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/whoami", "--sni", "localhost"))
    failed(run_testc(pki, "127.0.0.1:%d" % port, "/whoami", "--sni", "wrong.example"),
           r"^tandem-testc: TLS handshake: ")


def test_pin_mismatch_fails_closed(pki, testd):
    proc, port = testd
    wrong = pki.fingerprint(pki.agent[0])
    failed(run_testc(pki, "127.0.0.1:%d" % port, "/whoami", "--pin", wrong),
           r"fingerprint [0-9a-f]{64} does not match the pinned " + wrong)
    # A pin that is not a fingerprint is a usage error, before any connection.
    failed(run_testc(pki, "127.0.0.1:%d" % port, "/whoami", "--pin", "abcd"), r"--pin", code=2)
    # The server keeps serving.
    ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/whoami"))
    assert proc.alive()


def test_upload_20mb_digest(pki, testd, tmp_path):
    _, port = testd
    f = make_file(tmp_path / "blob", 20 * 1024 * 1024 + 13)
    body = ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/upload", "--data-file", f))
    res = json.loads(body)
    assert res["bytes"] == 20 * 1024 * 1024 + 13
    assert res["sha256"] == sha256_file(f)


def test_multipart_digests(pki, testd, tmp_path):
    _, port = testd
    f = make_file(tmp_path / "release.tar.gz", 3 * 1024 * 1024 + 1)
    digest = sha256_file(f)
    body = ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/form", "--multipart-file", f,
                         "--field", "sha=v1.2.3", "--field", "sha256=" + digest,
                         "--file-field", "tarball"))
    parts = {p["name"]: p for p in json.loads(body)["parts"]}
    assert set(parts) == {"sha", "sha256", "tarball"}
    assert parts["tarball"]["filename"] == "release.tar.gz"
    assert parts["tarball"]["bytes"] == 3 * 1024 * 1024 + 1
    assert parts["tarball"]["sha256"] == digest
    assert parts["sha"]["sha256"] == hashlib.sha256(b"v1.2.3").hexdigest()
    assert parts["sha256"]["sha256"] == hashlib.sha256(digest.encode()).hexdigest()


def test_413_received_not_send_error(pki, testd, tmp_path):
    proc, port = testd
    small = tmp_path / "small"
    small.write_bytes(b"x" * 1000)
    res = json.loads(ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/small", "--data-file",
                                   str(small))))
    assert res["bytes"] == 1000
    # 20 MB to a 1024-byte endpoint: the server's 413 is the result, promptly.
    big = make_file(tmp_path / "big", 20 * 1024 * 1024)
    t0 = time.monotonic()
    ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/small", "--data-file", big), 413)
    assert time.monotonic() - t0 < 10
    # The same as a multipart form.
    ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/small", "--multipart-file", big), 413)
    # Asking to reuse the connection after a 413 fails: it was closed.
    failed(run_testc(pki, "127.0.0.1:%d" % port, "/small", "--data-file", big, "--repeat", "2"),
           r"not reusable after request 1 of 2 \(status 413\)")
    assert proc.alive()


def test_repeat_100_on_one_connection(pki, testd):
    proc, port = testd
    before = proc.stderr().count("connected as")
    body = ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/whoami", "--repeat", "100"))
    assert json.loads(body)["role"] == "master"
    # The server saw exactly one more TLS connection for the 100 requests.
    wait_until(lambda: proc.stderr().count("connected as") >= before + 1, 5, "the connect log")
    assert proc.stderr().count("connected as") == before + 1


def test_repeat_uploads_on_one_connection(pki, testd, tmp_path):
    _, port = testd
    f = make_file(tmp_path / "blob", 300 * 1000)
    res = json.loads(ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/upload", "--data-file", f,
                                   "--repeat", "5")))
    assert res["bytes"] == 300 * 1000 and res["sha256"] == sha256_file(f)


def test_server_from_other_ca_refused(pki, procs, tmp_path):
    other = OpensslPKI(str(tmp_path / "other"), name="Other CA")
    crt, key = other.issue("server", "localhost", ou="agent", eku=("serverAuth", "clientAuth"))
    p = Proc([bin_path("tandem-testd"), "--ca", pki.ca_crt, "--cert", crt, "--key", key],
             str(tmp_path / "logs"), name="testd-other")
    procs.append(p)
    port = int(p.wait_line(r"READY port=(\d+)").group(1))
    failed(run_testc(pki, "127.0.0.1:%d" % port, "/whoami"), r"^tandem-testc: TLS handshake: ")
    # Control: trusting the other CA, the same server is accepted (the CA was the reason).
    ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/whoami", ca=other.ca_crt))


def test_connection_errors(pki, testd):
    _, port = testd
    dead = free_port()
    failed(run_testc(pki, "127.0.0.1:%d" % dead, "/whoami"),
           r"connect to 127\.0\.0\.1:%d: Connection refused" % dead)
    # No client certificate: the server refuses the handshake.
    failed(run_testc(pki, "127.0.0.1:%d" % port, "/whoami", identity=None),
           r"^tandem-testc: (TLS|read response|send request)")
    # A slow answer beyond the I/O timeout: bounded, and says so.
    t0 = time.monotonic()
    failed(run_testc(pki, "127.0.0.1:%d" % port, "/slow?ms=5000", "--timeout-ms", "1500"),
           r"read response: timed out after 1500 ms")
    assert time.monotonic() - t0 < 4
    ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/slow?ms=50", "--timeout-ms", "3000"))


def test_silent_server_handshake_timeout(pki, tmp_path):
    # A TCP listener that never speaks TLS: the connect deadline covers the handshake.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        port = s.getsockname()[1]
        t0 = time.monotonic()
        failed(run_testc(pki, "127.0.0.1:%d" % port, "/", "--timeout-ms", "300"),
               r"TLS handshake: timed out after 300 ms")
        assert time.monotonic() - t0 < 4


def test_usage_errors(pki, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    r = run([bin_path("tandem-testc"), "--help"], check=False)
    assert r.returncode == 0 and "usage: tandem-testc" in r.stdout
    cases = [
        ([], r"--ca is required|expected HOST:PORT"),
        (["--ca", pki.ca_crt, "127.0.0.1:1"], r"expected HOST:PORT and PATH"),
        (["--ca", pki.ca_crt, "127.0.0.1", "/"], r"bad HOST:PORT"),
        (["--ca", pki.ca_crt, "127.0.0.1:99999", "/"], r"bad HOST:PORT"),
        (["--ca", pki.ca_crt, "--cert", pki.master[0], "127.0.0.1:1", "/"], r"go together"),
        (["--ca", pki.ca_crt, "--field", "a=b", "127.0.0.1:1", "/"], r"need --multipart-file"),
        (["--ca", pki.ca_crt, "--data-file", str(f), "--multipart-file", str(f), "127.0.0.1:1",
          "/"], r"exclude each other"),
        (["--ca", pki.ca_crt, "--repeat", "0", "127.0.0.1:1", "/"], r"--repeat"),
        (["--ca", pki.ca_crt, "--timeout-ms", "x", "127.0.0.1:1", "/"], r"--timeout-ms"),
        (["--ca", pki.ca_crt, "--header", "X-A: b\r\nX-B: c", "127.0.0.1:1", "/"], r"--header"),
        (["--ca", pki.ca_crt, "--data-file", str(tmp_path / "missing"), "127.0.0.1:1", "/"],
         r"missing: No such file"),
        (["--ca", pki.ca_crt, "--bogus", "127.0.0.1:1", "/"], r"unrecognized option"),
    ]
    for args, pattern in cases:
        r = run([bin_path("tandem-testc")] + args, check=False)
        failed(r, pattern, code=2)


def _have_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _have_ipv6(), reason="no IPv6 loopback")
def test_ipv6_targets(pki, procs, tmp_path):
    _, port = _testd(pki, procs, tmp_path, "--listen", "[::1]:0", name="testd6")
    for target in ("[::1]:%d" % port, "::1:%d" % port):
        who = json.loads(ok_body(run_testc(pki, target, "/whoami")))
        assert who["peer"].startswith("::1") or "::1" in who["peer"]


def _s_server(pki, procs, tmp_path, verify="-Verify"):
    port = free_port()
    crt, key = pki.server
    p = Proc(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, verify, "1",
              "-CAfile", pki.ca_crt, "-cert", crt, "-key", key, "-www"],
             str(tmp_path / "logs"), name="s_server", stdin=subprocess.DEVNULL)
    procs.append(p)
    wait_port(port)
    return port


def test_interop_openssl_s_server(pki, procs, tmp_path):
    port = _s_server(pki, procs, tmp_path)
    # s_server -www answers GET / with an HTTP/1.0 status page delimited by the close.
    body = ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/", "--pin",
                         pki.fingerprint(pki.server[0])))
    assert "s_server" in body or "Ciphers" in body, body[:300]
    # It requires a client certificate (-Verify 1): without one, refused.
    failed(run_testc(pki, "127.0.0.1:%d" % port, "/", identity=None),
           r"^tandem-testc: (TLS|read response|send request)")
    # Still serving after the refusal.
    ok_body(run_testc(pki, "127.0.0.1:%d" % port, "/"))
