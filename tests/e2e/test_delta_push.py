"""Planned (delta) pushes driven by our CLI against real updaters: `tandem
swarm update` asks POST /update/plan and uploads only the files a host lacks;
a host whose local copies changed refuses the delta (409 delta_mismatch) and
the master sends the full release by itself."""

import hashlib
import json
import os
import re
import signal
import stat
import subprocess

import pytest

from conftest import bin_path
from swarm_util import Fleet, fleet_web1 as fleet, make_release, tandem  # noqa: F401 (fixture)
from test_updater import CRASH_STATUS

pytestmark = pytest.mark.xdist_group("delta_push")


def repack(base_tgz, tree, tgz, big, doc):
    """BASE_TGZ unpacked into TREE with a 1 MiB data file BIG and a note DOC,
    packed by `tandem release pack` into TGZ (same binaries, same version:
    the two releases differ in the note only)."""
    os.makedirs(os.path.join(tree, "share"))
    subprocess.run(["tar", "-xzf", base_tgz, "-C", tree], check=True)
    os.remove(os.path.join(tree, "files.json"))
    with open(os.path.join(tree, "share", "big.dat"), "wb") as f:
        f.write(big)
    with open(os.path.join(tree, "share", "NOTES"), "w") as f:
        f.write(doc)
    subprocess.run([bin_path("tandem"), "release", "pack", tree, "-o", tgz], check=True,
                   capture_output=True)
    return tgz


@pytest.fixture(scope="module")
def rel(build_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("releases"))
    base = make_release(build_dir, "1.0.0", out)
    # Incompressible, so the full tarball is about 1 MiB and a delta of a note is not.
    big = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(1 << 15))
    rels = {n: repack(base, os.path.join(out, n), os.path.join(out, n + ".tar.gz"), big, doc)
            for n, doc in (("v1", "one\n"), ("v2", "two\n"))}
    # V3: V1 with a few bytes of the data file changed (it travels as a zstd patch).
    big3 = bytearray(big)
    big3[4096:4112] = b"changed in v3..."
    rels["v3"] = repack(base, os.path.join(out, "v3"), os.path.join(out, "v3.tar.gz"),
                        bytes(big3), "one\n")
    rels["big"] = big
    return rels


def tree(root):
    """{path: (mode, sha256 or link target)} of every entry under ROOT but release.json."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if rel == "release.json":
                continue
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = (oct(stat.S_IMODE(st.st_mode)), "dir")
            else:
                with open(p, "rb") as f:
                    out[rel] = (oct(stat.S_IMODE(st.st_mode)), hashlib.sha256(f.read()).hexdigest())
    return out


def files_json(tgz):
    return json.loads(subprocess.run(["tar", "-xOzf", tgz, "files.json"], check=True,
                                     capture_output=True).stdout)


def log_text(fleet, name):
    return fleet.procs[name].stdout() + fleet.procs[name].stderr()


def test_second_push_is_planned_and_complete(fleet, rel):
    r = fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v1"], check=0)
    # --dry-run asks the plan and counts the delta it would send, installing nothing.
    dry = fleet.json("swarm", "update", "--host", "web1", "--release", rel["v2"], "--dry-run")
    d = dry["hosts"][0]
    assert d["transfer"] == "planned" and 0 < d["bytes"] * 20 < os.path.getsize(rel["v2"]), d
    full = fleet.json("swarm", "update", "--host", "web1", "--release", rel["v2"], "--dry-run",
                      "--full")["hosts"][0]
    assert full["transfer"] == "full" and full["bytes"] == os.path.getsize(rel["v2"]), full
    table = fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v2"],
                         "--dry-run", check=0)
    assert re.search(r"^web1 .* planned %d " % d["bytes"], table.stdout, re.M), table.stdout
    assert "assembled from a delta" not in log_text(fleet, "web1")
    r = fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v2"], "--json",
                     check=0)
    row = json.loads(r.stdout)["hosts"][0]
    assert row["agent"]["result"] == "updated", r.stdout + r.stderr
    assert "assembled from a delta" in log_text(fleet, "web1"), r.stderr
    # What the dry run counted is what the push sent.
    assert row["bytes_sent"] == d["bytes"], (row, d)
    m = re.search(r"web1: planned push, (\d+) bytes sent \(the release is (\d+)\)", r.stderr)
    assert m, r.stderr
    assert int(m.group(1)) * 20 < int(m.group(2)), m.group(0)
    # --json says the same, and it stays in the registry (rollout show).
    assert row["transfer"] == "planned" and row["bytes_sent"] == int(m.group(1)), row
    assert row["self"] is None
    active = os.path.join(fleet.install_dir("web1"), "releases", "active")
    got = tree(active)
    # Exactly the release's tree: every file with its digest and mode, nothing else.
    want = {}
    for e in files_json(rel["v2"])["files"]:
        if e["type"] == "file":
            want[e["path"]] = ("0o%o" % int(e["mode"], 8), e["sha256"])
        elif e["type"] == "dir":
            want[e["path"]] = ("0o%o" % int(e["mode"], 8), "dir")
        else:
            want[e["path"]] = ("link", e["target"])
    with open(os.path.join(active, "files.json"), "rb") as f:
        want["files.json"] = ("0o644", hashlib.sha256(f.read()).hexdigest())
    assert got == want

    # --full: the whole release even though the host holds all of it (prev).
    plans = log_text(fleet, "web1").count("POST /update/plan")
    r = fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v1"], "--full",
                     check=0)
    assert "updated" in r.stdout, r.stdout + r.stderr
    assert "web1: full push" in r.stderr, r.stderr
    full = int(re.search(r"web1: full push, (\d+) bytes sent", r.stderr).group(1))
    assert full >= os.path.getsize(rel["v1"]), r.stderr
    assert log_text(fleet, "web1").count("assembled from a delta") == 1
    assert log_text(fleet, "web1").count("POST /update/plan") == plans


def test_tampered_copy_falls_back_to_full(fleet, rel):
    fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v1"], check=0)
    active = os.path.join(fleet.install_dir("web1"), "releases", "active")
    fj = files_json(rel["v1"])
    # The data the delta would copy changes on the host: it cannot be assembled.
    for e in fj["files"]:
        if e["type"] == "file" and e["path"].startswith("share/"):
            p = os.path.join(active, e["path"])
            mode = os.stat(p).st_mode
            os.chmod(p, mode | stat.S_IWUSR)
            with open(p, "ab") as f:
                f.write(b"tampered")
            os.chmod(p, mode)
    r = fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v2"], "--json",
                     check=0)
    row = json.loads(r.stdout)["hosts"][0]
    assert row["agent"]["result"] == "updated", r.stdout + r.stderr
    assert "planned push refused" in r.stderr and "delta_mismatch" in r.stderr, r.stderr
    assert "sending the full release" in r.stderr
    assert "web1: fallback push" in r.stderr, r.stderr
    # The plan, the refused delta and the whole release: more than the release alone.
    assert row["transfer"] == "fallback", row
    assert row["bytes_sent"] > os.path.getsize(rel["v2"]), row


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_crash_during_planned_install_recovers(fleet, rel):
    fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v1"], check=0)
    p = fleet.procs["web1"]
    p.signal(signal.SIGTERM)
    p.p.wait(timeout=30)
    fleet.start("web1", env={"TANDEM_TEST_CRASH_AT": "delta.assembled"})
    # The updater dies once the delta is assembled: the push does not end updated.
    r = fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v2"],
                     "--retries", "1")
    assert r.returncode != 0, r.stdout + r.stderr
    assert fleet.procs["web1"].p.wait(timeout=30) == CRASH_STATUS
    assert "assembled from a delta" not in log_text(fleet, "web1")
    fleet.start("web1")
    st = fleet.json("swarm", "status", "--host", "web1")["hosts"][0]
    assert st["active"]["sha256"] == sha256_of(rel["v1"]), st
    # And the next planned push installs it.
    r = fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v2"], check=0)
    assert "assembled from a delta" in log_text(fleet, "web1"), r.stderr
    st = fleet.json("swarm", "status", "--host", "web1")["hosts"][0]
    assert st["active"]["sha256"] == sha256_of(rel["v2"]), st


def test_rollout_waves_go_planned(tmp_path, rel):
    """A rollout of three hosts in three waves: each host's push is planned, and its row
    (registry, `rollout status --json`, the --json-lines host events) records how the
    release travelled and what it cost; the host whose local copy changed is visibly
    the fallback, and still ends updated."""
    f = Fleet(tmp_path / "fleet")
    try:
        for n in ("web1", "web2", "web3"):
            f.enroll(n)
            f.start(n)
        doc = f.json("swarm", "update", "--all", "--release", rel["v1"], "--canary", "0",
                     "--waves", "100%")
        assert doc["ok"] is True and {h["transfer"] for h in doc["hosts"]} == {"full"}, doc
        active = os.path.join(f.install_dir("web3"), "releases", "active", "share", "big.dat")
        os.chmod(active, 0o644)
        with open(active, "r+b") as fh:
            fh.write(b"X")
        # The dry run of the rollout counts what each host would be sent.
        dry = {h["host"]: h for h in f.json("swarm", "update", "--all", "--release",
                                            rel["v2"], "--dry-run")["hosts"]}
        assert {h["transfer"] for h in dry.values()} == {"planned"}, dry
        r = f.tandem("swarm", "update", "--all", "--release", rel["v2"], "--canary", "1",
                     "--waves", "50%,100%", "--json-lines", check=0)
        lines = [json.loads(x) for x in r.stdout.splitlines()]
        size = os.path.getsize(rel["v2"])
        events = {e["host"]: e for e in lines if e["type"] == "host"}
        assert set(events) == {"web1", "web2", "web3"}, lines
        rid = next(e["rollout"] for e in events.values())
        rows = {x["host"]: x for x in f.json("swarm", "rollout", "status", rid)["host_rows"]}
        assert sorted(x["wave"] for x in rows.values()) == [1, 2, 3], rows
        for n in ("web1", "web2", "web3"):
            for x in (events[n], rows[n]):
                assert x["state"] == "updated", (n, x)
                if n == "web3":
                    # The refused delta, then the whole release: more than the release.
                    assert x["transfer"] == "fallback" and x["bytes_sent"] > size, (n, x)
                else:
                    assert x["transfer"] == "planned" and 0 < x["bytes_sent"] * 20 < size, \
                        (n, x)
            assert events[n]["bytes_sent"] == rows[n]["bytes_sent"]
            if n != "web3":
                assert dry[n]["bytes"] == rows[n]["bytes_sent"], (dry[n], rows[n])
        assert "web3: planned push refused" in r.stderr and "web3: fallback push" in r.stderr
        # The table an operator reads says it too.
        table = f.tandem("swarm", "rollout", "status", rid, check=0).stdout
        assert re.search(r"^HOST +WAVE +STATE +VERSION +SENT ", table, re.M), table
        for n in ("web1", "web2", "web3"):
            assert re.search(r"^%s .* %s %d " % (n, rows[n]["transfer"], rows[n]["bytes_sent"]),
                             table, re.M), table
        assert r.stderr.count("planned push, ") == 2, r.stderr
        for n in ("web1", "web2", "web3"):
            st = f.json("swarm", "status", "--host", n)["hosts"][0]
            assert st["active"]["sha256"] == sha256_of(rel["v2"]), st
    finally:
        f.stop_all()


def test_hosts_with_the_same_plan_share_one_delta(fleet, rel, tmp_path):
    """Hosts on the same release lack the same files: the master builds their
    delta once per run (a rollout's waves included) and sends it to each."""
    for name in ("web2", "web3"):
        fleet.enroll(name)
        fleet.start(name)
    fleet.tandem("swarm", "update", "--all", "--release", rel["v1"], "--canary", "0",
                 "--waves", "100%", check=0)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = tandem(fleet.home, "swarm", "update", "--all", "--release", rel["v2"], "--canary", "1",
               "--waves", "100%", "--json", check=0, env={"TMPDIR": str(tmp)})
    rows = {h["host"]: h for h in json.loads(r.stdout)["hosts"]}
    assert sorted(rows) == ["web1", "web2", "web3"], r.stdout
    fj_len = len(subprocess.run(["tar", "-xOzf", rel["v2"], "files.json"], check=True,
                                capture_output=True).stdout)
    for name, row in rows.items():
        assert row["agent"]["result"] == "updated" and row["transfer"] == "planned", row
        assert "assembled from a delta" in log_text(fleet, name), name
        # The plan's request went gzip-compressed (the updaters list plan_gzip).
        m = re.findall(r"plan: (\d+) bytes \(gzip\)", log_text(fleet, name))
        assert m and int(m[-1]) * 2 < fj_len, (name, m, fj_len)
    # One delta, built for the canary, sent as it is in the next wave.
    assert len(re.findall(r": built a delta of \d+ files, \d+ bytes", r.stderr)) == 1, r.stderr
    assert len(re.findall(r": the delta of an earlier host", r.stderr)) == 2, r.stderr
    assert len({row["bytes_sent"] for row in rows.values()}) == 1, rows
    # The run's delta directory is gone with the run.
    assert os.listdir(tmp) == []


def test_host_lacking_nearly_everything_gets_the_release_whole_unbuilt(fleet, rel, tmp_path,
                                                                     build_dir):
    """A plan naming 90 % of the release's file bytes or more: no delta is built
    (it would be about the release's size, or with patches cost more time than the
    transfer saves), the release goes whole."""
    fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v1"], check=0)
    # Other binaries (another version), other data: no content in common with v1.
    base = make_release(build_dir, "3.0.0", str(tmp_path))
    big = b"".join(hashlib.sha256(b"other %d" % i).digest() for i in range(1 << 12))
    other = repack(base, str(tmp_path / "other"), str(tmp_path / "other.tar.gz"), big,
                   "other\n")
    r = fleet.tandem("-v", "swarm", "update", "--host", "web1", "--release", other, "--json",
                     check=0)
    row = json.loads(r.stdout)["hosts"][0]
    assert row["agent"]["result"] == "updated" and row["transfer"] == "full", row
    assert "web1: the host lacks" in r.stderr and "built a delta" not in r.stderr, r.stderr
    # The plan's request (gzip-compressed files.json) and the whole release.
    fj_len = len(subprocess.run(["tar", "-xOzf", other, "files.json"], check=True,
                                capture_output=True).stdout)
    plan_len = int(re.findall(r"plan: (\d+) bytes \(gzip\)", log_text(fleet, "web1"))[-1])
    assert plan_len < fj_len
    assert row["bytes_sent"] == plan_len + os.path.getsize(other), row
    assert "assembled from a delta" not in log_text(fleet, "web1")


def test_patched_push_is_the_full_install(fleet, rel):
    """A file that changed a little goes as a zstd patch against the host's copy
    (its base, in the master's store): a few hundred bytes instead of the file,
    and the host ends with exactly the tree a full install gives."""
    fleet.enroll("web2")
    fleet.start("web2")
    fleet.tandem("swarm", "update", "--all", "--release", rel["v1"], "--canary", "0",
                 "--waves", "100%", check=0)
    size = os.path.getsize(rel["v3"])
    dry = fleet.json("swarm", "update", "--host", "web1", "--release", rel["v3"],
                     "--dry-run")["hosts"][0]
    assert dry["transfer"] == "planned" and dry["bytes"] * 20 < size, dry
    r = fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v3"], "--json",
                     check=0)
    row = json.loads(r.stdout)["hosts"][0]
    assert row["agent"]["result"] == "updated", r.stdout + r.stderr
    assert row["transfer"] == "planned" and row["bytes_sent"] * 20 < size, row
    # The data file alone is 1 MiB of incompressible bytes: it went as a patch.
    assert row["bytes_sent"] < len(rel["big"]) // 10, row
    assert row["bytes_sent"] == dry["bytes"], (row, dry)
    assert re.search(r"web1: built a delta of 1 files, \d+ bytes \(1 of them as patches",
                     r.stderr), r.stderr
    # V3 was new to the store: its check kept the file, the delta did not read V3 again.
    assert "from the files the check kept" in r.stderr, r.stderr
    assert "delta: 1 patches gave %d bytes" % len(rel["big"]) in log_text(fleet, "web1")
    r = fleet.tandem("swarm", "update", "--host", "web2", "--release", rel["v3"], "--full",
                     "--json", check=0)
    assert json.loads(r.stdout)["hosts"][0]["transfer"] == "full", r.stdout
    trees = [tree(os.path.join(fleet.install_dir(n), "releases", "active"))
             for n in ("web1", "web2")]
    assert trees[0] == trees[1]
    assert "share/big.dat" in trees[0] and ".tandem-patches" not in trees[0]


def test_changed_base_falls_back_to_full(fleet, rel):
    """The host's copy of a patch's base changed since its files.json was written:
    the delta is refused (409 delta_mismatch) and the master sends the release whole."""
    fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v1"], check=0)
    p = os.path.join(fleet.install_dir("web1"), "releases", "active", "share", "big.dat")
    os.chmod(p, 0o644)
    with open(p, "ab") as f:
        f.write(b"changed on the host")
    r = fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v3"], "--json",
                     check=0)
    row = json.loads(r.stdout)["hosts"][0]
    assert row["agent"]["result"] == "updated", r.stdout + r.stderr
    assert "(1 of them as patches" in r.stderr, r.stderr
    assert "planned push refused" in r.stderr and "delta_mismatch" in r.stderr, r.stderr
    assert row["transfer"] == "fallback" and row["bytes_sent"] > os.path.getsize(rel["v3"]), row
    st = fleet.json("swarm", "status", "--host", "web1")["hosts"][0]
    assert st["active"]["sha256"] == sha256_of(rel["v3"]), st
    with open(os.path.join(fleet.install_dir("web1"), "releases", "active", "share",
                           "big.dat"), "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == next(
            e["sha256"] for e in files_json(rel["v3"])["files"] if e["path"] == "share/big.dat")


def test_updater_without_zstd_patch_gets_whole_files(fleet, rel):
    """An updater that does not list zstd_patch (an older one) is never asked for
    bases and never sent a patch: the changed file goes whole."""
    p = fleet.procs["web1"]
    p.signal(signal.SIGTERM)
    p.p.wait(timeout=30)
    fleet.start("web1", env={"TANDEM_TEST_WITHOUT": "zstd_patch"})
    fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v1"], check=0)
    r = fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v3"], "--json",
                     check=0)
    row = json.loads(r.stdout)["hosts"][0]
    assert row["agent"]["result"] == "updated", r.stdout + r.stderr
    assert row["bytes_sent"] > len(rel["big"]), row
    assert "of them as patches" not in r.stderr or "(0 of them as patches" in r.stderr, r.stderr
    assert "patches gave" not in log_text(fleet, "web1")
    st = fleet.json("swarm", "status", "--host", "web1")["hosts"][0]
    assert st["active"]["sha256"] == sha256_of(rel["v3"]), st


def test_a_new_release_refused_by_its_check_sends_nothing(fleet, rel, tmp_path):
    """The check of a new release also keeps the files its delta needs: when the
    check refuses the release (here a FIFO after every file it kept), nothing of
    it is used: no plan asked, nothing uploaded, no store entry, no temporaries."""
    import tarfile
    fleet.tandem("swarm", "update", "--host", "web1", "--release", rel["v1"], check=0)
    before = sorted(os.listdir(os.path.join(fleet.home, "store")))
    bad = str(tmp_path / "bad.tar.gz")
    with tarfile.open(rel["v2"], "r:gz") as src, tarfile.open(bad, "w:gz") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        fifo = tarfile.TarInfo("share/fifo")
        fifo.type = tarfile.FIFOTYPE
        dst.addfile(fifo)
    log_before = log_text(fleet, "web1")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = tandem(fleet.home, "swarm", "update", "--host", "web1", "--release", bad, "--json",
               env={"TMPDIR": str(tmp)})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FIFOs are not allowed" in r.stderr and "nothing was sent" in r.stderr, r.stderr
    assert log_text(fleet, "web1").count("POST /update") == log_before.count("POST /update")
    assert sorted(os.listdir(os.path.join(fleet.home, "store"))) == before
    assert os.listdir(str(tmp)) == []
    # The release the check passes goes planned from what its check kept.
    r = tandem(fleet.home, "swarm", "update", "--host", "web1", "--release", rel["v2"], "--json",
               env={"TMPDIR": str(tmp)}, check=0)
    row = json.loads(r.stdout)["hosts"][0]
    assert row["transfer"] == "planned", row
    assert "from the files the check kept" in r.stderr, r.stderr
    assert os.listdir(str(tmp)) == []
