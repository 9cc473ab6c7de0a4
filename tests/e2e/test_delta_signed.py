"""Planned (delta) pushes of signed releases, driven by our CLI against real
updaters that require signatures: the signature covers the full release and
its files.json (manifest_sha256), never the delta. A delta whose files.json
is not the signed one is refused; the master's fallback to the full release
ends with the genuine release installed, or with a clear refusal. The same
for self-updates (--include-self) under tandem-launcher."""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from release_util import Releases, sha256_file, tree_listing
from test_delta import repack, tar_bytes
from test_signing import Signed, no_staging, tree_state

pytestmark = pytest.mark.xdist_group("delta_signed")

LAUNCHER = ["--probation-deadline", "10000", "--probation-stable", "300", "--max-starts", "2"]


@pytest.fixture(scope="module")
def rels(build_dir, tmp_path_factory):
    """R1, R2, R3: releases 1.0.0, 2.0.0 and 3.0.0 (agent and updater) sharing a
    1 MiB incompressible library, so a new version's delta (its binaries and a
    note) is clearly smaller than the tarball. {name: (tarball, files.json)}."""
    base = Releases(build_dir, str(tmp_path_factory.mktemp("base")))
    out = tmp_path_factory.mktemp("signed-delta-rels")
    big = b"".join(hashlib.sha256(b"signed%d" % i).digest() for i in range(1 << 15))
    return {name: repack(base.get(version), out / name, str(out / (name + ".tar.gz")), big,
                         "note of %s\n" % version)
            for name, version in (("r1", "1.0.0"), ("r2", "2.0.0"), ("r3", "3.0.0"))}


@pytest.fixture
def s(tmp_path, build_dir):
    rel_dir = tmp_path / "made"
    rel_dir.mkdir()
    x = Signed(tmp_path, str(rel_dir), build_dir)
    yield x
    x.stop()


def signed_copy(s, rel, name, sv=1, key="rel1"):
    """A copy of REL's tarball as NAME under the test's directory, signed with
    KEY (security version SV); unsigned when KEY is None."""
    dst = str(s.tmp / name)
    shutil.copyfile(rel[0], dst)
    if key is not None:
        s.fleet.tandem("release", "sign", dst, "--key", s.keys.key(key), "--security-version",
                       str(sv), check=0)
    return dst


def statement_of(tsig):
    with open(tsig) as f:
        doc = json.load(f)
    return doc, base64.b64decode(doc["statement"])


def resign(s, tsig, statement, key="rel1"):
    """TSIG rewritten to carry STATEMENT (bytes) signed by KEY with stock openssl."""
    stmt = str(s.tmp / "statement")
    sig = str(s.tmp / "statement.sig")
    with open(stmt, "wb") as f:
        f.write(statement)
    subprocess.run(["openssl", "dgst", "-sha256", "-sign", s.keys.key(key), "-out", sig, stmt],
                   check=True, capture_output=True)
    doc, _ = statement_of(tsig)
    with open(sig, "rb") as f:
        doc["statement"] = base64.b64encode(statement).decode()
        doc["signatures"] = [{"keyid": s.keys.ids[key], "alg": "ecdsa-p256-sha256",
                              "sig": base64.b64encode(f.read()).decode()}]
    with open(tsig, "w") as f:
        json.dump(doc, f)


def log_text(s, name):
    p = s.fleet.procs[name]
    text = p.stdout() + p.stderr()
    upd = os.path.join(s.install(name), "state", "updater.log")
    if os.path.exists(upd):
        with open(upd, errors="replace") as f:
            text += f.read()
    return text


def active_listing(root):
    return tree_listing(os.path.join(root, "releases", "active"), skip=("release.json",))


def release_json(root):
    with open(os.path.join(root, "releases", "active", "release.json")) as f:
        return json.load(f)


def push_delta_by_hand(s, name, rel, members, tsig=None, path="/update", fname="d.tar.gz"):
    """POST PATH mode=delta with a delta tarball of MEMBERS, the form's sha256 the
    full release's (REL), TSIG (a file) before the tarball when given."""
    tgz = str(s.tmp / fname)
    with open(tgz, "wb") as f:
        f.write(tar_bytes(members))
    args = ["-F", "sha=by-hand", "-F", "sha256=" + sha256_file(rel[0]), "-F", "mode=delta"]
    if path == "/update-self":
        args += ["-F", "confirm_self=true"]
    if tsig is not None:
        args += ["-F", "tsig=<%s" % tsig]
    args += ["-F", "tarball=@%s;type=application/gzip" % tgz]
    return s.curl(name, path, *args)


def forged_files(rel, path, data):
    """REL's files.json with PATH's entry describing DATA instead: (bytes, members of
    a delta holding that files.json and DATA)."""
    doc = json.loads(rel[1])
    for e in doc["files"]:
        if e["path"] == path:
            e["sha256"] = hashlib.sha256(data).hexdigest()
            e["size"] = len(data)
    fj = json.dumps(doc, separators=(",", ":")).encode()
    return fj, [("files.json", fj), (path, data)]


def without_library(rel_path, sent):
    """SENT bytes (a planned push of REL_PATH) are the release but its 1 MiB shared
    library, give or take files.json and the form: what the host lacks."""
    return sent < os.path.getsize(rel_path) - (1 << 20) + (16 << 10)


def update(s, *args, check=0):
    r = s.fleet.tandem("swarm", "update", *args, "--json", check=check)
    return json.loads(r.stdout), r.stderr


def test_signed_planned_push_is_the_full_install(s, rels):
    """A signed release goes as a delta; the host holds the assembled files.json to the
    signed manifest_sha256 and installs the release a full push installs, signature
    records and all."""
    s.enroll_start("web1")
    s.enroll_start("ref")
    r1 = signed_copy(s, rels["r1"], "r1.tar.gz")
    r2 = signed_copy(s, rels["r2"], "r2.tar.gz")
    doc, _ = update(s, "--all", "--release", r1, "--canary", "0", "--waves", "100%")
    assert doc["ok"] is True and doc["release"]["signed"] is True, doc
    # The reference host gets 2.0.0 whole, web1 as a delta.
    doc, err = update(s, "--host", "ref", "--release", r2, "--full")
    assert doc["hosts"][0]["transfer"] == "full", doc
    assert ": assembled from a delta of" not in log_text(s, "ref")
    doc, err = update(s, "--host", "web1", "--release", r2)
    row = doc["hosts"][0]
    assert row["agent"]["result"] == "updated" and doc["release"]["signed"] is True, doc
    assert row["transfer"] == "planned" and without_library(r2, row["bytes_sent"]), row
    assert "web1: planned push" in err, err
    assert ": assembled from a delta of" in log_text(s, "web1")
    # The two trees are the same file by file, files.json included, and both record
    # the same signature; the delta's digest is nowhere: the release's is.
    assert active_listing(s.install("web1")) == active_listing(s.install("ref"))
    with open(os.path.join(s.install("web1"), "releases", "active", "files.json"), "rb") as f:
        fj = f.read()
    _, stmt = statement_of(r2 + ".tsig")
    assert json.loads(stmt)["manifest_sha256"] == hashlib.sha256(fj).hexdigest()
    a, b = release_json(s.install("web1")), release_json(s.install("ref"))
    for k in ("sha256", "version", "security_version", "signed_by"):
        assert a[k] == b[k], (k, a, b)
    assert a["sha256"] == sha256_file(r2) and a["signed_by"] == s.keys.ids["rel1"]
    hist = s.curl("web1", "/history")[1]["history"]
    assert hist[-1]["result"] == "updated" and hist[-1]["sha256"] == sha256_file(r2), hist[-1]


def test_forged_delta_is_refused(s, rels):
    """Deltas the signature does not cover, sent by hand with the genuine signature:
    a files.json describing other bytes (consistent with them), a received file that
    is not files.json's, no signature at all. Each refused, the host unchanged."""
    s.enroll_start("web1")
    r1 = signed_copy(s, rels["r1"], "r1.tar.gz")
    r2 = signed_copy(s, rels["r2"], "r2.tar.gz")
    update(s, "--host", "web1", "--release", r1)
    install = s.install("web1")
    before = tree_state(install)
    evil = b"#!/bin/sh\necho owned\n"
    fj, members = forged_files(rels["r2"], "share/doc/NOTES", evil)
    # Everything else of the delta is genuine: the files r1 lacks.
    have = {e["sha256"] for e in json.loads(rels["r1"][1])["files"] if e["type"] == "file"}
    genuine = [m for m in json.loads(rels["r2"][1])["files"]
               if m["type"] == "file" and m["sha256"] not in have and
               m["path"] != "share/doc/NOTES"]
    with tarfile.open(rels["r2"][0]) as t:
        extra = [(m["path"], t.extractfile(m["path"]).read()) for m in genuine]
    st, body = push_delta_by_hand(s, "web1", rels["r2"], members + extra, tsig=r2 + ".tsig")
    assert st == 409 and body["detail"]["kind"] == "delta_mismatch", body
    assert "manifest_sha256" in body["detail"]["error"], body
    assert tree_state(install) == before and no_staging(install)
    # The genuine files.json with a file that is not its own.
    st, body = push_delta_by_hand(s, "web1", rels["r2"],
                                  [("files.json", rels["r2"][1]), ("share/doc/NOTES", evil)] +
                                  extra, tsig=r2 + ".tsig")
    assert st == 409 and body["detail"]["kind"] == "delta_mismatch", body
    assert "share/doc/NOTES" in body["detail"]["error"], body
    assert tree_state(install) == before and no_staging(install)
    # No signature: refused before anything is staged.
    st, body = push_delta_by_hand(s, "web1", rels["r2"], [("files.json", fj)] + extra)
    assert st == 422 and body["detail"]["kind"] == "signature_invalid", body
    assert tree_state(install) == before and no_staging(install)
    kinds = [e["error_kind"] for e in s.curl("web1", "/history")[1]["history"]
             if e["result"] == "refused"]
    assert kinds == ["delta_mismatch", "delta_mismatch", "signature_invalid"], kinds
    assert ": assembled from a delta of" not in log_text(s, "web1")

    # Through the CLI: an unsigned planned push to this host is refused whole (422, no
    # fallback: a full push would be refused the same way), nothing changed.
    unsigned = signed_copy(s, rels["r2"], "r2-unsigned.tar.gz", key=None)
    doc, err = update(s, "--host", "web1", "--release", unsigned, check=1)
    row = doc["hosts"][0]
    assert row["agent"]["result"] == "failed" and row["agent"]["http_status"] == 422, row
    assert doc["release"]["signed"] is False
    assert row["transfer"] == "planned" and without_library(unsigned, row["bytes_sent"]), row
    assert "sending the full release" not in err, err
    assert tree_state(install) == before and no_staging(install)


def test_fallback_ends_with_the_genuine_release(s, rels):
    """The host's local copy changed: it refuses the signed delta (409), the master sends
    the signed tarball whole, and the host runs the genuine release, checked against the
    signature. A statement without manifest_sha256 cannot vouch for a delta at all: that
    release goes whole from the start."""
    s.enroll_start("web1")
    r1 = signed_copy(s, rels["r1"], "r1.tar.gz")
    update(s, "--host", "web1", "--release", r1)
    install = s.install("web1")
    lib = os.path.join(install, "releases", "active", "lib", "libbig.so.1")
    os.chmod(lib, 0o644)
    with open(lib, "r+b") as f:
        f.write(b"X")
    r2 = signed_copy(s, rels["r2"], "r2.tar.gz")
    doc, err = update(s, "--host", "web1", "--release", r2)
    row = doc["hosts"][0]
    assert row["agent"]["result"] == "updated" and row["transfer"] == "fallback", (row, err)
    assert "planned push refused" in err and "lib/libbig.so.1" in err, err
    assert row["bytes_sent"] > os.path.getsize(r2)
    assert tree_listing_of(rels["r2"], install), "the genuine release, file by file"
    rec = release_json(install)
    assert rec["sha256"] == sha256_file(r2) and rec["signed_by"] == s.keys.ids["rel1"], rec

    # Signed without manifest_sha256 (as by an older signer): only a full push can be
    # checked there, so the master sends it whole at once, and its dry run says so.
    r3 = signed_copy(s, rels["r3"], "r3.tar.gz")
    _, stmt = statement_of(r3 + ".tsig")
    m = json.loads(stmt)["manifest_sha256"]
    old = stmt.replace(b'"manifest_sha256":"%s"' % m.encode(), b'"manifest_sha256":null')
    assert old != stmt
    resign(s, r3 + ".tsig", old)
    s.fleet.tandem("release", "verify", r3, check=0)
    dry, _ = update(s, "--host", "web1", "--release", r3, "--dry-run")
    assert dry["hosts"][0]["transfer"] == "full", dry
    assert dry["hosts"][0]["bytes"] == os.path.getsize(r3), dry
    doc, err = update(s, "--host", "web1", "--release", r3)
    row = doc["hosts"][0]
    assert row["agent"]["result"] == "updated" and row["transfer"] == "full", (row, err)
    assert row["bytes_sent"] == os.path.getsize(r3), row
    assert "no manifest_sha256" in err, err
    assert tree_listing_of(rels["r3"], install)
    assert release_json(install)["sha256"] == sha256_file(r3)
    # The one refused delta is the one of the changed copy.
    refused = [e for e in s.curl("web1", "/history")[1]["history"] if e["result"] == "refused"]
    assert [e["error_kind"] for e in refused] == ["delta_mismatch"], refused
    assert log_text(s, "web1").count(": assembled from a delta of") == 0


def tree_listing_of(rel, root):
    """ROOT's active release is REL's tree: files.json's entries, and files.json itself."""
    with open(os.path.join(root, "releases", "active", "files.json"), "rb") as f:
        if f.read() != rel[1]:
            return False
    return active_listing(root) == sorted(json.loads(rel[1])["files"],
                                          key=lambda e: e["path"].encode())


def wait_updater(s, name, version):
    return s.fleet.wait_updater(name, version, 40)


def test_signed_planned_self_update(s, rels):
    """--include-self with signed releases on a host that requires them: the updater's
    own release goes as a delta too; a forged or unsigned self delta is refused with the
    updater untouched; a changed local copy makes the master send it whole."""
    s.enroll_start("selfie", launcher=LAUNCHER)
    proc = s.fleet.procs["selfie"]
    tree = os.path.join(s.install("selfie"), "updater")
    r1 = signed_copy(s, rels["r1"], "r1.tar.gz")
    doc, _ = update(s, "--host", "selfie", "--release", r1, "--include-self")
    h = doc["hosts"][0]
    assert h["self"]["result"] == "updated" and h["self"]["transfer"] == "full", h
    wait_updater(s, "selfie", "1.0.0")

    # Forged and unsigned self deltas, by hand: refused, the same updater process.
    r2 = signed_copy(s, rels["r2"], "r2.tar.gz")
    starts = proc.stdout().count("UPDATER pid=")
    before = tree_state(tree)
    fj, members = forged_files(rels["r2"], "share/doc/NOTES", b"forged\n")
    st, body = push_delta_by_hand(s, "selfie", rels["r2"], members, tsig=r2 + ".tsig",
                                  path="/update-self")
    assert st == 409 and body["detail"]["kind"] == "delta_mismatch", body
    assert "manifest_sha256" in body["detail"]["error"], body
    st, body = push_delta_by_hand(s, "selfie", rels["r2"], members, path="/update-self")
    assert st == 422 and body["detail"]["kind"] == "signature_invalid", body
    assert tree_state(tree) == before and no_staging(tree)
    assert proc.stdout().count("UPDATER pid=") == starts
    assert s.health("selfie")["updater"]["version"] == "1.0.0"

    # The genuine signed release: both the agent's and the updater's go as deltas.
    doc, err = update(s, "--host", "selfie", "--release", r2, "--include-self")
    h = doc["hosts"][0]
    assert h["agent"]["result"] == "updated" and h["self"]["result"] == "updated", (h, err)
    assert (h["transfer"], h["self"]["transfer"]) == ("planned", "planned"), h
    wait_updater(s, "selfie", "2.0.0")
    assert tree_listing_of(rels["r2"], tree)
    rec = release_json(tree)
    assert rec["sha256"] == sha256_file(r2) and rec["signed_by"] == s.keys.ids["rel1"], rec
    assert log_text(s, "selfie").count(": assembled from a delta of") == 2

    # A file of the updater's own release changed on the host: the self delta is
    # refused, the signed tarball goes whole and is what runs.
    for slot in ("active", "prev"):
        lib = os.path.join(tree, "releases", slot, "lib", "libbig.so.1")
        os.chmod(lib, 0o644)
        with open(lib, "r+b") as f:
            f.write(b"X")
    r3 = signed_copy(s, rels["r3"], "r3.tar.gz")
    doc, err = update(s, "--host", "selfie", "--release", r3, "--include-self")
    h = doc["hosts"][0]
    assert h["self"]["result"] == "updated", (h, err)
    assert (h["transfer"], h["self"]["transfer"]) == ("planned", "fallback"), h
    assert "planned self-update refused" in err, err
    wait_updater(s, "selfie", "3.0.0")
    assert tree_listing_of(rels["r3"], tree)
    assert release_json(tree)["signed_by"] == s.keys.ids["rel1"]
