"""End-to-end tests of signed releases: `tandem release keygen|sign|verify|keyring`
run as an operator would, signatures checked against the stock openssl CLI in
both directions, and keyring rotation on the master."""

import base64
import hashlib
import json
import os
import stat
import subprocess

import pytest

from conftest import run
from swarm_util import make_release, tandem, tandem_json


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
