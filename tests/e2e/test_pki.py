"""End-to-end tests of `tandem pki`: the CA and certificates it makes, checked
with independent tools (openssl verify / x509, curl) and used against a real
mTLS server built on common/httpd (tandem-testd)."""

import json
import os
import re
import stat
import subprocess

import pytest

from conftest import OpensslPKI, Proc, bin_path, run
from worker_util import curl_run

CURL_TIMEOUT = 10


def tandem(home, *args, env=None, check=None):
    """Run the tandem CLI with --home HOME; CHECK = expected exit code (or None)."""
    argv = [bin_path("tandem")]
    if home is not None:
        argv += ["--home", str(home)]
    argv += [str(a) for a in args]
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=full_env)
    if check is not None and r.returncode != check:
        pytest.fail("%s: exit %d, expected %d\nstdout:\n%s\nstderr:\n%s"
                    % (" ".join(argv), r.returncode, check, r.stdout, r.stderr))
    return r


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def x509_text(crt):
    return run(["openssl", "x509", "-in", crt, "-noout", "-text"]).stdout


def openssl_fp(crt):
    r = run(["openssl", "x509", "-in", crt, "-noout", "-fingerprint", "-sha256"])
    return r.stdout.strip().split("=", 1)[1].replace(":", "").lower()


def pubkey_of_cert(crt):
    return run(["openssl", "x509", "-in", crt, "-noout", "-pubkey"]).stdout


def pubkey_of_key(key):
    return run(["openssl", "pkey", "-in", key, "-pubout"]).stdout


class Home:
    """A master home made by `tandem pki init`."""

    def __init__(self, path, master_cn=None):
        self.path = str(path)
        args = ["pki", "init"]
        if master_cn:
            args += ["--master-cn", master_cn]
        self.init_result = tandem(self.path, *args, check=0)
        self.ca_crt = os.path.join(self.path, "ca", "ca.crt")
        self.ca_key = os.path.join(self.path, "ca", "ca.key")
        self.master_crt = os.path.join(self.path, "master", "master.crt")
        self.master_key = os.path.join(self.path, "master", "master.key")

    def issue(self, name, role, out, *extra, check=0):
        # "--" so that names starting with '-' reach the name checks.
        r = tandem(self.path, "pki", "issue", "--role", role, "--out", out, "--json",
                   *extra, "--", name, check=check)
        return json.loads(r.stdout) if r.returncode == 0 else r

    def show(self, crt, *extra):
        return json.loads(tandem(self.path, "pki", "show", crt, "--json", *extra,
                                 check=0).stdout)


@pytest.fixture
def home(tmp_path):
    return Home(tmp_path / "home")


@pytest.fixture
def server(home, tmp_path, procs):
    """tandem-testd serving with a certificate we issued for localhost/127.0.0.1."""
    out = str(tmp_path / "srv")
    res = home.issue("localhost", "agent", out, "--san", "127.0.0.1")
    p = Proc([bin_path("tandem-testd"), "--ca", home.ca_crt, "--cert", res["cert"],
              "--key", res["key"], "--listen", "127.0.0.1:0"], str(tmp_path / "logs"),
             name="testd")
    procs.append(p)
    port = int(p.wait_line(r"READY port=(\d+)").group(1))
    p.port = port
    p.issued = res
    return p


def curl(port, crt, key, cacert, host="localhost", path="/whoami", real_curl=False):
    """GET PATH presenting CRT/KEY (None: no certificate); worker_util's CurlResult
    (REAL_CURL: with the curl binary, where curl reading our certificates is the point)."""
    # localhost may resolve to ::1 first; the server listens on 127.0.0.1.
    return curl_run("https://%s:%d%s" % (host, port, path), cacert,
                    (crt, key) if crt else None, max_time=CURL_TIMEOUT,
                    resolve="localhost:%d:127.0.0.1" % port if host == "localhost" else None,
                    real_curl=real_curl)


# ---- init -----------------------------------------------------------------


def test_init_layout_modes_and_ca_constraints(home):
    assert mode(home.path) == 0o700
    for d in ("ca", "master"):
        assert mode(os.path.join(home.path, d)) == 0o700
    assert mode(home.ca_key) == 0o600
    assert mode(home.master_key) == 0o600
    assert mode(home.ca_crt) == 0o644
    # No temporaries left behind by the atomic writes; the CA's record of
    # what it signed holds the master certificate.
    assert sorted(os.listdir(os.path.join(home.path, "ca"))) == ["ca.crt", "ca.key", "issued"]
    assert sorted(os.listdir(os.path.join(home.path, "master"))) == ["master.crt", "master.key"]
    issued = os.listdir(os.path.join(home.path, "ca", "issued"))
    assert len(issued) == 1 and issued[0].endswith(".crt"), issued

    text = x509_text(home.ca_crt)
    assert re.search(r"Basic Constraints: critical\s+CA:TRUE, pathlen:0", text), text
    assert re.search(r"Key Usage: critical\s+Certificate Sign, CRL Sign", text), text
    assert "Subject Key Identifier" in text
    assert "ASN1 OID: prime256v1" in text
    assert "ecdsa-with-SHA256" in text
    # Self-signed, issuer == subject, about ten years.
    assert run(["openssl", "verify", "-CAfile", home.ca_crt, home.ca_crt]).returncode == 0
    dates = run(["openssl", "x509", "-in", home.ca_crt, "-noout", "-startdate",
                 "-enddate"]).stdout
    years = re.findall(r"(\d{4}) GMT", dates)
    assert int(years[1]) - int(years[0]) in (9, 10)
    # The key on disk is the CA's key.
    assert pubkey_of_key(home.ca_key) == pubkey_of_cert(home.ca_crt)

    # The master's client certificate.
    assert "OK" in run(["openssl", "verify", "-CAfile", home.ca_crt,
                        home.master_crt]).stdout
    mtext = x509_text(home.master_crt)
    assert re.search(r"Subject: O = tandem, OU = master, CN = tandem-master", mtext), mtext
    assert re.search(r"Extended Key Usage:\s+TLS Web Client Authentication\n", mtext), mtext
    assert "Authority Key Identifier" in mtext
    assert pubkey_of_key(home.master_key) == pubkey_of_cert(home.master_crt)
    # The master is a client only.
    r = run(["openssl", "verify", "-purpose", "sslserver", "-CAfile", home.ca_crt,
             home.master_crt], check=False)
    assert r.returncode != 0

    out = dict(line.split(": ", 1) for line in home.init_result.stdout.splitlines())
    assert out["ca_fingerprint"] == openssl_fp(home.ca_crt)
    assert out["master_fingerprint"] == openssl_fp(home.master_crt)
    assert out["master_cn"] == "tandem-master"


def test_init_refuses_to_overwrite(home):
    before = open(home.ca_crt).read(), open(home.ca_key).read()
    r = tandem(home.path, "pki", "init", check=1)
    assert "already exists" in r.stderr and "refusing" in r.stderr
    assert (open(home.ca_crt).read(), open(home.ca_key).read()) == before
    # Even with only the master's certificate left, init refuses.
    for f in (home.ca_crt, home.ca_key, home.master_key):
        os.unlink(f)
    r = tandem(home.path, "pki", "init", check=1)
    assert "master.crt" in r.stderr
    assert not os.path.exists(home.ca_key)


def test_concurrent_inits_make_one_consistent_ca(tmp_path):
    path = str(tmp_path / "race")
    argv = [bin_path("tandem"), "--home", path, "pki", "init"]
    ps = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
          for _ in range(4)]
    codes = [p.wait(timeout=60) for p in ps]
    for p in ps:
        p.stdout.close()
        p.stderr.close()
    assert sorted(codes) == [0, 1, 1, 1], codes
    ca = os.path.join(path, "ca", "ca.crt")
    assert pubkey_of_key(os.path.join(path, "ca", "ca.key")) == pubkey_of_cert(ca)
    m = os.path.join(path, "master", "master.crt")
    assert pubkey_of_key(os.path.join(path, "master", "master.key")) == pubkey_of_cert(m)
    assert run(["openssl", "verify", "-CAfile", ca, m]).returncode == 0


def test_home_from_env_and_default(tmp_path):
    envhome = tmp_path / "envhome"
    tandem(None, "pki", "init", env={"TANDEM_HOME": str(envhome)}, check=0)
    assert os.path.exists(envhome / "ca" / "ca.crt")
    fake_home = tmp_path / "user"
    fake_home.mkdir()
    env = {"HOME": str(fake_home), "TANDEM_HOME": ""}
    tandem(None, "pki", "init", env=env, check=0)
    assert os.path.exists(fake_home / ".tandem" / "master" / "master.crt")
    # --home wins over the environment.
    explicit = tmp_path / "explicit"
    tandem(explicit, "pki", "init", env={"TANDEM_HOME": str(envhome)}, check=0)
    assert os.path.exists(explicit / "ca" / "ca.key")


# ---- issue ----------------------------------------------------------------


def test_issue_agent_openssl_accepts(home, tmp_path):
    out = str(tmp_path / "out")
    res = home.issue("host1", "agent", out, "--san", "localhost", "--san", "127.0.0.1",
                     "--san", "::1")
    assert res["cert"] == os.path.join(out, "host1.crt")
    assert res["key"] == os.path.join(out, "host1.key")
    assert mode(out) == 0o700
    assert mode(res["key"]) == 0o600
    assert open(res["ca"]).read() == open(home.ca_crt).read()

    assert run(["openssl", "verify", "-CAfile", home.ca_crt, res["cert"]]).stdout.strip() \
        .endswith(": OK")
    for purpose in ("sslserver", "sslclient"):
        run(["openssl", "verify", "-purpose", purpose, "-CAfile", home.ca_crt, res["cert"]])
    text = x509_text(res["cert"])
    assert "Subject: O = tandem, OU = agent, CN = host1" in text
    assert re.search(r"Extended Key Usage:\s+TLS Web Server Authentication, "
                     r"TLS Web Client Authentication", text), text
    assert re.search(r"Subject Alternative Name:\s+DNS:host1, DNS:localhost, "
                     r"IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1", text), text
    assert re.search(r"Basic Constraints: critical\s+CA:FALSE", text), text
    assert re.search(r"Key Usage: critical\s+Digital Signature\n", text), text
    # AKI of the leaf = SKI of the CA.
    ski = re.search(r"Subject Key Identifier:\s+([0-9A-F:]+)", x509_text(home.ca_crt)).group(1)
    aki = re.search(r"Authority Key Identifier:\s+(?:keyid:)?([0-9A-F:]+)", text).group(1)
    assert aki == ski
    # 128-bit serial: at most 16 bytes once the sign byte is dropped, positive.
    serial = run(["openssl", "x509", "-in", res["cert"], "-noout", "-serial"]).stdout
    serial = serial.strip().split("=", 1)[1]
    assert 1 <= len(serial.lstrip("0")) <= 32
    # Default validity 397 days.
    assert res["fingerprint"] == openssl_fp(res["cert"])
    dates = home.show(res["cert"])
    assert dates["not_before"] == res["not_before"]
    # openssl's hostname and IP checks use our SANs.
    run(["openssl", "verify", "-CAfile", home.ca_crt, "-verify_hostname", "localhost",
         res["cert"]])
    run(["openssl", "verify", "-CAfile", home.ca_crt, "-verify_ip", "127.0.0.1", res["cert"]])
    run(["openssl", "verify", "-CAfile", home.ca_crt, "-verify_ip", "::1", res["cert"]])
    r = run(["openssl", "verify", "-CAfile", home.ca_crt, "-verify_ip", "10.9.9.9",
             res["cert"]], check=False)
    assert r.returncode != 0


def test_issue_updater_and_master_roles(home, tmp_path):
    out = str(tmp_path / "out")
    upd = home.issue("host1", "updater", out)
    assert upd["cert"] == os.path.join(out, "updater@host1.crt")
    assert upd["cn"] == "updater@host1"
    text = x509_text(upd["cert"])
    assert "Subject: O = tandem, OU = updater, CN = updater@host1" in text
    assert re.search(r"DNS:host1\n", text)
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text

    m = home.issue("tandem-master", "master", out)
    mtext = x509_text(m["cert"])
    assert "OU = master, CN = tandem-master" in mtext
    assert re.search(r"Extended Key Usage:\s+TLS Web Client Authentication\n", mtext)
    assert "Subject Alternative Name" not in mtext
    run(["openssl", "verify", "-CAfile", home.ca_crt, upd["cert"], m["cert"]])

    # --eku overrides the role's default.
    srv = home.issue("host2", "agent", out, "--eku", "server")
    stext = x509_text(srv["cert"])
    assert re.search(r"Extended Key Usage:\s+TLS Web Server Authentication\n", stext)
    r = run(["openssl", "verify", "-purpose", "sslclient", "-CAfile", home.ca_crt,
             srv["cert"]], check=False)
    assert r.returncode != 0


def test_issue_rsa_and_explicit_window(home, tmp_path):
    out = str(tmp_path / "out")
    res = home.issue("rsahost", "agent", out, "--key-type", "rsa", "--not-before",
                     "2026-01-01", "--not-after", "2026-12-31T23:59:59Z")
    text = x509_text(res["cert"])
    assert "Public-Key: (2048 bit)" in text
    assert re.search(r"Key Usage: critical\s+Digital Signature, Key Encipherment", text)
    assert "Not Before: Jan  1 00:00:00 2026 GMT" in text
    assert "Not After : Dec 31 23:59:59 2026 GMT" in text
    assert res["not_before"] == "2026-01-01T00:00:00Z"
    show = home.show(res["cert"])
    assert show["key"] == "RSA 2048"
    res = home.issue("days", "agent", out, "--days", "30")
    show = home.show(res["cert"])
    assert show["status"] == "valid"


def test_pki_show_text_and_json(home, tmp_path):
    out = str(tmp_path / "out")
    res = home.issue("host1", "agent", out, "--san", "127.0.0.1")
    r = tandem(home.path, "pki", "show", res["cert"], check=0)
    lines = dict(line.split(": ", 1) for line in r.stdout.splitlines())
    assert lines["subject"] == "O=tandem, OU=agent, CN=host1"
    assert lines["issuer"].startswith("O=tandem, CN=tandem CA ")
    assert lines["role"] == "agent"
    assert lines["host"] == "host1"
    assert lines["san"] == "DNS:host1, IP:127.0.0.1"
    assert lines["eku"] == "serverAuth, clientAuth"
    assert lines["key"] == "EC secp256r1"
    assert lines["ca"] == "no"
    assert lines["status"] == "valid"
    assert lines["fingerprint"] == openssl_fp(res["cert"])
    serial = run(["openssl", "x509", "-in", res["cert"], "-noout", "-serial"]).stdout
    # Hex of the serial's bytes: a leading zero nibble may show on our side and not on
    # openssl's (one serial in 16), so both sides drop leading zeros.
    assert lines["serial"].lstrip("0") == serial.strip().split("=", 1)[1].lower().lstrip("0")

    j = home.show(res["cert"])
    assert j["fingerprint"] == lines["fingerprint"]
    assert j["san"] == ["DNS:host1", "IP:127.0.0.1"]
    assert j["eku"] == ["serverAuth", "clientAuth"]
    assert j["ca"] is False

    ca = home.show(home.ca_crt)
    assert ca["ca"] is True and ca["eku"] == [] and ca["role"] == "ca"
    assert home.show(home.master_crt)["role"] == "master"
    # A DER file works too.
    der = str(tmp_path / "host1.der")
    run(["openssl", "x509", "-in", res["cert"], "-outform", "DER", "-out", der])
    assert home.show(der)["fingerprint"] == j["fingerprint"]
    # An openssl-made certificate with an impersonating CN has no role.
    other = OpensslPKI(str(tmp_path / "other"))
    crt, _ = other.issue("evil", "evil@host1", ou="agent")
    assert home.show(crt)["role"] == "unknown"

    # Errors.
    r = tandem(home.path, "pki", "show", str(tmp_path / "nope.crt"), check=1)
    assert "nope.crt" in r.stderr
    junk = tmp_path / "junk.crt"
    junk.write_text("hello\n")
    r = tandem(home.path, "pki", "show", str(junk), check=1)
    assert "junk.crt" in r.stderr and r.stdout == ""
    tandem(home.path, "pki", "show", check=2)
    tandem(home.path, "pki", "show", "a", "b", check=2)


BAD_NAMES = [
    ("tandem-master", "master"),       # the master's CN
    ("TANDEM-MASTER", "master"),       # ... in any case
    ("updater@host1", "'@'"),          # an updater's CN as an agent name
    ("a@b", "'@'"),
    ("-lead", "start"),
    ("trail-", "end"),
    ("bad_name", "[A-Za-z0-9.-]"),
    ("has space", "[A-Za-z0-9.-]"),
    ("a..b", "empty label"),
    ("x" * 64, "63"),
    (".".join(["y" * 63] * 4), "253"),
    ("", "empty"),
]


@pytest.mark.parametrize("name,why", BAD_NAMES)
def test_issue_refuses_bad_names(home, tmp_path, name, why):
    out = tmp_path / "out"
    for role in ("agent", "updater"):
        # A refused name is a usage error; under --json the error is the one object on stdout.
        r = home.issue(name, role, str(out), check=2)
        assert why in r.stderr, r.stderr
        assert r.stderr.startswith("tandem: error: pki issue: "), r.stderr
        err = json.loads(r.stdout)["error"]
        assert err["kind"] == "usage" and why in err["message"], r.stdout
    # Nothing was written.
    assert not out.exists() or [f for f in os.listdir(out) if f.endswith(".key")] == []


def test_issue_refusals_and_usage_errors(home, tmp_path):
    out = str(tmp_path / "out")
    # A master certificate must carry the recorded master CN.
    r = home.issue("host1", "master", out, check=1)
    assert "master CN" in r.stderr
    # Bad SANs.
    r = home.issue("host1", "agent", out, "--san", "bad_san", check=1)
    assert "subjectAltName" in r.stderr
    r = home.issue("host1", "agent", out, "--san", "a.example", "--san", "A.example", check=1)
    assert "twice" in r.stderr
    # Existing files are not replaced without --force.
    first = home.issue("host1", "agent", out)
    r = home.issue("host1", "agent", out, check=1)
    assert "already exists" in r.stderr
    assert openssl_fp(first["cert"]) == first["fingerprint"]
    second = home.issue("host1", "agent", out, "--force")
    assert second["fingerprint"] != first["fingerprint"]
    assert mode(second["key"]) == 0o600
    # Outliving the CA.
    r = home.issue("host9", "agent", out, "--not-after", "2099-01-01", check=1)
    assert "outlive" in r.stderr

    usage = [
        ["host1", "--role", "agent"],                           # no --out
        ["host1", "--out", out],                                # no --role
        ["--role", "agent", "--out", out],                      # no NAME
        ["host1", "extra", "--role", "agent", "--out", out],
        ["host1", "--role", "boss", "--out", out],
        ["host1", "--role", "agent", "--out", out, "--days", "0"],
        ["host1", "--role", "agent", "--out", out, "--days", "3651"],
        ["host1", "--role", "agent", "--out", out, "--days", "ten"],
        ["host1", "--role", "agent", "--out", out, "--not-before", "yesterday"],
        ["host1", "--role", "agent", "--out", out, "--not-after", "2026-13-01"],
        ["host1", "--role", "agent", "--out", out, "--days", "5", "--not-after",
         "2027-01-01"],
        ["host1", "--role", "agent", "--out", out, "--not-before", "2027-01-02",
         "--not-after", "2027-01-01"],
        ["host1", "--role", "agent", "--out", out, "--eku", "any"],
        ["host1", "--role", "agent", "--out", out, "--key-type", "dsa"],
        ["host1", "--role", "agent", "--out", out, "--bogus"],
        ["host1", "--role"],
    ]
    for args in usage:
        r = tandem(home.path, "pki", "issue", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert "Try 'tandem pki issue --help'" in r.stderr
    r = tandem(home.path, "pki", "init", "--master-cn", "bad cn", check=2)
    assert "master CN" in r.stderr

    # Issuing needs a CA.
    r = tandem(str(tmp_path / "empty"), "pki", "issue", "h", "--role", "agent", "--out", out,
               check=1)
    assert "pki init" in r.stderr


def test_cli_help_and_dispatch(tmp_path):
    r = tandem(None, "--version", check=0)
    assert r.stdout.startswith("tandem ")
    r = tandem(None, "--help", check=0)
    assert "pki" in r.stdout
    assert "issue" in tandem(None, "pki", "--help", check=0).stdout
    for cmd in ("init", "issue", "show"):
        r = tandem(tmp_path, "pki", cmd, "--help", check=0)
        assert r.stdout.startswith("usage: tandem pki %s" % cmd)
    assert tandem(None, check=2).returncode == 2
    assert "unknown command group" in tandem(None, "nope", check=2).stderr
    assert "unknown command" in tandem(None, "pki", "nope", check=2).stderr
    assert "unknown option" in tandem(None, "--frobnicate", "pki", check=2).stderr
    tandem(None, "pki", check=2)
    # Help touches nothing.
    assert not (tmp_path / "ca").exists()


# ---- the certificates in use -----------------------------------------------


def test_curl_with_our_certs(home, server, tmp_path):
    """curl itself (not the suite's in-process client) reads our certificates: the
    server's DNS and IP SANs, and each client key type."""
    out = str(tmp_path / "clients")
    agent = home.issue("host1", "agent", out)
    upd = home.issue("host1", "updater", out)
    rsa = home.issue("rsaclient", "agent", out, "--key-type", "rsa")

    r = curl(server.port, home.master_crt, home.master_key, home.ca_crt, real_curl=True)
    assert r.rc == 0, r.stderr
    who = json.loads(r.body)
    assert who["role"] == "master" and who["cn"] == "tandem-master"
    assert who["fingerprint"] == home.show(home.master_crt)["fingerprint"]

    # By IP: curl checks the IP SAN of the server certificate.
    r = curl(server.port, agent["cert"], agent["key"], home.ca_crt, host="127.0.0.1",
             real_curl=True)
    assert r.rc == 0, r.stderr
    who = json.loads(r.body)
    assert who["role"] == "agent" and who["host"] == "host1"
    assert who["fingerprint"] == agent["fingerprint"]

    who = json.loads(curl(server.port, upd["cert"], upd["key"], home.ca_crt,
                          real_curl=True).body)
    assert who["role"] == "updater" and who["host"] == "host1" and who["ou"] == "updater"

    r = curl(server.port, rsa["cert"], rsa["key"], home.ca_crt, real_curl=True)
    assert r.rc == 0, r.stderr
    assert json.loads(r.body)["cn"] == "rsaclient"

    r = curl(server.port, home.master_crt, home.master_key, home.ca_crt, path="/master-only",
             real_curl=True)
    assert r.rc == 0 and r.body


def test_server_refuses_bad_client_certs(home, server, tmp_path):
    out = str(tmp_path / "clients")
    expired = home.issue("old", "agent", out, "--not-before", "2020-01-01",
                         "--not-after", "2020-06-01")
    future = home.issue("future", "agent", out, "--not-before", "2030-01-01",
                        "--not-after", "2030-02-01")
    srvonly = home.issue("srvonly", "agent", out, "--eku", "server")
    assert home.show(expired["cert"])["status"] == "expired"
    assert home.show(future["cert"])["status"] == "not yet valid"
    # openssl agrees these are not valid now.
    r = run(["openssl", "verify", "-CAfile", home.ca_crt, expired["cert"]], check=False)
    assert r.returncode != 0 and "expired" in (r.stdout + r.stderr)

    other = Home(tmp_path / "other-home")  # a second fleet: another CA
    for crt, key in ((expired["cert"], expired["key"]), (future["cert"], future["key"]),
                     (srvonly["cert"], srvonly["key"]),
                     (other.master_crt, other.master_key), (None, None)):
        r = curl(server.port, crt, key, home.ca_crt)
        assert r.rc != 0, (crt, r.body)
        assert '"role"' not in r.body
    # The server keeps serving good clients.
    r = curl(server.port, home.master_crt, home.master_key, home.ca_crt)
    assert r.rc == 0 and json.loads(r.body)["role"] == "master"
    # And our client refuses a server from another fleet.
    r = curl(server.port, home.master_crt, home.master_key, other.ca_crt)
    assert r.rc != 0


def test_custom_master_cn_end_to_end(tmp_path, procs):
    home = Home(tmp_path / "home", master_cn="fleet-boss")
    assert "OU = master, CN = fleet-boss" in x509_text(home.master_crt)
    assert home.show(home.master_crt)["role"] == "master"
    out = str(tmp_path / "out")
    r = home.issue("Fleet-Boss", "agent", out, check=2)  # a name no host may have: usage error
    assert "master" in r.stderr
    r = home.issue("tandem-master", "master", out, check=1)
    res = home.issue("localhost", "agent", out, "--san", "127.0.0.1")
    p = Proc([bin_path("tandem-testd"), "--ca", home.ca_crt, "--cert", res["cert"],
              "--key", res["key"], "--master-cn", "fleet-boss"], str(tmp_path / "logs"),
             name="testd")
    procs.append(p)
    port = int(p.wait_line(r"READY port=(\d+)").group(1))
    r = curl(port, home.master_crt, home.master_key, home.ca_crt)
    assert r.rc == 0, r.stderr
    assert json.loads(r.body)["role"] == "master"


def test_ca_rotation_with_a_two_ca_bundle(tmp_path, procs):
    """The rotation advice in wiki/PKI-and-mTLS.md: a server trusting old + new CA."""
    old = Home(tmp_path / "old")
    new = Home(tmp_path / "new")
    stranger = Home(tmp_path / "stranger")
    res = new.issue("localhost", "agent", str(tmp_path / "srv"), "--san", "127.0.0.1")
    bundle = tmp_path / "bundle.crt"
    bundle.write_text(open(old.ca_crt).read() + open(new.ca_crt).read())
    p = Proc([bin_path("tandem-testd"), "--ca", str(bundle), "--cert", res["cert"],
              "--key", res["key"]], str(tmp_path / "logs"), name="testd")
    procs.append(p)
    port = int(p.wait_line(r"READY port=(\d+)").group(1))
    for h in (old, new):
        r = curl(port, h.master_crt, h.master_key, new.ca_crt)
        assert r.rc == 0, r.stderr
        assert json.loads(r.body)["fingerprint"] == h.show(h.master_crt)["fingerprint"]
    r = curl(port, stranger.master_crt, stranger.master_key, new.ca_crt)
    assert r.rc != 0


def test_issue_from_an_existing_openssl_rsa_ca(tmp_path, procs):
    """A CA made elsewhere (openssl, RSA, a PrintableString country) issues through pki."""
    home = tmp_path / "home"
    (home / "ca").mkdir(parents=True, mode=0o700)
    key, crt = str(home / "ca" / "ca.key"), str(home / "ca" / "ca.crt")
    run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
         "-out", key])
    run(["openssl", "req", "-x509", "-new", "-key", key, "-out", crt, "-days", "3650",
         "-subj", "/C=DE/O=Ext Org/CN=Ext Root",
         "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-addext", "subjectKeyIdentifier=hash"])
    out = str(tmp_path / "out")
    r = tandem(home, "pki", "issue", "localhost", "--role", "agent", "--out", out, "--san",
               "127.0.0.1", "--json", check=0)
    srv = json.loads(r.stdout)
    run(["openssl", "verify", "-CAfile", crt, srv["cert"]])
    # The issuer keeps the CA's string types; the AKI is the CA's own SKI.
    leaf = run(["openssl", "asn1parse", "-in", srv["cert"]]).stdout
    assert re.search(r"PRINTABLESTRING\s+:DE", leaf), leaf
    ski = re.search(r"Subject Key Identifier:\s+([0-9A-F:]+)", x509_text(crt)).group(1)
    aki = re.search(r"Authority Key Identifier:\s+(?:keyid:)?([0-9A-F:]+)",
                    x509_text(srv["cert"])).group(1)
    assert aki == ski
    # Without a master certificate in this home, the default master CN applies.
    m = json.loads(tandem(home, "pki", "issue", "tandem-master", "--role", "master", "--out",
                          out, "--json", check=0).stdout)
    p = Proc([bin_path("tandem-testd"), "--ca", crt, "--cert", srv["cert"], "--key",
              srv["key"]], str(tmp_path / "logs"), name="testd")
    procs.append(p)
    port = int(p.wait_line(r"READY port=(\d+)").group(1))
    r = curl(port, m["cert"], m["key"], crt)
    assert r.rc == 0, r.stderr
    assert json.loads(r.body)["role"] == "master"


def test_warns_about_a_readable_ca_key(home, tmp_path):
    os.chmod(home.ca_key, 0o644)
    r = tandem(home.path, "pki", "issue", "host1", "--role", "agent", "--out",
               str(tmp_path / "out"), check=0)
    assert "ca.key is accessible to group or others" in r.stderr
    os.chmod(home.ca_key, 0o600)
    r = tandem(home.path, "pki", "issue", "host2", "--role", "agent", "--out",
               str(tmp_path / "out"), check=0)
    assert "accessible" not in r.stderr
