"""Online certificate renewal: `tandem swarm renew` against real updaters and
agents. The host makes the key and the CSR, the master signs it with the
registry's names, the host switches atomically; the registry's pins roll
over; pushes keep working; a crash of the updater at any step of installing
a renewed certificate leaves a host the master still talks to."""

import json
import os
import ssl
import socket

import pytest

from conftest import wait_until
from swarm_util import Fleet, curl_as, fleet, releases  # noqa: F401 (fixtures)


def host_row(fleet, name):
    return [h for h in fleet.json("swarm", "list")["hosts"] if h["name"] == name][0]


def served_fp(port):
    """SHA-256 of the certificate the server on PORT presents (no client cert:
    the handshake fails after the server's certificate, which is all we need)."""
    import hashlib
    import subprocess
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-showcerts"], input="", capture_output=True, text=True, timeout=30)
    pem = r.stdout[r.stdout.index("-----BEGIN CERTIFICATE-----"):
                   r.stdout.index("-----END CERTIFICATE-----") + 25]
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def renew(fleet, *args, check=0):
    return fleet.json("swarm", "renew", *args, check=check)


def test_renew_rolls_certificates_pins_and_keeps_pushing(fleet, releases):
    fleet.enroll("web1")
    fleet.start("web1")
    agent_port, updater_port = fleet.ports["web1"]
    assert fleet.json("swarm", "update", "--host", "web1", "--release", releases["v1"])["ok"]
    before = host_row(fleet, "web1")

    # --only: one of the two, the other is skipped.
    doc = renew(fleet, "--host", "web1", "--only", "agent")
    assert [doc["hosts"][0][w]["result"] for w in ("updater", "agent")] == ["skipped", "current"]
    assert fleet.tandem("swarm", "renew", "--all", "--only", "ca").returncode == 2
    # Nothing expires within 30 days: nothing to do, nothing to warn about.
    st = fleet.json("swarm", "status", "--host", "web1")["hosts"][0]
    assert st["cert_warning"] is None and st["updater_cert_not_after"], st
    doc = renew(fleet, "--host", "web1")
    assert [doc["hosts"][0][w]["result"] for w in ("updater", "agent")] == ["current"] * 2

    # Certificates that expire in two minutes (test builds only).
    doc = renew(fleet, "--host", "web1", "--force", "--test-validity", "120")
    assert doc["ok"] is True, doc
    h = doc["hosts"][0]
    for w, key in (("updater", "updater_fingerprint"), ("agent", "agent_fingerprint")):
        assert h[w]["result"] == "renewed", h
        assert h[w]["old_fingerprint"] == before[key]
        assert h[w]["new_fingerprint"] != before[key]
    after = host_row(fleet, "web1")
    assert after["updater_fingerprint"] == h["updater"]["new_fingerprint"]
    assert after["agent_fingerprint"] == h["agent"]["new_fingerprint"]
    # Both daemons present the new certificates, without a restart.
    assert served_fp(updater_port) == after["updater_fingerprint"]
    assert served_fp(agent_port) == after["agent_fingerprint"]
    st = fleet.json("swarm", "status", "--host", "web1")["hosts"][0]
    assert st["reachable"] is True, st
    # Status shows both expiries and warns: they end within the 30-day horizon.
    assert st["updater_cert_not_after"] == h["updater"]["new_not_after"]
    assert st["agent_cert_not_after"] == h["agent"]["new_not_after"]
    assert "updater certificate expires in 0 days" in st["cert_warning"], st
    assert "agent certificate expires in 0 days" in st["cert_warning"], st
    r = fleet.tandem("swarm", "status", "--host", "web1")
    assert "expires in 0 days" in r.stderr and "swarm renew" in r.stderr

    # They now expire within 30 days: the default horizon renews them again.
    doc = renew(fleet, "--hosts", "web1")
    assert [doc["hosts"][0][w]["result"] for w in ("updater", "agent")] == ["renewed"] * 2
    final = host_row(fleet, "web1")
    # A push after the renewal works, pinned to the new certificates only.
    assert fleet.json("swarm", "update", "--host", "web1", "--release", releases["v2"])["ok"]
    # The host dropped the old pairs: a restart still serves the renewed ones.
    tls = os.path.join(fleet.install_dir("web1"), "state", "tls")
    for w in ("updater", "agent"):
        names = sorted(os.listdir(os.path.join(tls, w)))
        assert "previous" not in names and "pending" not in names, names
        assert len([n for n in names if n.startswith("gen-")]) == 1, names
    p = fleet.procs["web1"]
    p.signal(15)
    p.p.wait(timeout=30)
    fleet.start("web1")
    assert served_fp(updater_port) == final["updater_fingerprint"]
    assert fleet.json("swarm", "status", "--host", "web1")["hosts"][0]["reachable"] is True


def curl_json(fleet, port, path, who, body=None, method=None):
    """curl with WHO's certificate ("master" or a bundle's "web1/agent"); (status, doc)."""
    if who == "master":
        pair = (os.path.join(fleet.home, "master", "master.crt"),
                os.path.join(fleet.home, "master", "master.key"))
    else:
        host, role = who.split("/")
        pair = (os.path.join(fleet.bundle(host), role + ".crt"),
                os.path.join(fleet.bundle(host), role + ".key"))
    return curl_as(fleet, "web1", port, pair, path, body=body, method=method)


def test_renewal_routes_refuse_what_does_not_fit(fleet):
    for name in ("web1", "web2"):
        fleet.enroll(name)
    fleet.start("web1")
    port = fleet.ports["web1"][1]
    fp = served_fp(port)
    # Only the master: an agent's or another updater's certificate is refused.
    for who in ("web1/agent", "web2/updater"):
        code, _ = curl_json(fleet, port, "/cert/csr", who, body='{"which":"agent"}')
        assert code == 403, (who, code)
    # Malformed bodies.
    for body in ('{"which":"ca"}', '{}', 'not json', '{"which":"agent","extra":1}'):
        code, doc = curl_json(fleet, port, "/cert/csr", "master", body=body)
        assert code == 400, (body, code, doc)
    # Nothing pending yet: install is a conflict.
    with open(os.path.join(fleet.bundle("web2"), "updater.crt")) as f:
        other = f.read()
    code, doc = curl_json(fleet, port, "/cert/install", "master",
                          body=json.dumps({"which": "updater", "cert": other}))
    assert code == 409, (code, doc)
    # A CSR, then certificates that do not fit it: another host's (for another
    # key), garbage. (A certificate for the pending key naming another host is
    # refused too: tests/unit/test_hostcert.c.)
    code, doc = curl_json(fleet, port, "/cert/csr", "master", body='{"which":"updater"}')
    assert code == 200 and "BEGIN CERTIFICATE REQUEST" in doc["csr"], doc
    for cert, want in ((other, "pending key"), ("-----BEGIN CERTIFICATE-----\nAAAA\n"
                                                "-----END CERTIFICATE-----\n", "")):
        code, doc = curl_json(fleet, port, "/cert/install", "master",
                              body=json.dumps({"which": "updater", "cert": cert}))
        assert code == 400 and want in doc["detail"]["error"], (code, doc)
    # Confirm without a renewed certificate in use.
    code, doc = curl_json(fleet, port, "/cert/confirm", "master", body='{"which":"updater"}')
    assert code == 409, (code, doc)
    # A CRL that is not one.
    code, doc = curl_json(fleet, port, "/crl", "master", body="garbage", method="PUT")
    assert code in (400, 422), (code, doc)
    # Nothing changed: the same certificate, a healthy updater.
    assert served_fp(port) == fp
    code, doc = curl_json(fleet, port, "/health", "master")
    assert code == 200 and doc["cert_renewed"] is False and doc["cert_fingerprint"] == fp


@pytest.mark.sweep
@pytest.mark.parametrize("point", ["cert.pending_key", "cert.gen_written",
                                   "cert.previous_set", "cert.flipped",
                                   "cert.pending_removed", "cert.confirmed"])
def test_crash_while_installing_leaves_a_reachable_host(fleet, releases, point):
    fleet.enroll("web1")
    fleet.start("web1")
    assert fleet.json("swarm", "update", "--host", "web1", "--release", releases["v1"])["ok"]
    assert fleet.procs["web1"].stop(timeout=30) == 0
    p = fleet.start("web1", env={"TANDEM_TEST_CRASH_AT": point})
    r = fleet.tandem("swarm", "renew", "--host", "web1", "--force")
    assert r.returncode == 1, r.stdout + r.stderr
    assert p.wait(timeout=30) == 86
    assert "test hook: crashing at " + point in p.stderr()
    # Restarted, the host talks to the master with whichever pair is in force...
    fleet.start("web1")
    st = fleet.json("swarm", "status", "--host", "web1", check=None)["hosts"][0]
    assert st["reachable"] is True, st
    # ...and renewing again finishes, to a single pin.
    doc = renew(fleet, "--host", "web1", "--force")
    assert doc["ok"] is True, doc
    row = host_row(fleet, "web1")
    assert row["updater_fingerprint"] == served_fp(fleet.ports["web1"][1])
    assert row["updater_fingerprint_next"] is None and row["agent_fingerprint_next"] is None
    assert fleet.json("swarm", "update", "--host", "web1", "--release", releases["v2"])["ok"]


def test_crl_push_reaches_updater_and_agent(fleet, releases):
    for name in ("web1", "web2"):
        fleet.enroll(name)
        fleet.start(name)
    assert fleet.json("swarm", "update", "--all", "--release", releases["v1"])["ok"]
    # Nothing signed yet: nothing to send.
    doc = fleet.json("swarm", "crl", "push", "--all", check=1)
    assert doc["ok"] is False and "pki crl" in doc["hosts"][0]["error"]
    # web1's agent certificate is revoked; both hosts get the CRL.
    fleet.json("pki", "revoke", os.path.join(fleet.bundle("web1"), "agent.crt"))
    doc = fleet.json("swarm", "crl", "push", "--all")
    number = doc["hosts"][0]["crl_number"]
    assert doc["ok"] is True and [h["crl_number"] for h in doc["hosts"]] == [number] * 2
    port = fleet.ports["web1"][1]
    code, h = curl_json(fleet, port, "/health", "master")
    assert code == 200 and h["crl"] == "ok" and h["crl_number"] == number, h
    # The agent took it on SIGHUP (its /health, asked by web2's updater certificate).
    def agent_has_it():
        c, a = curl_json(fleet, fleet.ports["web1"][0], "/health", "web2/updater")
        return c == 200 and a.get("crl_number") == number
    wait_until(agent_has_it, timeout=15, what="the agent to load the CRL")
    # Sending it again is fine; an older CRL is refused by the host.
    assert fleet.json("swarm", "crl", "push", "--host", "web1")["ok"] is True
    # web1's updater now refuses its own agent in the probe: the push fails.
    doc = fleet.json("swarm", "update", "--host", "web1", "--release", releases["v2"], check=1)
    assert doc["ok"] is False
    assert "revoked" in json.dumps(doc), doc
    # web2 is untouched.
    assert fleet.json("swarm", "update", "--host", "web2", "--release", releases["v2"])["ok"]


def test_agent_running_as_another_user_reads_its_renewed_key(releases):
    """run_as_user: the renewed agent key belongs to the agent's user (0600),
    the directories on the way are traversable; the agent reloads it on
    SIGHUP and after a restart, and pushes keep passing its pinned probe."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    import pwd
    import shutil
    import stat
    import tempfile
    nobody = pwd.getpwnam("nobody")
    # pytest's tmp_path is under a 0700 directory the agent's user cannot
    # traverse: a world-traversable base, like /opt or /var/lib.
    base = tempfile.mkdtemp(prefix="tandem-runas.", dir="/tmp")
    os.chmod(base, 0o755)
    f = Fleet(os.path.join(base, "fleet"))
    try:
        f.enroll("web1")
        bundle = f.bundle("web1")
        # The bootstrap pair as an operator installs it for that user; the
        # master's home (0700) is made traversable for the test only.
        for d in (f.root, f.home, os.path.dirname(bundle), bundle):
            os.chmod(d, 0o711)
        os.chown(os.path.join(bundle, "agent.key"), nobody.pw_uid, nobody.pw_gid)
        for n in ("agent.crt", "ca.crt", "agent.conf"):
            os.chmod(os.path.join(bundle, n), 0o644)
        f.start("web1", keys={"run_as_user": "nobody", "run_as_group": "nogroup"})
        agent_port = f.ports["web1"][0]
        assert f.json("swarm", "update", "--host", "web1", "--release", releases["v1"])["ok"]
        with open(os.path.join(f.install_dir("web1"), "state", "agent.json")) as fh:
            apid = json.load(fh)["pid"]
        with open("/proc/%d/status" % apid) as fh:
            assert [ln.split()[1] for ln in fh if ln.startswith("Uid")] == [str(nobody.pw_uid)]

        doc = renew(f, "--host", "web1", "--force")
        assert [doc["hosts"][0][w]["result"] for w in ("updater", "agent")] == ["renewed"] * 2, doc
        row = host_row(f, "web1")
        # The agent serves the renewed certificate (it read the key as nobody).
        assert served_fp(agent_port) == row["agent_fingerprint"]
        key = os.path.join(f.install_dir("web1"), "state", "tls", "agent", "current", "key.pem")
        st = os.stat(key)
        assert st.st_uid == nobody.pw_uid and stat.S_IMODE(st.st_mode) == 0o600
        # The updater's own renewed key stays its own.
        ukey = os.path.join(f.install_dir("web1"), "state", "tls", "updater", "current",
                            "key.pem")
        assert os.stat(ukey).st_uid == 0
        # A push passes the probe pinned to the renewed agent certificate.
        assert f.json("swarm", "update", "--host", "web1", "--release", releases["v2"])["ok"]
        # After a restart the new agent process starts with the renewed pair.
        p = f.procs["web1"]
        p.signal(15)
        p.p.wait(timeout=30)
        f.start("web1", keys={"run_as_user": "nobody", "run_as_group": "nogroup"})
        assert f.json("swarm", "update", "--host", "web1", "--release", releases["v1"])["ok"]
        assert served_fp(agent_port) == row["agent_fingerprint"]
        # The CRL the updater keeps for it is readable to the agent too.
        with open(os.path.join(f.install_dir("web1"), "state", "agent.log")) as fh:
            assert "crl.der: Permission denied" not in fh.read()
    finally:
        f.stop_all()
        shutil.rmtree(base)


def served_sans(port):
    """The subjectAltName extension of the certificate the server on PORT presents."""
    import subprocess
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port],
                       input="", capture_output=True, text=True, timeout=30)
    pem = r.stdout[r.stdout.index("-----BEGIN CERTIFICATE-----"):
                   r.stdout.index("-----END CERTIFICATE-----") + 25]
    x = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=pem,
                       capture_output=True, text=True, timeout=30, check=True)
    return sorted(s.strip() for s in x.stdout.splitlines()[1].split(","))


def test_renewal_keeps_the_sans_given_at_enrollment(fleet, releases):
    import sqlite3
    fleet.enroll("web1", extra=("--san", "web1.example.net", "--san", "10.9.8.7"))
    fleet.start("web1")
    assert fleet.json("swarm", "update", "--host", "web1", "--release", releases["v1"])["ok"]
    agent_port, updater_port = fleet.ports["web1"]
    want = ["DNS:web1", "DNS:web1.example.net", "IP Address:10.9.8.7", "IP Address:127.0.0.1"]
    assert served_sans(updater_port) == want
    # The registry records them; a renewal certifies them again.
    doc = renew(fleet, "--host", "web1", "--force")
    assert doc["ok"] is True, doc
    row = host_row(fleet, "web1")
    assert served_fp(updater_port) == row["updater_fingerprint"]
    assert served_sans(updater_port) == want
    assert served_sans(agent_port) == want
    # A host enrolled before the registry kept SANs: they come from its bundle's certificate.
    db = sqlite3.connect(os.path.join(fleet.home, "registry.db"))
    with db:
        assert db.execute("SELECT count(*) FROM host_sans").fetchone()[0] == 2
        db.execute("DELETE FROM host_sans")
    db.close()
    doc = renew(fleet, "--host", "web1", "--force", "--only", "updater")
    assert doc["ok"] is True, doc
    assert served_sans(updater_port) == want
