"""A DECNET master driving tandem-updater (wiki/Migrating-from-DECNET.md).

DECNET's master certificate carries OU=swarm-worker, which names no tandem
role: by default the updater treats it as a certificate without a role
(/health only). With `master_compat_ou = swarm-worker` and the certificate's
fingerprint pinned in `master_fingerprints`, it is the master; a DECNET client
does not retry a 503, so such a master waits (master_compat_wait) for a
running operation instead of being told "busy"."""

import socket
import ssl
import subprocess
import threading

from conftest import bin_path, wait_until
from test_updater import Host, assert_clean_exit, assert_detail, releases  # noqa: F401


def decnet_master(pki, name="decnet", cn="tandem-master"):
    return pki.issue(name, cn, ou="swarm-worker", eku=("clientAuth",))


def test_decnet_master_refused_by_default(procs, tmp_path, pki, releases):
    dn = decnet_master(pki)
    h = Host(procs, tmp_path, pki)
    try:
        st, _, body = h.push(releases.get("1.0.0"), who=dn)
        assert st == 403, body
        assert "unknown certificate CN=tandem-master" in assert_detail(body)
        assert h.get("/releases", who=dn)[0] == 403
        assert h.slots() == {}
        h.assert_clean()
        # Read-only health stays open to any CA-signed certificate.
        assert h.get("/health", who=dn)[0] == 200
    finally:
        assert_clean_exit(h.proc)


def stalled_push(h, pki, tarball):
    """A push by the tandem master that sends part of its body and stalls,
    holding the operation lock; returns the socket (close it to end it)."""
    ctx = ssl.create_default_context(cafile=pki.ca_crt)
    ctx.load_cert_chain(pki.master[0], pki.master[1])
    ctx.check_hostname = False
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", h.port), timeout=10))
    boundary = "XXbXX"
    head = ("--%s\r\nContent-Disposition: form-data; name=\"tarball\"; filename=\"t.tgz\"\r\n"
            "Content-Type: application/gzip\r\n\r\n" % boundary).encode()
    with open(tarball, "rb") as f:
        data = f.read()
    s.sendall(("POST /update HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
               "boundary=%s\r\nContent-Length: %d\r\n\r\n"
               % (boundary, len(head) + len(data) + 200)).encode())
    s.sendall(head + data[:1000])
    return s


def test_decnet_master_with_compat_setting(procs, tmp_path, pki, releases):
    dn = decnet_master(pki)
    pins = ",".join((pki.fingerprint(pki.master[0]), pki.fingerprint(dn[0])))
    h = Host(procs, tmp_path, pki, master_fingerprints=pins, master_compat_ou="swarm-worker",
             master_compat_wait="30s")
    try:
        assert "master_compat_ou" in h.proc.stderr() or "OU=swarm-worker" in h.proc.stderr()
        v1, v2 = releases.get("1.0.0"), releases.get("1.1.0")
        st, _, body = h.push(v1, who=dn)
        assert st == 200, body
        assert body["status"] == "updated"
        st, body = h.get("/releases", who=dn)
        assert st == 200 and body["releases"][0]["slot"] == "active", body

        # Same CN and OU, not pinned: refused, nothing changes.
        other = decnet_master(pki, name="decnet2")
        before = h.snapshot()
        st, _, body = h.push(v2, who=other)
        assert st == 403, body
        assert "not pinned" in assert_detail(body)
        # The compatible OU on another CN is no master either.
        worker = decnet_master(pki, name="decnet3", cn="host1")
        st, _, body = h.push(v2, who=worker)
        assert st == 403, body
        assert h.snapshot() == before
        h.assert_clean()

        # A running operation: the tandem master is told 503 + Retry-After, the
        # DECNET master waits and its push goes through once the lock is free.
        s = stalled_push(h, pki, v2)
        try:
            def busy():
                op = h.health()["operation"]
                return op if op and op["kind"] == "update" else None
            wait_until(busy, 10, "the stalled push to hold the operation lock")
            st, headers, body = h.push(v2)
            assert st == 503 and headers.get("retry-after", "").isdigit(), body
            result = {}
            t = threading.Thread(target=lambda: result.update(r=h.push(v2, who=dn)))
            t.start()
            wait_until(lambda: "the compatible master" in h.proc.stderr(), 30,
                       "the DECNET push to wait for the lock")
            assert t.is_alive()
        finally:
            s.close()
        t.join(90)
        assert not t.is_alive()
        st, _, body = result["r"]
        assert st == 200, body
        assert h.agent_health()["version"] == "1.1.0"
    finally:
        assert_clean_exit(h.proc)


def test_decnet_compat_config_checks(tmp_path, pki):
    upd = bin_path("tandem-updater")
    base = ("install_dir = %s\nca = %s\ncert = %s\nkey = %s\nagent_config = x\n"
            % (tmp_path / "i", pki.ca_crt, pki.updater[0], pki.updater[1]))
    conf = tmp_path / "u.conf"
    cases = (
        ("master_compat_ou = swarm-worker\n", "needs master_fingerprints"),
        ("master_compat_ou = agent\nmaster_fingerprints = %s\n" % ("ab" * 32), "role name"),
    )
    for extra, want in cases:
        conf.write_text(base + extra)
        r = subprocess.run([upd, "--config", str(conf), "-n"], capture_output=True, text=True)
        assert r.returncode != 0 and want in r.stderr, (extra, r.stderr)
    conf.write_text(base + "master_compat_ou = swarm-worker\nmaster_fingerprints = %s\n"
                    % ("ab" * 32))
    r = subprocess.run([upd, "--config", str(conf), "-n"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
