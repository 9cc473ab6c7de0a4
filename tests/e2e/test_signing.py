"""End-to-end tests of signed releases: `tandem release keygen|sign|verify|keyring`
run as an operator would, signatures checked against the stock openssl CLI in
both directions, and keyring rotation on the master."""

import base64
import hashlib
import json
import os
import stat
import subprocess
import tarfile

import pytest

from conftest import run, wait_until
from swarm_util import Fleet, from_template, make_release, tandem, tandem_json
from worker_util import curl_run


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(scope="module")
def rel_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("releases"))


@pytest.fixture(scope="module")
def release(build_dir, rel_dir):
    """One small good release, shared by the CLI tests (never modified)."""
    return make_release(build_dir, "1.0.0", rel_dir)


def copy_release(src, dst_dir, name="r.tar.gz"):
    dst = os.path.join(str(dst_dir), name)
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read())
    return dst


class Keys:
    """Release and root keys made with `tandem release keygen` under DIR."""

    def __init__(self, home, directory):
        self.home = home
        self.dir = str(directory)
        self.ids = {}

    def make(self, name):
        doc = tandem_json(self.home, "release", "keygen", "--out", self.dir, "--name", name)
        self.ids[name] = doc["keyid"]
        return doc

    def key(self, name):
        return os.path.join(self.dir, name + ".key")

    def pub(self, name):
        return os.path.join(self.dir, name + ".pub")

    def known(self, *names):
        """Record the ids of NAMES already under DIR (a copy of keys made by make),
        as `release keygen` prints them (spki_keyid)."""
        for name in names:
            self.ids[name] = spki_keyid(self.pub(name))


def spki_keyid(pub_pem):
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", pub_pem, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    return hashlib.sha256(der).hexdigest()


def read_tsig(path):
    with open(path) as f:
        doc = json.load(f)
    return doc, base64.b64decode(doc["statement"])


# ------------------------------------------------------------------ the CLI

def test_keygen_sign_verify(tmp_path, release):
    home = str(tmp_path / "master")
    keys = Keys(home, tmp_path / "keys")
    k = keys.make("rel")
    assert mode(keys.key("rel")) == 0o600 and mode(keys.pub("rel")) == 0o644
    assert mode(keys.dir) == 0o700
    # The key id is the sha256 of the public key's DER, as openssl computes it.
    assert k["keyid"] == spki_keyid(keys.pub("rel"))
    # A key is never replaced by accident.
    r = tandem(home, "release", "keygen", "--out", keys.dir, "--name", "rel")
    assert r.returncode == 1 and "exists already" in r.stderr
    keys.make("root")

    rel = copy_release(release, tmp_path)
    signed = tandem_json(home, "release", "sign", rel, "--key", keys.key("rel"),
                         "--security-version", "7", "--min-security-version", "6")
    assert signed["path"] == rel + ".tsig"
    st = signed["statement"]
    assert (st["name"], st["version"], st["compatible"]) == ("tandem-agent", "1.0.0", "tandem")
    assert st["security_version"] == 7 and st["min_security_version"] == 6
    assert st["sha256"] == hashlib.sha256(open(rel, "rb").read()).hexdigest()
    assert st["size"] == os.path.getsize(rel)
    # The files digest a planned push is held to: SHA-256 of the tarball's files.json.
    with tarfile.open(rel) as t:
        fj = t.extractfile(t.getmember("files.json")).read()
    assert st["manifest_sha256"] == hashlib.sha256(fj).hexdigest()
    assert sorted(st["kinds"]) == ["agent", "updater"]
    assert signed["signed_by"] == [k["keyid"]]
    # Signing again needs --force; --cosign adds a signature to the same statement.
    r = tandem(home, "release", "sign", rel, "--key", keys.key("rel"),
               "--security-version", "7")
    assert r.returncode == 1 and "--cosign" in r.stderr
    r = tandem(home, "release", "sign", rel, "--key", keys.key("rel"), "--cosign")
    assert r.returncode == 1 and "signed this already" in r.stderr
    # Usage errors exit 2.
    assert tandem(home, "release", "sign", rel, "--key", keys.key("rel")).returncode == 2
    assert tandem(home, "release", "sign", rel, "--key", keys.key("rel"),
                  "--security-version", "x").returncode == 2
    assert tandem(home, "release", "sign", rel, "--security-version", "1").returncode == 2

    # Verify against a keyring listing the key.
    kr = str(tmp_path / "keyring.json")
    tandem(home, "release", "keyring", "init", "--root-key", keys.key("root"),
           "--add", keys.pub("rel"), "--out", kr, check=0)
    ok = tandem_json(home, "release", "verify", rel, "--keyring", kr)
    assert ok["ok"] is True and ok["signed_by"] == [k["keyid"]] and ok["keyring_version"] == 1
    # The floor and the compatible string, as a host would check them.
    r = tandem(home, "release", "verify", rel, "--keyring", kr, "--floor", "8", "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"]["kind"] == "below_security_floor"
    r = tandem(home, "release", "verify", rel, "--keyring", kr, "--compatible", "router",
               "--json")
    assert json.loads(r.stdout)["error"]["kind"] == "statement_mismatch"
    # Other bytes than the signed ones.
    with open(rel, "ab") as f:
        f.write(b"\0")
    r = tandem(home, "release", "verify", rel, "--keyring", kr, "--json")
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"]["kind"] == "statement_mismatch"
    # Signed by a key the keyring does not list.
    other = tandem_json(home, "release", "keygen", "--out", keys.dir, "--name", "other")
    rel2 = copy_release(release, tmp_path, "r2.tar.gz")
    tandem(home, "release", "sign", rel2, "--key", keys.key("other"),
           "--security-version", "1", check=0)
    r = tandem(home, "release", "verify", rel2, "--keyring", kr, "--json")
    assert json.loads(r.stdout)["error"]["kind"] == "unknown_key", r.stdout
    assert other["keyid"][:16] in r.stderr
    # No signature file at all.
    rel3 = copy_release(release, tmp_path, "r3.tar.gz")
    r = tandem(home, "release", "verify", rel3, "--keyring", kr, "--json")
    assert r.returncode == 1 and "not signed" in r.stderr
    # A release without files.json (an older packer) is signed without manifest_sha256.
    rel4 = str(tmp_path / "r4.tar.gz")
    with tarfile.open(release) as src, tarfile.open(rel4, "w:gz", compresslevel=1) as dst:
        for m in src.getmembers():
            if m.name.lstrip("./") != "files.json":
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    old = tandem_json(home, "release", "sign", rel4, "--key", keys.key("rel"),
                      "--security-version", "1")
    assert old["statement"]["manifest_sha256"] is None


def test_signatures_interoperate_with_openssl(tmp_path, release):
    """Our signatures pass `openssl dgst -sha256 -verify`; openssl's pass ours."""
    home = str(tmp_path / "master")
    keys = Keys(home, tmp_path / "keys")
    keys.make("rel")
    keys.make("root")
    rel = copy_release(release, tmp_path)
    tandem(home, "release", "sign", rel, "--key", keys.key("rel"), "--security-version", "3",
           check=0)
    doc, statement = read_tsig(rel + ".tsig")
    (tmp_path / "statement").write_bytes(statement)
    (tmp_path / "sig.der").write_bytes(base64.b64decode(doc["signatures"][0]["sig"]))
    r = run(["openssl", "dgst", "-sha256", "-verify", keys.pub("rel"), "-signature",
             str(tmp_path / "sig.der"), str(tmp_path / "statement")])
    assert "Verified OK" in r.stdout
    # One flipped byte of the statement: openssl refuses too.
    (tmp_path / "bad").write_bytes(statement.replace(b'"security_version":3',
                                                     b'"security_version":9'))
    r = run(["openssl", "dgst", "-sha256", "-verify", keys.pub("rel"), "-signature",
             str(tmp_path / "sig.der"), str(tmp_path / "bad")], check=False)
    assert r.returncode != 0

    # The other way: a key and a signature made by openssl alone.
    okey, opub = str(tmp_path / "o.pem"), str(tmp_path / "o.pub")
    run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", okey])
    run(["openssl", "pkey", "-in", okey, "-pubout", "-out", opub])
    run(["openssl", "dgst", "-sha256", "-sign", okey, "-out", str(tmp_path / "osig.der"),
         str(tmp_path / "statement")])
    doc["signatures"] = [{"keyid": spki_keyid(opub), "alg": "ecdsa-p256-sha256",
                          "sig": base64.b64encode((tmp_path / "osig.der").read_bytes())
                          .decode()}]
    with open(rel + ".tsig", "w") as f:
        json.dump(doc, f)
    kr = str(tmp_path / "keyring.json")
    tandem(home, "release", "keyring", "init", "--root-key", keys.key("root"),
           "--add", opub, "--out", kr, check=0)
    ok = tandem_json(home, "release", "verify", rel, "--keyring", kr)
    assert ok["signed_by"] == [spki_keyid(opub)]
    # And openssl's private key file works as a --key for us.
    tandem(home, "release", "sign", rel, "--key", okey, "--security-version", "3", "--force",
           check=0)
    tandem(home, "release", "verify", rel, "--keyring", kr, check=0)


def test_keyring_rotation_on_the_master(tmp_path):
    home = str(tmp_path / "master")
    tandem(home, "pki", "init", check=0)
    keys = Keys(home, tmp_path / "keys")
    for n in ("root1", "root2", "rel1", "rel2"):
        keys.make(n)
    # Version 1 into the master's home.
    v1 = tandem_json(home, "release", "keyring", "init", "--root-key", keys.key("root1"),
                     "--add", keys.pub("rel1"))
    assert v1["version"] == 1 and v1["complete"] is True
    assert v1["path"] == os.path.join(home, "keyring", "1.json")
    assert mode(os.path.join(home, "keyring")) == 0o700
    # A second version 1 is refused (only the next version is accepted).
    r = tandem(home, "release", "keyring", "init", "--root-key", keys.key("root1"),
               "--add", keys.pub("rel2"), "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["error"]["kind"] == "conflict"

    # Version 2 moves to root2, written out first and signed by the new root alone:
    # the master refuses it until the old root signs too.
    out = str(tmp_path / "v2.json")
    v2 = tandem_json(home, "release", "keyring", "rotate", "--root-key", keys.key("root2"),
                     "--add-root", keys.pub("root2"), "--remove-root", keys.ids["root1"][:12],
                     "--add", keys.pub("rel2"), "--remove", keys.ids["rel1"], "--out", out)
    assert v2["version"] == 2 and v2["complete"] is False
    assert v2["previous_root_signatures"] == 0 and v2["root_signatures"] == 1
    r = tandem(home, "release", "keyring", "install", out, "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["error"]["kind"] == "unknown_key"
    v2 = tandem_json(home, "release", "keyring", "sign", out, "--root-key", keys.key("root1"))
    assert v2["complete"] is True and v2["previous_root_signatures"] == 1
    got = tandem_json(home, "release", "keyring", "install", out)
    assert got["version"] == 2 and got["root_keys"] == [keys.ids["root2"]]
    assert [k["keyid"] for k in got["release_keys"]] == [keys.ids["rel2"]]
    shown = tandem_json(home, "release", "keyring", "show")
    assert shown["version"] == 2
    # Installing version 2 again, or version 1, is refused; so is a version 4.
    for doc in (out, os.path.join(home, "keyring", "1.json")):
        r = tandem(home, "release", "keyring", "install", doc, "--json")
        assert json.loads(r.stdout)["error"]["kind"] == "conflict", r.stdout
    v3 = str(tmp_path / "v3.json")
    tandem(home, "release", "keyring", "rotate", "--root-key", keys.key("root2"),
           "--threshold", "1", "--out", v3, check=0)
    v4 = str(tmp_path / "v4.json")
    tandem(home, "release", "keyring", "rotate", "--from", v3, "--root-key",
           keys.key("root2"), "--out", v4, check=0)
    r = tandem(home, "release", "keyring", "install", v4, "--json")
    assert "only version 3" in json.loads(r.stdout)["error"]["message"]
    tandem(home, "release", "keyring", "install", v3, check=0)
    tandem(home, "release", "keyring", "install", v4, check=0)
    assert sorted(os.listdir(os.path.join(home, "keyring"))) == \
        ["1.json", "2.json", "3.json", "4.json"]
    # A document with a bad signature byte is refused whatever its version says.
    doc = json.load(open(v4))
    sig = bytearray(base64.b64decode(doc["signatures"][0]["sig"]))
    sig[-1] ^= 1
    doc["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    bad = str(tmp_path / "bad.json")
    json.dump(doc, open(bad, "w"))
    r = tandem(home, "release", "keyring", "show", bad, "--json")
    assert json.loads(r.stdout)["complete"] is False


# ------------------------------------------------- real updater + agent pairs

def tree_state(root):
    """Everything under ROOT/releases plus ROOT/current: path -> (kind, content digest)."""
    out = {}
    for base in ("releases", "current"):
        top = os.path.join(root, base)
        if os.path.islink(top):
            out[base] = ("link", os.readlink(top))
            continue
        for d, dirs, files in os.walk(top):
            for n in sorted(dirs + files):
                p = os.path.join(d, n)
                rel = os.path.relpath(p, root)
                if os.path.islink(p):
                    out[rel] = ("link", os.readlink(p))
                elif os.path.isfile(p):
                    out[rel] = ("file", hashlib.sha256(open(p, "rb").read()).hexdigest(),
                                stat.S_IMODE(os.lstat(p).st_mode))
                else:
                    out[rel] = ("dir", stat.S_IMODE(os.lstat(p).st_mode))
    return out


class Signed:
    """A master with a keyring (root key "root1", release key "rel1") and a fleet
    enrolled from it, plus helpers to sign copies of releases and to push by
    hand with curl (for what the CLI never sends)."""

    def __init__(self, tmp_path, rel_dir, build_dir, keyring=True):
        self.fleet = Fleet(tmp_path / "fleet")
        self.home = self.fleet.home
        self.tmp = tmp_path
        self.rel_dir = rel_dir
        self.build_dir = build_dir
        # The three keys are made once per test process and copied (from_template).
        names = ("root1", "rel1", "rel2")
        from_template("signed-keys", tmp_path / "keys",
                      lambda d: [Keys(self.home, d).make(n) for n in names])
        self.keys = Keys(self.home, tmp_path / "keys")
        self.keys.known(*names)
        self.n = 0
        if keyring:
            self.keyring_init()

    def keyring_init(self):
        tandem(self.home, "release", "keyring", "init", "--root-key", self.keys.key("root1"),
               "--add", self.keys.pub("rel1"), check=0)

    def release(self, version, kind="good", sv=None, min_sv=0, key="rel1", keyfile=None):
        """A copy of release VERSION (KIND) under a fresh name, signed with security
        version SV by KEY (or the key file KEYFILE); unsigned when SV is None."""
        src = make_release(self.build_dir, version, self.rel_dir, kind)
        self.n += 1
        dst = copy_release(src, self.tmp, "r%d-%s.tar.gz" % (self.n, version))
        if sv is not None:
            tandem(self.home, "release", "sign", dst, "--key",
                   keyfile or self.keys.key(key), "--security-version", str(sv),
                   "--min-security-version", str(min_sv), check=0)
        return dst

    def enroll_start(self, name, **kw):
        self.fleet.enroll(name)
        return self.fleet.start(name, **kw)

    def install(self, name):
        return self.fleet.install_dir(name)

    def curl(self, name, path, *args):
        """POST/GET PATH on NAME's updater as the master; (status, JSON body)."""
        port = self.fleet.ports[name][1]
        r = curl_run("https://127.0.0.1:%d%s" % (port, path),
                     os.path.join(self.home, "ca", "ca.crt"),
                     (os.path.join(self.home, "master", "master.crt"),
                      os.path.join(self.home, "master", "master.key")), *args)
        assert r.rc == 0, r.stderr
        return r.status, r.json()

    def push(self, name, tarball, tsig=None, sha256=None, order=("tsig", "tarball"), path="/update"):
        """POST /update by hand: the form fields in ORDER."""
        args = ["-F", "sha=manual",
                "-F", "sha256=%s" % (sha256 or hashlib.sha256(open(tarball, "rb").read())
                                     .hexdigest())]
        if path == "/update-self":
            args += ["-F", "confirm_self=true"]
        for f in order:
            if f == "tsig" and tsig is not None:
                args += ["-F", "tsig=<%s" % tsig]
            elif f == "tarball":
                args += ["-F", "tarball=@%s;type=application/gzip" % tarball]
        return self.curl(name, path, *args)

    def health(self, name):
        st, h = self.curl(name, "/health")
        assert st == 200
        return h

    def stop(self):
        self.fleet.stop_all()


@pytest.fixture
def signed(tmp_path, rel_dir, build_dir):
    s = Signed(tmp_path, rel_dir, build_dir)
    yield s
    s.stop()


def no_staging(install):
    return not os.path.exists(os.path.join(install, "releases", "active.new")) and \
        not os.path.exists(os.path.join(install, "state", "journal.json"))


def test_required_host_refuses_what_the_keys_did_not_sign(signed):
    s = signed
    s.enroll_start("web1")
    bundle = s.fleet.bundle("web1")
    # The bundle from a master with a keyring requires signatures.
    conf = open(os.path.join(bundle, "updater.conf")).read()
    assert "require_signed = true" in conf and "release_keyring = keyring.json" in conf
    assert open(os.path.join(bundle, "keyring.json")).read() == \
        open(os.path.join(s.home, "keyring", "1.json")).read()
    h = s.health("web1")
    assert (h["signature"], h["keyring_version"], h["security_floor"], h["compatible"]) == \
        ("required", 1, 0, "tandem")

    # A signed release installs; release.json records what signed it.
    good = s.release("1.0.0", sv=1)
    doc = s.fleet.json("swarm", "update", "--host", "web1", "--release", good)
    assert doc["hosts"][0]["agent"]["result"] == "updated" and doc["release"]["signed"]
    rec = json.load(open(os.path.join(s.install("web1"), "releases", "active",
                                      "release.json")))
    assert rec["security_version"] == 1 and rec["signed_by"] == s.keys.ids["rel1"]
    install = s.install("web1")
    before = tree_state(install)

    # Unsigned, through the CLI and by hand: 422, nothing staged, releases/ identical.
    unsigned = s.release("1.1.0")
    r = s.fleet.tandem("swarm", "update", "--host", "web1", "--release", unsigned, "--json",
                       check=1)
    doc = json.loads(r.stdout)
    h = doc["hosts"][0]
    assert h["agent"]["http_status"] == 422 and not doc["release"]["signed"], doc
    st, body = s.push("web1", unsigned)
    assert st == 422 and body["detail"]["kind"] == "signature_invalid", body
    assert tree_state(install) == before and no_staging(install)

    # Signed with the master's own TLS key (ECDSA P-256 too, but no release key).
    forged = s.release("1.1.0", sv=9, keyfile=os.path.join(s.home, "master", "master.key"))
    st, body = s.push("web1", forged, tsig=forged + ".tsig")
    assert st == 422 and body["detail"]["kind"] == "unknown_key", body
    r = s.fleet.tandem("swarm", "update", "--host", "web1", "--release", forged, "--json",
                       check=1)
    assert json.loads(r.stdout)["hosts"][0]["agent"]["http_status"] == 422
    assert tree_state(install) == before and no_staging(install)

    # A valid statement for other bytes: refused before extraction when the form's
    # sha256 is the tarball's, after the last byte when it is the statement's.
    other = s.release("1.1.0")
    st, body = s.push("web1", other, tsig=good + ".tsig")
    assert st == 422 and body["detail"]["kind"] == "statement_mismatch", body
    st, body = s.push("web1", other, tsig=good + ".tsig",
                      sha256=hashlib.sha256(open(good, "rb").read()).hexdigest())
    assert st == 422 and body["detail"]["kind"] in ("digest_mismatch", "statement_mismatch")
    assert tree_state(install) == before and no_staging(install)
    # The signature after the tarball comes too late: the tarball was refused as
    # unsigned when it began (422, saying where the signature belongs).
    st, body = s.push("web1", good, tsig=good + ".tsig", order=("tarball", "tsig"))
    assert st == 422 and "before 'tarball'" in body["detail"]["error"], body
    # A tampered signature byte: 422.
    doc = json.load(open(good + ".tsig"))
    sig = bytearray(base64.b64decode(doc["signatures"][0]["sig"]))
    sig[10] ^= 0x40
    doc["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    bad = str(s.tmp / "bad.tsig")
    json.dump(doc, open(bad, "w"))
    st, body = s.push("web1", good, tsig=bad)
    assert st == 422 and body["detail"]["kind"] == "signature_invalid", body
    assert tree_state(install) == before and no_staging(install)
    # Each refusal is in the history, with its kind.
    kinds = [e["error_kind"] for e in s.curl("web1", "/history")[1]["history"]
             if e["result"] == "refused"]
    assert {"signature_invalid", "unknown_key", "statement_mismatch"} <= set(kinds), kinds

    # The dry run says so per host, without changing anything.
    doc = s.fleet.json("swarm", "update", "--host", "web1", "--dry-run", "--release", unsigned)
    assert doc["hosts"][0]["signature_ok"] is False
    assert "requires signatures" in doc["hosts"][0]["signature"]
    doc = s.fleet.json("swarm", "update", "--host", "web1", "--dry-run", "--release", good)
    assert doc["hosts"][0]["signature_ok"] is True
    assert doc["hosts"][0]["signature"].startswith("signature ok")
    st = s.fleet.json("swarm", "status", "--host", "web1")["hosts"][0]
    assert (st["signature"], st["keyring_version"], st["security_floor"]) == ("required", 1, 0)


def test_security_floor(signed):
    s = signed
    s.enroll_start("web1")
    install = s.install("web1")
    # 1.0.0 is security version 5; 1.1.0 security version 6 with minimum 6.
    for rel in (s.release("1.0.0", sv=5), s.release("1.1.0", sv=6, min_sv=6)):
        s.fleet.tandem("swarm", "update", "--host", "web1", "--release", rel, check=0)
    h = s.health("web1")
    assert h["security_floor"] == 6
    floor = json.load(open(os.path.join(install, "state", "floor.json")))
    assert floor["floor"] == 6 and floor["raised_by"] == h["releases"][0]["id"]
    before = tree_state(install)

    # Security version 5 now: 409, nothing staged.
    old = s.release("1.2.0", sv=5)
    st, body = s.push("web1", old, tsig=old + ".tsig")
    assert st == 409 and body["detail"]["kind"] == "below_security_floor", body
    assert tree_state(install) == before and no_staging(install)
    # Unsigned counts as security version 0.
    st, body = s.push("web1", s.release("1.2.0"))
    assert st in (409, 422)
    # Back to the previous release (security version 5) by hand: 409, and why.
    st, body = s.curl("web1", "/rollback", "-X", "POST")
    assert st == 409 and body["detail"]["kind"] == "below_security_floor", body
    assert "security version 5" in body["detail"]["error"]
    r = s.fleet.tandem("swarm", "rollback", "--host", "web1", check=1)
    assert "409" in r.stdout + r.stderr or "floor" in r.stdout + r.stderr
    assert tree_state(install) == before

    # A release that fails its probe never raises the floor: the restore goes back.
    broken = s.release("1.3.0", kind="exit-at-once", sv=8, min_sv=8)
    r = s.fleet.tandem("swarm", "update", "--host", "web1", "--release", broken, "--json",
                       check=1)
    assert json.loads(r.stdout)["hosts"][0]["agent"]["result"] == "rolled_back"
    h = s.health("web1")
    assert h["security_floor"] == 6 and h["releases"][0]["version"] == "1.1.0"

    # The floor survives a restart of the updater.
    s.fleet.procs["web1"].stop(timeout=20)
    s.fleet.start("web1")
    assert s.health("web1")["security_floor"] == 6
    st, body = s.push("web1", old, tsig=old + ".tsig")
    assert st == 409


def test_keyring_rotation_reaches_hosts_in_order(signed):
    s = signed
    s.enroll_start("web1")
    install = s.install("web1")
    first = s.release("1.0.0", sv=1)
    s.fleet.tandem("swarm", "update", "--host", "web1", "--release", first, check=0)
    # Version 2 retires rel1 for rel2; version 3 only raises nothing but the version.
    tandem(s.home, "release", "keyring", "rotate", "--root-key", s.keys.key("root1"),
           "--remove", s.keys.ids["rel1"], "--add", s.keys.pub("rel2"), check=0)
    tandem(s.home, "release", "keyring", "rotate", "--root-key", s.keys.key("root1"), check=0)
    kr = lambda v: os.path.join(s.home, "keyring", "%d.json" % v)  # noqa: E731

    # Out of order (3 while the host has 1): refused, the host's keyring unchanged.
    state_kr = os.path.join(install, "state", "keyring.json")
    before = open(state_kr).read()
    st, body = s.curl("web1", "/keyring", "-X", "POST", "-H",
                      "Content-Type: application/json", "--data-binary", "@" + kr(3))
    assert st == 409 and body["detail"]["kind"] == "conflict", body
    assert open(state_kr).read() == before
    # A document signed by a key that is no root: refused.
    forged = str(s.tmp / "forged.json")
    tandem(s.home, "release", "keyring", "rotate", "--from", kr(1), "--root-key",
           s.keys.key("rel1"), "--out", forged, check=0)
    st, body = s.curl("web1", "/keyring", "-X", "POST", "--data-binary", "@" + forged)
    assert st == 422 and body["detail"]["kind"] in ("unknown_key", "signature_invalid"), body

    # In order, through the CLI: 1 -> 2 -> 3.
    doc = s.fleet.json("swarm", "keyring", "push", "--host", "web1")
    h = doc["hosts"][0]
    assert (h["from"], h["to"], h["error"]) == (1, 3, ""), doc
    assert open(state_kr).read() == open(kr(3)).read()
    assert s.health("web1")["keyring_version"] == 3
    # Again: nothing to do.
    doc = s.fleet.json("swarm", "keyring", "push", "--all")
    assert (doc["hosts"][0]["from"], doc["hosts"][0]["to"]) == (3, 3)
    # Going back is refused.
    st, body = s.curl("web1", "/keyring", "-X", "POST", "--data-binary", "@" + kr(2))
    assert st == 409

    # A release signed by the removed key: refused; by the new one: installed.
    old_key = s.release("1.1.0", sv=1, key="rel1")
    st, body = s.push("web1", old_key, tsig=old_key + ".tsig")
    assert st == 422 and body["detail"]["kind"] == "unknown_key", body
    new_key = s.release("1.1.0", sv=1, key="rel2")
    doc = s.fleet.json("swarm", "update", "--host", "web1", "--release", new_key)
    assert doc["hosts"][0]["agent"]["result"] == "updated"
    rec = json.load(open(os.path.join(install, "releases", "active", "release.json")))
    assert rec["signed_by"] == s.keys.ids["rel2"]


def test_existing_hosts_keep_accepting_unsigned(tmp_path, rel_dir, build_dir):
    """A host enrolled before the master had a keyring: unsigned releases still
    install, /health and swarm status say "unsigned"; once it has a keyring
    (swarm keyring push) the signature that comes along is checked."""
    s = Signed(tmp_path, rel_dir, build_dir, keyring=False)
    try:
        s.enroll_start("old")
        conf = open(os.path.join(s.fleet.bundle("old"), "updater.conf")).read()
        assert "require_signed" not in conf
        h = s.health("old")
        assert (h["signature"], h["keyring_version"]) == ("unsigned", None)
        doc = s.fleet.json("swarm", "update", "--host", "old", "--release", s.release("1.0.0"))
        assert doc["hosts"][0]["agent"]["result"] == "updated" and not doc["release"]["signed"]
        st = s.fleet.json("swarm", "status", "--host", "old")["hosts"][0]
        assert st["signature"] == "unsigned" and st["keyring_version"] is None
        r = s.fleet.tandem("swarm", "status", "--host", "old", check=0)
        assert "unsigned" in r.stdout

        # The master gets a keyring; the old host has none yet: a signature cannot be
        # checked there (the dry run says so), the release installs as unsigned.
        s.keyring_init()
        signed_rel = s.release("1.1.0", sv=2)
        doc = s.fleet.json("swarm", "update", "--host", "old", "--dry-run", "--release",
                           signed_rel)
        assert doc["hosts"][0]["signature_ok"] is True
        assert "no keyring" in doc["hosts"][0]["signature"]
        # After swarm keyring push it checks what comes along, though it requires nothing.
        doc = s.fleet.json("swarm", "keyring", "push", "--host", "old")
        assert (doc["hosts"][0]["from"], doc["hosts"][0]["to"]) == (0, 1), doc
        bad = s.release("1.1.0", sv=2, key="rel2")
        doc = s.fleet.json("swarm", "update", "--host", "old", "--dry-run", "--release", bad)
        assert doc["hosts"][0]["signature_ok"] is False
        r = s.fleet.tandem("swarm", "update", "--host", "old", "--release", bad, "--json",
                           check=1)
        doc = json.loads(r.stdout)
        assert doc["release"]["signed"] is True
        assert doc["hosts"][0]["agent"]["http_status"] == 422, doc
        doc = s.fleet.json("swarm", "update", "--host", "old", "--release", signed_rel)
        assert doc["hosts"][0]["agent"]["result"] == "updated" and doc["release"]["signed"]
        # A signature after the tarball: 400 (the tarball was taken as unsigned already).
        st, body = s.push("old", signed_rel, tsig=signed_rel + ".tsig",
                          order=("tarball", "tsig"))
        assert st == 400 and body["detail"]["field"] == "tsig", body
        # Unsigned still installs there (floor 0, signatures not required).
        doc = s.fleet.json("swarm", "update", "--host", "old", "--release", s.release("1.2.0"))
        assert doc["hosts"][0]["agent"]["result"] == "updated"
        assert s.health("old")["signature"] == "unsigned"
    finally:
        s.stop()


CRASH_STATUS = 86


def restart(s, name, env=None):
    p = s.fleet.procs[name]
    if p.alive():
        p.stop(timeout=20)
    return s.fleet.start(name, env=env)


@pytest.mark.parametrize("point", ["trust.keyring_written", "commit.done",
                                   "trust.floor_written"])
def test_crash_sweep_keyring_and_floor(signed, point):
    """Killed right after the keyring write, after the commit (before the floor
    write) or after the floor write: the restarted updater has the new keyring,
    and a floor that matches the release that committed."""
    s = signed
    s.enroll_start("web1")
    s.fleet.tandem("swarm", "update", "--host", "web1", "--release",
                   s.release("1.0.0", sv=1), check=0)
    install = s.install("web1")
    agent_pid = s.health("web1")["agent"]["pid"]
    restart(s, "web1", env={"TANDEM_TEST_CRASH_AT": point})
    if point == "trust.keyring_written":
        tandem(s.home, "release", "keyring", "rotate", "--root-key", s.keys.key("root1"),
               "--add", s.keys.pub("rel2"), check=0)
        s.fleet.tandem("swarm", "keyring", "push", "--host", "web1", check=1)
    else:
        s.fleet.tandem("swarm", "update", "--host", "web1", "--release",
                       s.release("1.1.0", sv=4, min_sv=4), check=1)
    rc = s.fleet.procs["web1"].wait(timeout=60)
    assert rc == CRASH_STATUS, "point %s not reached (exit %s)" % (point, rc)
    s.fleet.start("web1")
    h = s.health("web1")
    if point == "trust.keyring_written":
        assert h["keyring_version"] == 2
        assert open(os.path.join(install, "state", "keyring.json")).read() == \
            open(os.path.join(s.home, "keyring", "2.json")).read()
        assert h["security_floor"] == 0
    else:
        assert h["releases"][0]["version"] == "1.1.0"
        assert h["security_floor"] == 4
        assert json.load(open(os.path.join(install, "state", "floor.json")))["floor"] == 4
        assert h["agent"]["pid"] != agent_pid  # the new release's agent, adopted
    # Whatever the point, the host works on: a signed release installs.
    doc = s.fleet.json("swarm", "update", "--host", "web1", "--release",
                       s.release("1.2.0", sv=5, key="rel2" if point ==
                                 "trust.keyring_written" else "rel1"))
    assert doc["hosts"][0]["agent"]["result"] == "updated", doc


def test_unreadable_keyring_fails_closed(signed):
    s = signed
    s.enroll_start("web1")
    s.fleet.tandem("swarm", "update", "--host", "web1", "--release",
                   s.release("1.0.0", sv=1), check=0)
    s.fleet.procs["web1"].stop(timeout=20)
    with open(os.path.join(s.install("web1"), "state", "keyring.json"), "w") as f:
        f.write('{"v":1,"keyring":"')
    s.fleet.start("web1")
    h = s.health("web1")
    assert h["signature"] == "keyring_invalid" and "keyring.json" in h["signature_error"]
    # The agent runs (the test config stops it with the updater; it starts again);
    # every install is refused (503), so is a new keyring.
    wait_until(lambda: s.health("web1")["agent"]["state"] == "running", timeout=20,
               what="agent running")
    assert s.fleet.json("swarm", "status", "--host", "web1")["hosts"][0]["agent_version"] \
        == "1.0.0"
    good = s.release("1.1.0", sv=2)
    st, body = s.push("web1", good, tsig=good + ".tsig")
    assert st == 503 and body["detail"]["kind"] == "keyring_invalid", body
    st, body = s.curl("web1", "/keyring", "-X", "POST", "--data-binary",
                      "@" + os.path.join(s.home, "keyring", "1.json"))
    assert st == 503
    st = s.fleet.json("swarm", "status", "--host", "web1")["hosts"][0]
    assert st["signature"] == "keyring_invalid"
    doc = s.fleet.json("swarm", "update", "--host", "web1", "--dry-run", "--release", good)
    assert doc["hosts"][0]["signature_ok"] is False


def test_update_self_needs_a_signature(signed):
    s = signed
    s.enroll_start("selfie", launcher=["--probation-deadline", "10000",
                                       "--probation-stable", "1000", "--max-starts", "2"])
    proc = s.fleet.procs["selfie"]
    tree = os.path.join(s.install("selfie"), "updater")
    updater_before = s.health("selfie")["updater"]
    starts = proc.stdout().count("UPDATER pid=")
    before = tree_state(tree) if os.path.isdir(tree) else {}

    # Unsigned, and signed by a key the keyring does not list: refused; the running
    # updater is the same process, its tree unchanged.
    unsigned = s.release("2.0.0")
    st, body = s.push("selfie", unsigned, path="/update-self")
    assert st == 422 and body["detail"]["kind"] == "signature_invalid", body
    wrong = s.release("2.0.0", sv=1, key="rel2")
    st, body = s.push("selfie", wrong, tsig=wrong + ".tsig", path="/update-self")
    assert st == 422 and body["detail"]["kind"] == "unknown_key", body
    assert s.health("selfie")["updater"] == updater_before
    assert proc.stdout().count("UPDATER pid=") == starts
    assert (tree_state(tree) if os.path.isdir(tree) else {}) == before

    # Signed by the release key: the agent and then the updater are replaced.
    good = s.release("2.0.0", sv=1)
    doc = s.fleet.json("swarm", "update", "--host", "selfie", "--release", good,
                       "--include-self")
    h = doc["hosts"][0]
    assert h["agent"]["result"] == "updated" and h["self"]["result"] == "updated", h
    assert doc["release"]["signed"] is True
    assert s.fleet.json("swarm", "status", "--host", "selfie")["hosts"][0][
        "updater_version"] == "2.0.0"
