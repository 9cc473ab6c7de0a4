"""End-to-end tests of planned (delta) pushes on the updater: POST
/update/plan and POST /update with mode=delta, driven with curl and delta
tarballs built here by hand (the master's side has its own tests). Releases
are `make release` trees with shared extra files, re-packed by `tandem
release pack` so they carry files.json."""

import gzip
import hashlib
import io
import json
import os
import tarfile

import pytest

from conftest import bin_path, run
from release_util import Releases, sha256_file, tree_listing
from test_updater import (CRASH_STATUS, Host, assert_clean_exit, check_recovered, curl_rc,
                          host)  # noqa: F401 (the fixture)
from worker_util import curl_run


def repack(base_tgz, tree, tgz, big, doc, copy=False):
    """BASE_TGZ unpacked into TREE (a new directory) with a shared library BIG
    (bytes) and its symlink, docs (NOTES = DOC, SAME; with COPY also
    NOTES.copy = DOC), packed by `tandem release pack` into TGZ.
    Returns (TGZ, its files.json bytes)."""
    tree.mkdir()
    run(["tar", "-xzf", base_tgz, "-C", str(tree)])
    os.remove(str(tree / "files.json"))
    (tree / "lib").mkdir()
    (tree / "lib" / "libbig.so.1").write_bytes(big)
    os.symlink("libbig.so.1", str(tree / "lib" / "libbig.so"))
    (tree / "share" / "doc").mkdir(parents=True)
    (tree / "share" / "doc" / "NOTES").write_text(doc)
    (tree / "share" / "doc" / "SAME").write_text("same in both\n")
    if copy:
        (tree / "share" / "doc" / "NOTES.copy").write_text(doc)
    r = run([bin_path("tandem"), "release", "pack", str(tree), "-o", tgz])
    assert r.returncode == 0, r.stderr
    return tgz, run(["tar", "-xOzf", tgz, "files.json"]).stdout.encode()


@pytest.fixture(scope="module")
def rels(build_dir, tmp_path_factory):
    """R1 and R2: agent releases 1.0.0 and 2.0.0 sharing a 1 MiB library, a
    symlink and docs; R2 also changes one doc and adds a duplicate-content
    file. {name: (tarball, files.json bytes)}."""
    base = Releases(build_dir, str(tmp_path_factory.mktemp("base")))
    out = tmp_path_factory.mktemp("delta-rels")
    big = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB, the same in both
    rels = {name: repack(base.get(version), out / name, str(out / (name + ".tar.gz")), big, doc,
                         copy=name == "r2")
            for name, version, doc in (("r1", "1.0.0", "one\n"), ("r2", "2.0.0", "two\n"))}
    # R3: R1 with a few bytes of the library changed (what a zstd patch carries).
    rels["r3"] = repack(base.get("1.0.0"), out / "r3", str(out / "r3.tar.gz"), big3(big), "one\n")
    return rels


def big3(big):
    """BIG with two short runs changed: the same file, a new digest."""
    b = bytearray(big)
    b[1000:1016] = b"changed-in-r3..."
    b[700000:700008] = b"r3-again"
    return bytes(b)


def plan(host, body, content_type="application/json", who=None, route="/update/plan",
         encoding=None):
    extra = ["-H", "Content-Encoding: " + encoding] if encoding else []
    r = curl_run(host.url(route), host.pki.ca_crt, who or host.pki.master,
                 "-H", "Content-Type: " + content_type, *extra, "--data-binary", "@-",
                 input=body)
    assert r.rc == 0, r.stderr
    return r.status, r.json()


def tar_bytes(members):
    """A tar.gz of MEMBERS: (name, bytes) for files, (name, "->target") for symlinks.
    Gzip level 1 (the updater unpacks the same members at any level; level 9 of the
    binaries of an ASan release costs about a second of CPU per delta)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as t:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            if isinstance(data, str) and data.startswith("->"):
                ti.type, ti.linkname = tarfile.SYMTYPE, data[2:]
                t.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o644
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def full_members(tgz):
    """{path: bytes} of the regular files of the release tarball TGZ."""
    out = {}
    with tarfile.open(tgz, "r:gz") as t:
        for m in t.getmembers():
            if m.isfile():
                out[m.name] = t.extractfile(m).read()
    return out


def delta_of(rel, missing):
    """The members of a delta of REL (tarball, files.json) sending the files
    whose digest is in MISSING: files.json first, then those files."""
    tgz, fj = rel
    files = full_members(tgz)
    doc = json.loads(fj)
    members = [("files.json", fj)]
    for e in doc["files"]:
        if e["type"] == "file" and e["sha256"] in missing:
            members.append((e["path"], files[e["path"]]))
    return members


def push_delta(host, tmp_path, rel, data, mode="delta", name="delta.tar.gz"):
    path = str(tmp_path / name)
    with open(path, "wb") as f:
        f.write(data)
    r = curl_run(host.url("/update"), host.pki.ca_crt, host.pki.master,
                 "-F", "sha=delta", "-F", "sha256=" + sha256_file(rel[0]), "-F", "mode=" + mode,
                 "-F", "tarball=@%s;type=application/gzip" % path)
    assert r.rc == 0, r.stderr
    return r.status, r.json()


def active_listing(host):
    return tree_listing(os.path.join(host.root, "releases", "active"), skip=("release.json",))


def test_plan_then_delta_is_a_full_install(host, rels, procs, tmp_path, pki):
    r1, r2 = rels["r1"], rels["r2"]
    st, body = plan(host, r2[1])
    assert st == 200, body
    # Nothing installed yet: every content is missing.
    regular = [e for e in json.loads(r2[1])["files"] if e["type"] == "file"]
    assert body["base"] == "" and body["reuse_files"] == 0
    assert body["missing_files"] == len(regular)
    assert body["missing_bytes"] == sum(e["size"] for e in regular)
    assert sorted(body["missing"]) == sorted({e["sha256"] for e in regular})

    st, _, b = host.push(r1[0])
    assert st == 200, b
    st, body = plan(host, r2[1])
    assert st == 200, body
    assert body["base"] == host.slots()["active"]
    r1_digests = {e["sha256"] for e in json.loads(r1[1])["files"] if e["type"] == "file"}
    want_missing = {e["sha256"] for e in regular if e["sha256"] not in r1_digests}
    assert set(body["missing"]) == want_missing and len(body["missing"]) == len(want_missing)
    reused = [e for e in regular if e["sha256"] in r1_digests]
    assert body["reuse_files"] == len(reused) and body["reuse_bytes"] == sum(e["size"] for e in reused)
    assert body["missing_files"] + body["reuse_files"] == len(regular)
    # The 1 MiB library is reused: the plan is much smaller than the release.
    assert body["reuse_bytes"] > 1 << 20

    st, b = push_delta(host, tmp_path, r2, tar_bytes(delta_of(r2, set(body["missing"]))))
    assert st == 200, b
    assert b["release"]["sha256"] == sha256_file(r2[0]) and b["release"]["version"] == "2.0.0"
    host.wait_agent("2.0.0")
    assert host.history()[-1]["sha256"] == sha256_file(r2[0])
    host.assert_clean()

    # A second host installs R2 whole: the two trees are the same, file by file.
    (tmp_path / "other").mkdir()
    other = Host(procs, tmp_path / "other", pki, name="other")
    try:
        st, _, b = other.push(r2[0])
        assert st == 200, b
        assert active_listing(host) == active_listing(other)
        with open(os.path.join(host.root, "releases", "active", "files.json"), "rb") as f:
            assert f.read() == r2[1]
    finally:
        assert_clean_exit(other.proc)

    # Pushing it again as a delta: already active, nothing assembled.
    st, b = push_delta(host, tmp_path, r2, tar_bytes([("files.json", r2[1])]))
    assert st == 200 and b["status"] == "already_active", b


def test_plan_refusals(host, rels, pki):
    r2 = rels["r2"]
    for bad in (b"", b"{}", b"not json", b'{"v":1,"files":[]}', r2[1] + b"x",
                r2[1].replace(b'"v":1', b'"v":2')):
        st, body = plan(host, bad)
        assert st == 400, (bad[:40], body)
        assert body["detail"]["kind"] == "bad_request", body
    st, body = plan(host, r2[1], content_type="text/plain")
    assert st == 400, body
    # Roles: the agent's certificate may not ask.
    st, body = plan(host, r2[1], who=pki.agent)
    assert st == 403, body
    # GET is not the route.
    r = curl_run(host.url("/update/plan"), pki.ca_crt, pki.master)
    assert r.status in (404, 405), r.body


def test_plan_body_gzip(host, rels):
    """A plan request may come gzip-compressed (the master sends it so to updaters
    listing plan_gzip): the same answer; a body that is not what it says is a 4xx."""
    r1, r2 = rels["r1"], rels["r2"]
    st, _, b = host.push(r1[0])
    assert st == 200, b
    st, health = host.get("/health")
    assert "plan_gzip" in health["features"], health
    st, plain = plan(host, r2[1])
    assert st == 200, plain
    packed = gzip.compress(r2[1])
    assert len(packed) * 2 < len(r2[1])
    for enc in ("gzip", "GZIP"):
        st, body = plan(host, packed, encoding=enc)
        assert st == 200 and body == plain, body
    st, body = plan(host, r2[1], encoding="identity")
    assert st == 200 and body == plain, body
    # Refused with a clear 400: not gzip, cut short, corrupt, gzip of no files.json,
    # an encoding it does not take.
    corrupt = bytearray(packed)
    corrupt[len(corrupt) // 2] ^= 0xff
    cases = ((r2[1], "gzip", "not gzip"), (packed[:len(packed) // 2], "gzip", "gzip"),
             (bytes(corrupt), "gzip", "gzip"), (gzip.compress(b"{}"), "gzip", "plan"),
             (packed, "br", "Content-Encoding br"), (packed, "gzip, gzip", "Content-Encoding"))
    for bad, enc, words in cases:
        st, body = plan(host, bad, encoding=enc)
        assert st == 400, (enc, bad[:20], body)
        assert body["detail"]["kind"] == "bad_request" and words in body["detail"]["error"], body
    # Small on the wire, over the limit once inflated: 413, nothing kept.
    bomb = gzip.compress(b" " * (33 << 20))
    assert len(bomb) < 1 << 20
    st, body = plan(host, bomb, encoding="gzip")
    assert st == 413 and body["detail"]["kind"] == "too_large", body
    st, body = plan(host, packed, encoding="gzip")
    assert st == 200 and body == plain, body


def test_tampered_active_file_is_a_mismatch(host, rels, tmp_path):
    r1, r2 = rels["r1"], rels["r2"]
    st, _, b = host.push(r1[0])
    assert st == 200, b
    st, plan_body = plan(host, r2[1])
    assert st == 200
    lib = os.path.join(host.root, "releases", "active", "lib", "libbig.so.1")
    with open(lib, "r+b") as f:
        f.write(b"X")
    before = host.snapshot()
    st, b = push_delta(host, tmp_path, r2, tar_bytes(delta_of(r2, set(plan_body["missing"]))))
    assert st == 409, b
    assert b["detail"]["kind"] == "delta_mismatch", b
    assert "lib/libbig.so.1" in b["detail"]["error"], b
    assert host.snapshot() == before
    host.assert_clean()
    host.wait_agent("1.0.0")
    # The full push (the master's fallback) still works.
    st, _, b = host.push(r2[0])
    assert st == 200, b


def test_hostile_deltas_change_nothing(host, rels, tmp_path):
    r1, r2 = rels["r1"], rels["r2"]
    st, _, b = host.push(r1[0])
    assert st == 200, b
    st, p = plan(host, r2[1])
    good = delta_of(r2, set(p["missing"]))
    files = dict(good)
    some = next(n for n, _ in good if n.startswith("bin/"))
    many = json.loads(r2[1])
    many["files"] += [{"path": "zz%04d" % i, "type": "dir", "mode": "0755"} for i in range(300)]
    many = json.dumps(many, separators=(",", ":")).encode()
    cases = [
        ("dotdot", [("../evil", b"x")] + good, 422, "unsafe_archive"),
        ("abs-symlink", good + [("share/esc", "->/etc/passwd")], 422, "unsafe_archive"),
        ("symlink", good + [("share/doc/link", "->NOTES")], 409, "delta_mismatch"),
        ("not-listed", good + [("share/doc/extra", b"x")], 409, "delta_mismatch"),
        ("wrong-digest", [(n, d + b"!" if n == some else d) for n, d in good], 409,
         "delta_mismatch"),
        ("duplicate", good + [(some, files[some] + b"!")], 409, "delta_mismatch"),
        ("missing-file", [(n, d) for n, d in good if n != some], 409, "delta_mismatch"),
        ("no-files-json", [(n, d) for n, d in good if n != "files.json"], 409, "delta_mismatch"),
        ("bad-files-json", [("files.json", b"{}")] + good[1:], 409, "delta_mismatch"),
        ("file-over-dir", good + [("lib", b"x")], 409, "delta_mismatch"),
        ("huge-entry-count", [("files.json", many)] + good[1:], 422, "limit_exceeded"),
    ]
    before = host.snapshot()
    for name, members, status, kind in cases:
        st, b = push_delta(host, tmp_path, r2, tar_bytes(members), name=name + ".tar.gz")
        assert st == status, (name, st, b)
        assert b["detail"]["kind"] == kind, (name, b)
        assert host.snapshot() == before, name
        host.assert_clean()
    # A mode the updater does not know.
    st, b = push_delta(host, tmp_path, r2, tar_bytes(good), mode="patch")
    assert st == 400 and b["detail"]["kind"] == "bad_request", b
    assert host.snapshot() == before
    host.wait_agent("1.0.0")


def test_crash_while_assembling_recovers(host, rels, tmp_path):
    r1, r2 = rels["r1"], rels["r2"]
    st, _, b = host.push(r1[0])
    assert st == 200, b
    st, p = plan(host, r2[1])
    path = str(tmp_path / "crash-delta.tar.gz")
    with open(path, "wb") as f:
        f.write(tar_bytes(delta_of(r2, set(p["missing"]))))
    host.proc.stop(timeout=20)
    host.start(env={"TANDEM_TEST_CRASH_AT": "delta.assembled"})
    curl_rc(host.pki, host.url("/update"), "-F", "sha256=" + sha256_file(r2[0]),
            "-F", "mode=delta", "-F", "tarball=@" + path)
    rc = host.proc.wait(timeout=60)
    assert rc == CRASH_STATUS, host.proc.stderr()[-3000:]
    host.start()
    check_recovered(host, sha256_file(r1[0]), None, "delta.assembled")
    # And the next delta works.
    st, b = push_delta(host, tmp_path, r2, open(path, "rb").read())
    assert st == 200, b


def patch_delta(rel, missing, patched, base_bytes, tmp_path, patch=None, name=None):
    """The members of a delta of REL sending MISSING, the file PATCHED (a path)
    as a zstd patch against BASE_BYTES (made by the zstd CLI, or PATCH) at
    .tandem-patches/TARGET-BASE.zst (or NAME)."""
    tgz, fj = rel
    files = full_members(tgz)
    target = files[patched]
    t, b = hashlib.sha256(target).hexdigest(), hashlib.sha256(base_bytes).hexdigest()
    if patch is None:
        (tmp_path / "p-base").write_bytes(base_bytes)
        (tmp_path / "p-target").write_bytes(target)
        r = run(["zstd", "-q", "-f", "--patch-from=" + str(tmp_path / "p-base"),
                 str(tmp_path / "p-target"), "-o", str(tmp_path / "p.zst")])
        assert r.returncode == 0, r.stderr
        patch = (tmp_path / "p.zst").read_bytes()
    members = [(n, d) for n, d in delta_of(rel, missing) if n != patched]
    members.append((".tandem-patches/" + (name or "%s-%s.zst" % (t, b)), patch))
    return members, patch


def test_zstd_patch_against_the_active_file(host, rels, tmp_path):
    """An updater listing zstd_patch names, when asked (?bases=1), the file it has at
    each missing file's path; a delta may carry that file as a zstd patch against it:
    the install is the release, file by file. A corrupt patch, a base the host does
    not have or changed, a stray name: 409 delta_mismatch, nothing changed."""
    r1, r3 = rels["r1"], rels["r3"]
    st, _, b = host.push(r1[0])
    assert st == 200, b
    st, health = host.get("/health")
    assert "zstd_patch" in health["features"], health
    lib = "lib/libbig.so.1"
    old = full_members(r1[0])[lib]
    new = full_members(r3[0])[lib]
    st, p = plan(host, r3[1], route="/update/plan?bases=1")
    assert st == 200, p
    t, b0 = hashlib.sha256(new).hexdigest(), hashlib.sha256(old).hexdigest()
    assert p["missing"] == [t] and p["bases"] == {t: b0}, p
    # Not asked (an older master): no bases.
    st, plain = plan(host, r3[1])
    assert st == 200 and "bases" not in plain, plain

    good, patch = patch_delta(r3, set(p["missing"]), lib, old, tmp_path)
    assert len(patch) * 100 < len(new)
    before = host.snapshot()
    # Corrupt: refused, the host unchanged.
    bad = bytearray(patch)
    bad[len(bad) // 2] ^= 0xff
    cases = [
        ("corrupt", patch_delta(r3, set(p["missing"]), lib, old, tmp_path, patch=bytes(bad))[0],
         lib),
        ("truncated", patch_delta(r3, set(p["missing"]), lib, old, tmp_path,
                                  patch=patch[:-5])[0], lib),
        ("unknown-base", patch_delta(r3, set(p["missing"]), lib, b"not on the host", tmp_path,
                                     patch=patch)[0], lib),
        ("stray-name", patch_delta(r3, set(p["missing"]), lib, old, tmp_path, patch=patch,
                                   name="x.zst")[0], ".tandem-patches"),
    ]
    for name, members, words in cases:
        st, b = push_delta(host, tmp_path, r3, tar_bytes(members), name=name + ".tar.gz")
        assert st == 409 and b["detail"]["kind"] == "delta_mismatch", (name, b)
        assert words in b["detail"]["error"], (name, b)
        assert host.snapshot() == before, name
        host.assert_clean()
    # The base changed on the host since its files.json said what it is: refused.
    active_lib = os.path.join(host.root, "releases", "active", lib)
    os.chmod(active_lib, 0o644)
    with open(active_lib, "r+b") as f:
        f.write(b"Y")
    st, b = push_delta(host, tmp_path, r3, tar_bytes(good), name="changed-base.tar.gz")
    assert st == 409 and b["detail"]["kind"] == "delta_mismatch", b
    assert "base of its patch" in b["detail"]["error"], b
    host.assert_clean()
    with open(active_lib, "r+b") as f:
        f.write(old[:1])
    # The good one installs R3, exactly (no patch left in the tree).
    st, b = push_delta(host, tmp_path, r3, tar_bytes(good))
    assert st == 200, b
    assert b["release"]["sha256"] == sha256_file(r3[0])
    assert active_listing(host) == json.loads(r3[1])["files"]
    with open(os.path.join(host.root, "releases", "active", lib), "rb") as f:
        assert f.read() == new
    with open(os.path.join(host.root, "releases", "active", "files.json"), "rb") as f:
        assert f.read() == r3[1]
    host.assert_clean()
