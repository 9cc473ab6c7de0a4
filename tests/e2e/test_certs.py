"""Certificate lifecycle, end to end: `tandem pki revoke/crl/status` (the CRL
checked by the openssl CLI), and a real tandem-agent that enforces the CRL on
every handshake (resumed sessions included), keeps serving on a stale CRL,
and takes a renewed identity and a new CRL on SIGHUP without a restart.
"""

import json
import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import Proc, bin_path, wait_until
from swarm_util import from_template, tandem, tandem_json
from worker_util import curl_run, write_conf


# ---------------------------------------------------------------- helpers

class Home:
    """A master home made with `tandem pki init`, with host1's certificates (COPY: ROOT
    already holds them, copied from another Home's ROOT)."""

    def __init__(self, root, copy=False):
        self.root = str(root)
        self.path = os.path.join(self.root, "home")
        if not copy:
            tandem(self.path, "pki", "init", check=0)
        self.ca = os.path.join(self.path, "ca", "ca.crt")
        self.master = (os.path.join(self.path, "master", "master.crt"),
                       os.path.join(self.path, "master", "master.key"))
        self.crl_der = os.path.join(self.path, "ca", "crl.der")
        self.crl_pem = os.path.join(self.path, "ca", "crl.pem")
        self.agent = self.issue("host1", "agent", "host1", copy=copy)
        self.updater = self.issue("host1", "updater", "host1-upd", copy=copy)

    def issue(self, name, role, outdir, force=False, copy=False):
        out = os.path.join(self.root, outdir)
        args = ["pki", "issue", name, "--role", role, "--out", out, "--san", "127.0.0.1"]
        if force:
            args.append("--force")
        if not copy:
            tandem(self.path, *args, check=0)
        cn = name if role == "agent" else "updater@" + name
        return (os.path.join(out, cn + ".crt"), os.path.join(out, cn + ".key"))

    def tandem(self, *args, check=None):
        return tandem(self.path, *args, check=check)

    def json(self, *args, check=0):
        return tandem_json(self.path, *args, check=check)


def cert_field(path, field):
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-" + field],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1]


def serial_of(path):
    return cert_field(path, "serial").lower().lstrip("0") or "0"


def fp_of(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-fingerprint", "-sha256"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def crl_verify_text(home):
    r = subprocess.run(["openssl", "crl", "-in", home.crl_pem, "-CAfile", home.ca, "-noout",
                        "-verify", "-text"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "verify OK" in r.stderr + r.stdout, r.stderr
    return r.stdout


def crl_serials(text):
    return [s.lower().lstrip("0") for s in re.findall(r"Serial Number: ([0-9A-F]+)", text)]


@pytest.fixture
def home(tmp_path):
    """A Home under TMP_PATH/home-copy: a copy of one made once per test process
    (from_template; three CLI runs); a second, different CA is a Home of its own."""
    return Home(from_template("certs-home", tmp_path / "home-copy", Home), copy=True)


# ---------------------------------------------------------------- the CLI

def test_crl_verifies_with_openssl_and_numbers_grow(home):
    doc = home.json("pki", "crl")
    assert doc["crl_number"] == 1
    text = crl_verify_text(home)
    assert "No Revoked Certificates" in text
    assert re.search(r"X509v3 CRL Number:\s+1\b", text), text
    assert "X509v3 Authority Key Identifier" in text
    # The DER file is the same CRL.
    r = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", home.crl_der, "-CAfile",
                        home.ca, "-noout", "-verify"], capture_output=True, text=True)
    assert r.returncode == 0 and "verify OK" in r.stderr, r.stderr
    assert home.json("pki", "crl", "--next-update", "2h")["crl_number"] == 2
    text = crl_verify_text(home)
    assert re.search(r"X509v3 CRL Number:\s+2\b", text), text
    # Bad times are usage errors: nothing written, the number unchanged.
    for bad in (["--next-update", "soon"], ["--next-update", "0d"],
                ["--this-update", "2030-01-01", "--next-update", "2029-01-01"]):
        r = home.tandem("pki", "crl", *bad)
        assert r.returncode in (1, 2), (bad, r.stderr)
    assert home.json("pki", "status")["crl"]["number"] == 2


def test_revoke_by_file_serial_fingerprint_and_host(home):
    # By file, with a reason.
    doc = home.json("pki", "revoke", home.agent[0], "--reason", "key-compromise")
    assert [r["serial"].lstrip("0") for r in doc["revoked"]] == [serial_of(home.agent[0])]
    assert doc["revoked"][0]["cn"] == "host1"
    text = crl_verify_text(home)
    assert serial_of(home.agent[0]) in crl_serials(text)
    assert "Key Compromise" in text
    # Twice: recorded once, said so.
    doc = home.json("pki", "revoke", home.agent[0])
    assert doc["revoked"][0]["already"] is True

    # By fingerprint (found in the CA's record of what it issued).
    doc = home.json("pki", "revoke", fp_of(home.updater[0]))
    assert doc["revoked"][0]["cn"] == "updater@host1"
    # By serial, any case, with colons.
    other = home.issue("web2", "agent", "web2")
    s = cert_field(other[0], "serial")
    home.json("pki", "revoke", ":".join(s[i:i + 2] for i in range(0, len(s), 2)))
    # By host: every generation of web3's certificates.
    g1 = home.issue("web3", "agent", "web3a")
    g2 = home.issue("web3", "agent", "web3b")
    u = home.issue("web3", "updater", "web3c")
    doc = home.json("pki", "revoke", "--host", "web3")
    assert sorted(r["serial"].lstrip("0") for r in doc["revoked"]) == sorted(
        serial_of(p[0]) for p in (g1, g2, u))
    serials = crl_serials(crl_verify_text(home))
    for p in (home.agent, home.updater, other, g1, g2, u):
        assert serial_of(p[0]) in serials
    assert home.json("pki", "status")["crl"]["revoked"] == 6

    # Refusals: nothing recorded.
    r = home.tandem("pki", "revoke", "ab" * 32)
    assert r.returncode == 1 and "no certificate with fingerprint" in r.stderr
    r = home.tandem("pki", "revoke", "not/a/file-or-serial")
    assert r.returncode == 2, r.stderr
    r = home.tandem("pki", "revoke", "--host", "nosuch")
    assert r.returncode == 1 and "no certificate of host" in r.stderr
    r = home.tandem("pki", "revoke", home.agent[0], "--host", "web3")
    assert r.returncode == 2
    r = home.tandem("pki", "revoke", home.agent[0], "--reason", "stolen")
    assert r.returncode == 2
    assert home.json("pki", "status")["crl"]["revoked"] == 6


def test_status_shows_expiry_and_warns(home):
    doc = home.json("pki", "status")
    assert doc["ca"]["state"] == "ok" and doc["ca"]["days_left"] > 3600
    assert doc["master"]["state"] == "ok" and 390 < doc["master"]["days_left"] <= 397
    assert doc["master"]["fingerprint"] == fp_of(home.master[0])
    assert doc["crl"]["state"] == "missing"
    # Within the horizon: warned, exit 0.
    r = home.tandem("pki", "status", "--warn-days", "400")
    assert r.returncode == 0
    assert "master.state: expiring" in r.stdout
    assert "the master certificate is expiring" in r.stderr
    # A CRL past its next update is stale.
    home.tandem("pki", "crl", "--this-update", "2020-01-01", "--next-update", "2020-02-01",
                check=0)
    doc = home.json("pki", "status")
    assert doc["crl"]["state"] == "stale"
    assert "past its next update" in home.tandem("pki", "status").stderr


# ---------------------------------------------------------------- the agent

def write_agent_conf(home, tmp_path, **extra):
    keys = {"ca": home.ca, "cert": home.agent[0], "key": home.agent[1],
            "listen": "127.0.0.1:0", "log_level": "debug",
            "tls_dir": str(tmp_path / "tls"), "crl": str(tmp_path / "crl.der")}
    keys.update(extra)
    return write_conf(tmp_path / "agent.conf", keys)


def start_agent(procs, tmp_path, conf):
    p = Proc([bin_path("tandem-agent"), "--config", conf], str(tmp_path / "logs"),
             name="agent")
    procs.append(p)
    m = p.wait_line(r"ready on port (\d+)", timeout=20, stream="stderr")
    return p, int(m.group(1))


def health(home, port, who):
    r = curl_run("https://127.0.0.1:%d/health" % port, home.ca, who, max_time=10)
    if r.rc != 0:
        return None, r.stderr
    return json.loads(r.body), ""


def hup_and_wait(p, pattern):
    before = p.stderr().count("SIGHUP")
    p.signal(signal.SIGHUP)
    wait_until(lambda: p.stderr().count("SIGHUP") > before and re.search(pattern, p.stderr()),
               15, "the agent to reload (%s)" % pattern)


def s_client(home, port, who, sess_in=None, sess_out=None):
    """One request through openssl s_client; returns its stdout+stderr."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", home.ca,
            "-cert", who[0], "-key", who[1], "-tls1_2", "-ign_eof"]
    if sess_in:
        argv += ["-sess_in", sess_in]
    if sess_out:
        argv += ["-sess_out", sess_out]
    r = subprocess.run(argv, input="GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                       capture_output=True, text=True, timeout=30)
    return r.stdout + r.stderr


def test_agent_enforces_crl_on_full_and_resumed_handshakes(home, tmp_path, procs):
    conf = write_agent_conf(home, tmp_path)
    p, port = start_agent(procs, tmp_path, conf)
    doc, _ = health(home, port, home.master)
    assert doc["crl"] == "none" and doc["crl_number"] == 0
    assert doc["cert_fingerprint"] == fp_of(home.agent[0])
    assert doc["cert_renewed"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["cert_not_after"])

    # The updater certificate talks, and its session can be resumed.
    sess = str(tmp_path / "sess.pem")
    out = s_client(home, port, home.updater, sess_out=sess)
    assert "HTTP/1.1 200" in out, out
    out = s_client(home, port, home.updater, sess_in=sess)
    assert "Reused" in out and "HTTP/1.1 200" in out, out
    wait_until(lambda: "[resumed]" in p.stderr(), 10, "a resumed handshake in the log")

    # Revoke it; the agent gets the CRL and re-reads it on SIGHUP.
    home.json("pki", "revoke", home.updater[0])
    shutil.copy(home.crl_der, str(tmp_path / "crl.der"))
    hup_and_wait(p, r"CRL 1: 1 revoked")
    # A resumed session of the revoked certificate is refused too.
    out = s_client(home, port, home.updater, sess_in=sess)
    assert "HTTP/1.1 200" not in out, out
    wait_until(lambda: re.search(r"refused: peer certificate \(serial \w+, CN=updater@host1\) "
                                 r"is revoked", p.stderr()), 10, "the refusal in the log")
    out = s_client(home, port, home.updater)
    assert "HTTP/1.1 200" not in out, out
    doc, err = health(home, port, home.updater)
    assert doc is None, doc
    # The master is not revoked: it still talks, and sees the CRL's state.
    doc, err = health(home, port, home.master)
    assert doc is not None, err
    assert doc["crl"] == "ok" and doc["crl_number"] == 1


def test_agent_stale_crl_warns_and_keeps_serving(home, tmp_path, procs):
    home.json("pki", "revoke", home.updater[0])
    home.tandem("pki", "crl", "--this-update", "2020-01-01", "--next-update", "2020-02-01",
                check=0)
    shutil.copy(home.crl_der, str(tmp_path / "crl.der"))
    conf = write_agent_conf(home, tmp_path)
    p, port = start_agent(procs, tmp_path, conf)
    assert "(stale)" in p.stderr()
    doc, err = health(home, port, home.master)
    assert doc is not None, err
    assert doc["crl"] == "stale" and doc["crl_number"] == 2
    assert doc["crl_next_update"] == "2020-02-01T00:00:00Z"
    # Still enforced.
    doc, err = health(home, port, home.updater)
    assert doc is None

    # A CRL from another CA does not verify: the set in force stays, reported invalid.
    other = Home(tmp_path / "other")
    other.json("pki", "crl")
    shutil.copy(other.crl_der, str(tmp_path / "crl.der"))
    hup_and_wait(p, r"CRL not loaded")
    doc, err = health(home, port, home.master)
    assert doc["crl"] == "invalid"
    doc, err = health(home, port, home.updater)
    assert doc is None


def test_agent_takes_a_renewed_identity_on_sighup(home, tmp_path, procs):
    conf = write_agent_conf(home, tmp_path)
    p, port = start_agent(procs, tmp_path, conf)
    old_fp = fp_of(home.agent[0])
    doc, _ = health(home, port, home.master)
    assert doc["cert_fingerprint"] == old_fp

    # A renewed pair appears in tls_dir/current (a symlink to gen-1/, as the updater makes it).
    new = home.issue("host1", "agent", "renewed")
    gen = tmp_path / "tls" / "gen-1"
    gen.mkdir(parents=True)
    shutil.copy(new[0], str(gen / "cert.pem"))
    shutil.copy(new[1], str(gen / "key.pem"))
    os.chmod(str(gen / "key.pem"), 0o600)
    os.symlink("gen-1", str(tmp_path / "tls" / "current"))
    hup_and_wait(p, r"SIGHUP: serving as CN=host1, fingerprint %s" % fp_of(new[0]))
    doc, _ = health(home, port, home.master)
    assert doc["cert_fingerprint"] == fp_of(new[0])
    assert doc["cert_renewed"] is True
    # New connections see the new certificate.
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-CAfile", home.ca, "-cert", home.master[0], "-key", home.master[1]],
                       input="", capture_output=True, text=True, timeout=30)
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", r.stdout,
                    re.S).group(0)
    (tmp_path / "seen.pem").write_text(pem + "\n")
    assert fp_of(str(tmp_path / "seen.pem")) == fp_of(new[0])

    # A broken pair (key of another certificate) is refused: the current one stays.
    shutil.copy(home.agent[1], str(gen / "key.pem"))
    hup_and_wait(p, r"identity not reloaded")
    doc, _ = health(home, port, home.master)
    assert doc["cert_fingerprint"] == fp_of(new[0])
    assert p.alive()


# ---------------------------------------------------------------- with a fleet

from swarm_util import Fleet, hosts_by_name, make_release  # noqa: E402


@pytest.fixture(scope="module")
def releases(build_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cert-releases"))
    return {"v1": make_release(build_dir, "1.0.0", out),
            "v2": make_release(build_dir, "2.0.0", out)}


class OutsideFleet(Fleet):
    """Hosts' bundles (and so their install dirs) outside the master's home, as on
    real hosts: wiping the master's home must not touch them."""

    def bundle(self, name):
        return os.path.join(self.root, "hosts", name)

    def enroll(self, name, **kw):
        return Fleet.enroll(self, name, extra=("--out", self.bundle(name)), **kw)


@pytest.fixture
def fleet(tmp_path):
    f = OutsideFleet(tmp_path / "fleet")
    yield f
    f.stop_all()


def test_master_refuses_a_revoked_host(fleet, releases):
    for name in ("web1", "web2"):
        fleet.enroll(name)
        fleet.start(name)
    doc = fleet.json("swarm", "update", "--all", "--release", releases["v1"])
    assert doc["ok"] is True, doc
    fleet.json("pki", "revoke", "--host", "web2", "--reason", "key-compromise")
    # web2's certificates are refused on the handshake: no status, no push.
    st = hosts_by_name(fleet.json("swarm", "status", check=None))
    assert st["web1"]["active"]["version"] == "1.0.0"
    assert "revoked" in json.dumps(st["web2"]), st["web2"]
    r = fleet.tandem("swarm", "update", "--host", "web2", "--release", releases["v2"])
    assert r.returncode != 0
    assert "revoked" in r.stdout + r.stderr
    # web1 is untouched.
    doc = fleet.json("swarm", "update", "--host", "web1", "--release", releases["v2"])
    assert doc["ok"] is True


def test_backup_wipe_restore_push(fleet, releases, tmp_path):
    fleet.enroll("web1")
    fleet.start("web1")
    assert fleet.json("swarm", "update", "--host", "web1", "--release", releases["v1"])["ok"]
    fleet.json("pki", "crl")
    before = fleet.json("pki", "status")
    archive = str(tmp_path / "master.backup")
    passfile = tmp_path / "pass"
    passfile.write_text("a long enough passphrase\n")

    # No passphrase option at all is a usage error: the archive holds the CA key.
    assert fleet.tandem("backup", "create", archive).returncode == 2
    with open(str(passfile)) as pf:
        r = subprocess.run([bin_path("tandem"), "--home", fleet.home, "backup", "create", archive,
                            "--passphrase-fd", str(pf.fileno()), "--iterations", "20000"],
                           pass_fds=(pf.fileno(),), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert os.stat(archive).st_mode & 0o777 == 0o600
    with open(archive, "rb") as f:
        assert f.read(12) == b"TANDEMSEAL1\n"
    # Not over an existing file, not inside the home.
    assert fleet.tandem("backup", "create", archive, "--no-encrypt").returncode == 1
    assert fleet.tandem("backup", "create", os.path.join(fleet.home, "x"),
                        "--no-encrypt").returncode == 2

    # Wipe the master's home; a wrong passphrase restores nothing.
    shutil.rmtree(fleet.home)
    r = tandem(fleet.home, "backup", "restore", archive, "--passphrase-env", "PW",
               env={"PW": "a long enough passphrasX"})
    assert r.returncode == 1 and "wrong passphrase" in r.stderr, r.stderr
    assert not os.path.exists(fleet.home)
    assert not [n for n in os.listdir(os.path.dirname(fleet.home)) if ".restore-" in n]
    r = tandem(fleet.home, "backup", "restore", archive, "--passphrase-env", "PW",
               env={"PW": "a long enough passphrase"})
    assert r.returncode == 0, r.stderr
    assert os.stat(fleet.home).st_mode & 0o777 == 0o700
    assert os.stat(os.path.join(fleet.home, "ca", "ca.key")).st_mode & 0o777 == 0o600
    after = fleet.json("pki", "status")
    assert after["ca"]["fingerprint"] == before["ca"]["fingerprint"]
    assert after["master"]["fingerprint"] == before["master"]["fingerprint"]
    assert after["crl"]["number"] == before["crl"]["number"]
    # The fleet is driven from the restored home: history kept, a push works.
    hist = fleet.json("swarm", "history", "--host", "web1")
    assert [p["result"] for p in hist["pushes"]] == ["updated"]
    doc = fleet.json("swarm", "update", "--host", "web1", "--release", releases["v2"])
    assert doc["ok"] is True, doc
    # The CRL numbering continues where it was.
    assert fleet.json("pki", "crl")["crl_number"] == before["crl"]["number"] + 1
    # A restore never overwrites a home.
    r = tandem(fleet.home, "backup", "restore", archive, "--passphrase-env", "PW",
               env={"PW": "a long enough passphrase"})
    assert r.returncode == 1 and "not empty" in r.stderr

    # A plain archive, when asked for: 0600, with a warning, restorable.
    plain = str(tmp_path / "plain.tgz")
    r = fleet.tandem("backup", "create", plain, "--no-encrypt")
    assert r.returncode == 0 and "WITHOUT encryption" in r.stderr
    assert os.stat(plain).st_mode & 0o777 == 0o600
    other = str(tmp_path / "home2")
    assert tandem(other, "backup", "restore", plain).returncode == 0
    assert tandem_json(other, "pki", "status")["ca"]["fingerprint"] == \
        before["ca"]["fingerprint"]


def test_restore_refuses_hostile_archives(tmp_path):
    import tarfile
    import io

    def make(name, entries):
        path = str(tmp_path / name)
        with tarfile.open(path, "w:gz") as t:
            for n, kind, data in entries:
                ti = tarfile.TarInfo(n)
                if kind == "file":
                    ti.size = len(data)
                    t.addfile(ti, io.BytesIO(data))
                elif kind == "symlink":
                    ti.type = tarfile.SYMTYPE
                    ti.linkname = data
                    t.addfile(ti)
        return path

    manifest = ("TANDEM-BACKUP.json", "file", b'{"format":1}')
    cases = {
        "dotdot": [manifest, ("../escape", "file", b"x")],
        "absolute": [manifest, ("/tmp/abs", "file", b"x")],
        "symlink": [manifest, ("ca", "symlink", "/etc")],
        "nomanifest": [("ca/ca.crt", "file", b"x")],
        "nota-home": [manifest, ("ca/ca.crt", "file", b"not a cert")],
        "future": [("TANDEM-BACKUP.json", "file", b'{"format":9}')],
    }
    for name, entries in cases.items():
        home = str(tmp_path / ("home-" + name))
        r = tandem(home, "backup", "restore", make(name + ".tgz", entries))
        assert r.returncode != 0, (name, r.stderr)
        assert not os.path.exists(home), name
        assert not os.path.exists(str(tmp_path / "escape"))
        assert not [n for n in os.listdir(str(tmp_path)) if ".restore-" in n], name
    r = tandem(str(tmp_path / "h"), "backup", "restore", str(tmp_path / "missing"))
    assert r.returncode == 1
