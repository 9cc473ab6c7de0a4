"""End-to-end tests of planned (delta) self-updates: POST /update-self/plan
and POST /update-self with mode=delta on tandem-updater run by
tandem-launcher, driven with curl and delta tarballs built here by hand.
Updater releases are `make release` trees with a shared 1 MiB library added,
re-packed by `tandem release pack` so they carry files.json."""

import hashlib
import json
import os

import pytest

from conftest import wait_until
from release_util import Releases, sha256_file, tree_listing
from test_delta import delta_of, plan, repack, tar_bytes
from test_selfupdate import PROBATION_DEADLINE_MS, Host, self_update_history
from swarm_util import Fleet
from worker_util import curl_run

PROBATION_S = PROBATION_DEADLINE_MS / 1000 + 20


@pytest.fixture(scope="module")
def srels(build_dir, tmp_path_factory):
    """S1 and S2: updater releases 2.0 and 2.1 sharing a 1 MiB library and a
    doc; S2 changes another doc. {name: (tarball, files.json bytes)}."""
    base = Releases(build_dir, str(tmp_path_factory.mktemp("sbase")), test_hooks=True)
    out = tmp_path_factory.mktemp("delta-self-rels")
    # Incompressible: the delta of a new version (its binaries) is clearly smaller than the tarball.
    big = b"".join(hashlib.sha256(b"self%d" % i).digest() for i in range(1 << 15))
    return {name: repack(base.get(version), out / name, str(out / (name + ".tar.gz")), big, doc)
            for name, version, doc in (("s1", "2.0", "one\n"), ("s2", "2.1", "two\n"))}


def splan(host, body, content_type="application/json", who=None):
    return plan(host, body, content_type, who, route="/update-self/plan")


def push_self_delta(host, tmp_path, rel, data, name="self-delta.tar.gz", confirm="true",
                    mode="delta", check=True):
    path = str(tmp_path / name)
    with open(path, "wb") as f:
        f.write(data)
    args = ["-F", "sha=self-delta", "-F", "sha256=" + sha256_file(rel[0]), "-F", "mode=" + mode]
    if confirm is not None:
        args += ["-F", "confirm_self=" + confirm]
    args += ["-F", "tarball=@%s;type=application/gzip" % path]
    r = curl_run(host.url("/update-self"), host.pki.ca_crt, host.pki.master, *args)
    if check:
        assert r.rc == 0, r.stderr
    return r


def self_snapshot(host):
    """The updater's tree as a refused self-update must leave it."""
    rel = os.path.join(host.tree, "releases")
    return (tree_listing(rel) if os.path.isdir(rel) else None,
            os.readlink(os.path.join(host.tree, "current"))
            if os.path.lexists(os.path.join(host.tree, "current")) else None)


def active_listing(host):
    return tree_listing(os.path.join(host.tree, "releases", "active"), skip=("release.json",))


def test_self_delta_is_a_full_self_update(procs, tmp_path, pki, srels):
    s1, s2 = srels["s1"], srels["s2"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    h = Host(procs, tmp_path / "a", pki, stable_ms=300)
    other = Host(procs, tmp_path / "b", pki, stable_ms=300)
    try:
        # No release of its own yet: every content is missing, no base.
        st, body = splan(h, s1[1])
        assert st == 200, body
        regular = [e for e in json.loads(s1[1])["files"] if e["type"] == "file"]
        assert body["base"] == "" and body["reuse_files"] == 0
        assert body["missing_files"] == len(regular)
        # The agent's tree does not count: /update/plan and /update-self/plan differ.
        st, _, b = h.push(s1[0])
        assert st == 200, b
        st, body = splan(h, s1[1])
        assert st == 200 and body["reuse_files"] == 0, body

        # The reference: the other host self-updates to S2 whole, meanwhile.
        st, _, b = other.push_self(s2[0])
        assert st == 200, b
        st, _, b = h.push_self(s1[0])
        assert st == 200, b
        h.wait_updater("2.0", "committed", timeout=PROBATION_S)
        other.wait_updater("2.1", "committed", timeout=PROBATION_S)

        st, body = splan(h, s2[1])
        assert st == 200, body
        assert body["base"] == h.tree_state()["active"]
        s1_digests = {e["sha256"] for e in json.loads(s1[1])["files"] if e["type"] == "file"}
        s2_regular = [e for e in json.loads(s2[1])["files"] if e["type"] == "file"]
        want = {e["sha256"] for e in s2_regular if e["sha256"] not in s1_digests}
        assert set(body["missing"]) == want and len(body["missing"]) == len(want)
        assert body["reuse_bytes"] > 1 << 20

        r = push_self_delta(h, tmp_path, s2, tar_bytes(delta_of(s2, want)))
        assert r.status == 200, r.body
        b = r.json()
        assert b["status"] == "self_update_queued" and b["to_version"] == "2.1", b
        hh = h.wait_updater("2.1", "committed", timeout=PROBATION_S)
        assert hh["updater"]["release"]["sha256"] == sha256_file(s2[0])
        assert self_update_history(h)[-1]["sha256"] == sha256_file(s2[0])
        # File by file the same tree as the full self-update's, files.json included.
        assert active_listing(h) == active_listing(other)
        for x in (h, other):
            with open(os.path.join(x.tree, "releases", "active", "files.json"), "rb") as f:
                assert f.read() == s2[1]
        # The rollback point is the full S1.
        assert h.tree_state().keys() == {"active", "prev"}
        h.assert_tree_clean()
        # The new updater runs from the assembled release.
        exe = os.readlink("/proc/%d/exe" % h.updater_pids()[-1])
        assert exe.startswith(os.path.realpath(h.tree) + "/releases/active/"), exe
    finally:
        h.close()
        other.close()


def test_self_delta_refusals_change_nothing(procs, tmp_path, pki, srels):
    s1, s2 = srels["s1"], srels["s2"]
    h = Host(procs, tmp_path, pki, stable_ms=300)
    try:
        st, _, b = h.push(s1[0])
        assert st == 200, b
        st, _, b = h.push_self(s1[0])
        assert st == 200, b
        h.wait_updater("2.0", "committed", timeout=PROBATION_S)
        pids = len(h.updater_pids())

        # The plan route's own refusals.
        for bad in (b"", b"{}", b"not json", s2[1] + b"x"):
            st, body = splan(h, bad)
            assert st == 400 and body["detail"]["kind"] == "bad_request", (bad[:20], body)
        st, body = splan(h, s2[1], content_type="text/plain")
        assert st == 400, body
        st, body = splan(h, s2[1], who=pki.agent)
        assert st == 403, body

        st, p = splan(h, s2[1])
        assert st == 200, p
        good = delta_of(s2, set(p["missing"]))
        some = next(n for n, _ in good if n.startswith("bin/"))
        cases = [
            ("dotdot", [("../evil", b"x")] + good, 422, "unsafe_archive"),
            ("symlink", good + [("share/doc/link", "->NOTES")], 409, "delta_mismatch"),
            ("not-listed", good + [("share/doc/extra", b"x")], 409, "delta_mismatch"),
            ("wrong-digest", [(n, d + b"!" if n == some else d) for n, d in good], 409,
             "delta_mismatch"),
            ("missing-file", [(n, d) for n, d in good if n != some], 409, "delta_mismatch"),
            ("no-files-json", [(n, d) for n, d in good if n != "files.json"], 409,
             "delta_mismatch"),
            ("bad-files-json", [("files.json", b"{}")] + good[1:], 409, "delta_mismatch"),
        ]
        before = self_snapshot(h)
        for name, members, status, kind in cases:
            r = push_self_delta(h, tmp_path, s2, tar_bytes(members), name=name + ".tar.gz")
            assert r.status == status, (name, r.status, r.body)
            assert r.json()["detail"]["kind"] == kind, (name, r.body)
            assert self_snapshot(h) == before, name
            h.assert_tree_clean()
        # Not confirmed: 400, as for a full self-update.
        r = push_self_delta(h, tmp_path, s2, tar_bytes(good), confirm="no")
        assert r.status == 400 and r.json()["detail"]["kind"] == "bad_request", r.body
        # An unknown mode.
        r = push_self_delta(h, tmp_path, s2, tar_bytes(good), mode="patch")
        assert r.status == 400 and r.json()["detail"]["kind"] == "bad_request", r.body
        assert self_snapshot(h) == before

        # A local file of the running updater's release changed: its copy is not used.
        lib = os.path.join(h.tree, "releases", "active", "lib", "libbig.so.1")
        with open(lib, "r+b") as f:
            f.write(b"X")
        before = self_snapshot(h)
        r = push_self_delta(h, tmp_path, s2, tar_bytes(good), name="tampered.tar.gz")
        assert r.status == 409, r.body
        assert r.json()["detail"]["kind"] == "delta_mismatch"
        assert "lib/libbig.so.1" in r.json()["detail"]["error"], r.body
        assert self_snapshot(h) == before
        h.assert_tree_clean()
        refused = [e for e in self_update_history(h) if e["result"] == "refused"]
        assert refused and refused[-1]["error_kind"] == "delta_mismatch"
        # Still the same updater, never handed over.
        assert h.health()["version"] == "2.0" and len(h.updater_pids()) == pids
    finally:
        h.close()


def test_crash_while_assembling_self_is_undone(procs, tmp_path, pki, srels):
    s1 = srels["s1"]
    h = Host(procs, tmp_path, pki, stable_ms=300,
             env={"TANDEM_TEST_CRASH_AT": "self.delta.assembled"})
    try:
        st, _, b = h.push(s1[0])
        assert st == 200, b
        agent = h.agent_pid()
        st, p = splan(h, s1[1])
        assert st == 200 and p["reuse_files"] == 0, p
        before = self_snapshot(h)
        starts = len(h.updater_pids())
        r = push_self_delta(h, tmp_path, s1, tar_bytes(delta_of(s1, set(p["missing"]))),
                            check=False)
        assert r.status != 200, r.body  # cut by the crash

        def back():  # restarted (the launcher's output), then /health
            return len(h.updater_pids()) > starts and h.wait_updater("0.1.0")
        hh = wait_until(back, 30, "the fallback updater to be back")
        assert hh["agent"]["pid"] == agent
        assert self_snapshot(h) == before
        h.assert_tree_clean()
        assert [e["result"] for e in self_update_history(h)][-1] == "undone"
    finally:
        h.close()


def updater_log(fleet, name):
    """What the launcher and every updater it ran wrote (stderr, and the updater log file)."""
    text = fleet.procs[name].stdout() + fleet.procs[name].stderr()
    p = os.path.join(fleet.install_dir(name), "state", "updater.log")
    if os.path.exists(p):
        with open(p, errors="replace") as f:
            text += f.read()
    return text


@pytest.mark.parametrize("tamper", [False, True], ids=["planned", "fallback"])
def test_swarm_include_self_is_planned(tmp_path, srels, tamper):
    """`tandem swarm update --include-self` plans the updater's release against the
    updater's own releases too: the second version's self-update is a delta, and the
    updater's tree is the release, file by file. TAMPER: a local file of the updater's
    release changed, so the delta is refused (409) and the master sends it whole."""
    s1, s2 = srels["s1"], srels["s2"]
    f = Fleet(tmp_path)
    try:
        f.enroll("selfie")
        f.start("selfie", launcher=["--probation-deadline", "10000", "--probation-stable", "300",
                                    "--max-starts", "2"])
        for rel, version in ((s1, "2.0"), (s2, "2.1")):
            if tamper and version == "2.1":
                lib = os.path.join(f.install_dir("selfie"), "updater", "releases", "active",
                                   "lib", "libbig.so.1")
                with open(lib, "r+b") as fh:
                    fh.write(b"X")
            doc = f.json("swarm", "update", "--host", "selfie", "--release", rel[0],
                         "--include-self")
            h = doc["hosts"][0]
            assert h["agent"]["result"] == "updated" and h["self"]["result"] == "updated", h
            assert h["self"]["version"] == version, h
            # --json: how each release travelled (the first self-update has nothing to plan from).
            want = "full" if version == "2.0" else ("fallback" if tamper else "planned")
            assert h["self"]["transfer"] == want, h
            assert h["transfer"] == ("full" if version == "2.0" else "planned"), h
            assert h["bytes_sent"] > 0, h
            f.wait_updater("selfie", version, PROBATION_S)
        # The first self-update had nothing to copy from (sent whole); the second was
        # assembled from a delta, as was the agent's second push.
        log = updater_log(f, "selfie")
        assert log.count("assembled from a delta") == (1 if tamper else 2), log[-4000:]
        if tamper:
            assert "delta_mismatch" in log or "lib/libbig.so.1" in log, log[-4000:]
        tree = os.path.join(f.install_dir("selfie"), "updater", "releases", "active")
        agent = os.path.join(f.install_dir("selfie"), "releases", "active")
        assert tree_listing(tree, skip=("release.json",)) == \
            tree_listing(agent, skip=("release.json",))
        with open(os.path.join(tree, "files.json"), "rb") as fh:
            assert fh.read() == s2[1]
    finally:
        f.stop_all()
