"""End-to-end tests of `tandem swarm`: hosts enrolled through the CLI,
real tandem-updater + tandem-agent pairs on 127.0.0.1 started from the bundles
`swarm enroll` wrote, releases from `make release`, pushed by `tandem swarm
update` over pinned mutual TLS."""

import json
import os
import pty
import re
import select
import shutil
import stat
import subprocess

import pytest

from conftest import bin_path, run, wait_until
from swarm_util import Fleet, hosts_by_name, make_release, tandem


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def openssl_fp(crt):
    out = run(["openssl", "x509", "-in", crt, "-noout", "-fingerprint", "-sha256"]).stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


# ---------------------------------------------------------------- enrollment

def test_enroll_bundle(tmp_path):
    fleet = Fleet(tmp_path)
    host = fleet.enroll("web1", extra=["--san", "web1.example.org", "--san", "::1",
                                       "--notes", "rack 4"])
    b = fleet.bundle("web1")
    assert host["bundle"] == b and host["enrolled_at"].endswith("Z") and host["in_service"]
    assert sorted(os.listdir(b)) == ["agent.conf", "agent.crt", "agent.key", "ca.crt",
                                     "updater.conf", "updater.crt", "updater.key"]
    assert mode(b) == 0o700
    assert mode(os.path.join(b, "agent.key")) == 0o600
    assert mode(os.path.join(b, "updater.key")) == 0o600
    # Fingerprints in the registry are those of the files (checked with openssl).
    assert host["agent_fingerprint"] == openssl_fp(os.path.join(b, "agent.crt"))
    assert host["updater_fingerprint"] == openssl_fp(os.path.join(b, "updater.crt"))
    # Identities, SANs, chain.
    for f, cn in (("agent.crt", "web1"), ("updater.crt", "updater@web1")):
        p = os.path.join(b, f)
        text = run(["openssl", "x509", "-in", p, "-noout", "-subject", "-ext",
                    "subjectAltName"]).stdout
        assert "CN = %s" % cn in text, text
        assert "IP Address:127.0.0.1" in text and "DNS:web1.example.org" in text, text
        assert "IP Address:0:0:0:0:0:0:0:1" in text, text
        run(["openssl", "verify", "-CAfile", os.path.join(b, "ca.crt"), p])
    # The bundle works wherever it is unpacked: move it, then let both daemons check it.
    moved = str(tmp_path / "elsewhere" / "web1")
    shutil.copytree(b, moved)
    r = run([bin_path("tandem-agent"), "--config", os.path.join(moved, "agent.conf"), "-n"])
    assert "configuration ok" in r.stdout
    r = run([bin_path("tandem-updater"), "--config", os.path.join(moved, "updater.conf"), "-n"])
    assert "configuration ok" in r.stdout
    r = run([bin_path("tandem-updater"), "--config", os.path.join(moved, "updater.conf"),
             "--print-config"])
    assert "install_dir = \"%s/install\"" % moved in r.stdout or \
        "install_dir = %s/install" % moved in r.stdout, r.stdout
    # The updater only lets this master push (its fingerprint is in the config).
    master_fp = openssl_fp(os.path.join(fleet.home, "master", "master.crt"))
    with open(os.path.join(b, "updater.conf")) as f:
        assert "master_fingerprints = %s\n" % master_fp in f.read()
    shown = fleet.json("swarm", "show", "web1")
    assert shown["notes"] == "rack 4" and shown["in_service"] is True
    assert shown["agent_port"] == fleet.ports["web1"][0]


def test_enroll_days(tmp_path):
    """--days sets both certificates' validity; out of range is a usage error."""
    fleet = Fleet(tmp_path)
    fleet.enroll("short", extra=["--days", "30"])
    b = fleet.bundle("short")
    for f in ("agent.crt", "updater.crt"):
        r = run(["openssl", "x509", "-in", os.path.join(b, f), "-noout", "-checkend",
                 str(29 * 86400)])
        assert "will not expire" in r.stdout, (f, r.stdout)
        r = subprocess.run(["openssl", "x509", "-in", os.path.join(b, f), "-noout",
                            "-checkend", str(31 * 86400)], capture_output=True, text=True)
        assert r.returncode == 1 and "will expire" in r.stdout, (f, r.stdout)
    for bad in ("0", "3651", "x"):
        r = tandem(fleet.home, "swarm", "enroll", "bad", "--address", "127.0.0.1",
                   "--days", bad, check=2)
        assert "--days" in r.stderr, r.stderr
    assert not os.path.exists(fleet.bundle("bad"))


def test_enroll_refusals(tmp_path):
    fleet = Fleet(tmp_path)
    fleet.enroll("web1")
    before = fleet.json("swarm", "list")
    # Duplicate, also in another case.
    for name in ("web1", "WEB1"):
        r = fleet.tandem("swarm", "enroll", name, "--address", "127.0.0.1", check=1)
        assert "already enrolled" in r.stderr
    # Role impersonation and invalid names.
    for name, why in (("tandem-master", "master"), ("updater@web2", "@"),
                      ("bad-", ""), ("bad_name", ""), ("a" * 70, ""), ("a..b", "")):
        r = fleet.tandem("swarm", "enroll", name, "--address", "127.0.0.1", check=1)
        assert "swarm enroll: host name" in r.stderr, r.stderr
        assert why in r.stderr
        assert not os.path.exists(fleet.bundle(name))
    # Bad arguments.
    # No --address for a new host: a usage error, said before anything is looked at.
    r = fleet.tandem("swarm", "enroll", "web2", check=2)
    assert "--address ADDR is required" in r.stderr, r.stderr
    e = json.loads(fleet.tandem("swarm", "enroll", "web2", "--json", check=2).stdout)["error"]
    assert e["kind"] == "usage" and "--address" in e["message"]
    fleet.tandem("swarm", "enroll", "web2", "--address", "127.0.0.1", "--agent-port", "0",
                 check=2)
    # Values the command line got wrong, found by the enrollment: usage errors too.
    fleet.tandem("swarm", "enroll", "web2", "--address", "127.0.0.1", "--agent-port", "9",
                 "--updater-port", "9", check=2)
    fleet.tandem("swarm", "enroll", "web2", "--address", "a b", check=2)
    fleet.tandem("swarm", "enroll", check=2)
    fleet.tandem("swarm", "enroll", "a", "b", check=2)
    fleet.tandem("swarm", "enroll", "web2", "--bogus", check=2)
    # Never overwrites another bundle's keys.
    key = os.path.join(fleet.bundle("web1"), "agent.key")
    with open(key, "rb") as f:
        old_key = f.read()
    r = fleet.tandem("swarm", "enroll", "web9", "--address", "127.0.0.1", "--out",
                     fleet.bundle("web1"), check=1)
    assert r.stderr.startswith("tandem: error: swarm enroll: the bundle directory "), r.stderr
    assert "already holds agent.key" in r.stderr and "--force" not in r.stderr, r.stderr
    with open(key, "rb") as f:
        assert f.read() == old_key
    e = json.loads(fleet.tandem("swarm", "enroll", "web9", "--address", "127.0.0.1", "--out",
                                fleet.bundle("web1"), "--json", check=1).stdout)["error"]
    assert e["kind"] == "conflict" and "--force" not in e["message"]
    assert fleet.json("swarm", "list") == before


def test_enroll_updater_later_list_show_decommission(tmp_path):
    fleet = Fleet(tmp_path)
    h = fleet.enroll("web2", updater=False)
    assert h["updater_fingerprint"] is None
    assert not os.path.exists(os.path.join(fleet.bundle("web2"), "updater.conf"))
    # Cannot change the address while adding the updater identity.
    r = fleet.tandem("swarm", "enroll", "--updater", "web2", "--address", "10.1.1.1", check=2)
    assert "cannot change" in r.stderr
    h2 = fleet.json("swarm", "enroll", "--updater", "web2")
    assert h2["agent_fingerprint"] == h["agent_fingerprint"]
    assert h2["updater_fingerprint"] == openssl_fp(
        os.path.join(fleet.bundle("web2"), "updater.crt"))
    r = run([bin_path("tandem-updater"), "--config",
             os.path.join(fleet.bundle("web2"), "updater.conf"), "-n"])
    # Only once.
    r = fleet.tandem("swarm", "enroll", "--updater", "web2", check=1)
    assert "already enrolled" in r.stderr
    fleet.enroll("web3")
    listed = fleet.json("swarm", "list")
    assert [x["name"] for x in listed["hosts"]] == ["web2", "web3"]
    text = fleet.tandem("swarm", "list", check=0).stdout
    assert text.splitlines()[0].split()[:2] == ["HOST", "ADDRESS"]
    d = fleet.json("swarm", "decommission", "web3")
    assert d["in_service"] is False and d["decommissioned_at"]
    listed = fleet.json("swarm", "list")
    assert hosts_by_name({"hosts": [dict(x, host=x["name"]) for x in listed["hosts"]]})[
        "web3"]["in_service"] is False
    fleet.tandem("swarm", "show", "nosuch", check=1)
    fleet.tandem("swarm", "decommission", "nosuch", check=1)
    fleet.tandem("swarm", "show", check=2)
    # A decommissioned host cannot be updated by name.
    r = fleet.tandem("swarm", "update", "--host", "web3", "--dry-run", check=1)
    assert "decommissioned" in r.stderr


# ---------------------------------------------------------------- a running fleet

@pytest.fixture(scope="module")
def rel(build_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("releases"))
    return {
        "v1": make_release(build_dir, "1.0.0", out),
        "v2": make_release(build_dir, "2.0.0", out),
        "bad": make_release(build_dir, "3.0.0", out, kind="exit-at-once"),
        "slow": make_release(build_dir, "4.0.0", out, kind="slow-health"),
    }


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    for name in ("web1", "web2", "web3"):
        f.enroll(name)
        f.start(name)
    yield f
    f.stop_all()


def releases_on_disk(fleet, name):
    d = os.path.join(fleet.install_dir(name), "releases")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_fleet_update_flow(fleet, rel):
    # Dry run: every host reachable and pinned, nothing installed, nothing changes.
    doc = fleet.json("swarm", "update", "--all", "--dry-run", "--release", rel["v1"])
    hs = hosts_by_name(doc)
    assert sorted(hs) == ["web1", "web2", "web3"]
    for h in hs.values():
        assert h["reachable"] is True and h["pin_ok"] is True
        assert h["current"] is None and h["same_sha256"] is False
    for name in hs:
        assert fleet.json("swarm", "status", "--host", name)["hosts"][0]["active"] is None
        assert fleet.json("swarm", "history", "--host", name)["pushes"] == []

    # Update everything.
    doc = fleet.json("swarm", "update", "--all", "--release", rel["v1"], "--parallel", "2")
    assert doc["ok"] is True
    for h in doc["hosts"]:
        assert h["agent"]["result"] == "updated", h
        assert h["agent"]["version"] == "1.0.0"
        assert h["self"] is None

    # Dry run again: already running this sha256.
    doc = fleet.json("swarm", "update", "--all", "--dry-run", "--release", rel["v1"])
    for h in doc["hosts"]:
        assert h["same_sha256"] is True and h["current"]["version"] == "1.0.0"

    # A broken release is rolled back on the host it was pushed to (exit 1).
    r = fleet.tandem("swarm", "update", "--host", "web2", "--release", rel["bad"], check=1)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("web2 ")][0]
    assert "rolled_back" in line and "1.0.0" in line, r.stdout
    st = fleet.json("swarm", "status", "--host", "web2")["hosts"][0]
    assert st["active"]["version"] == "1.0.0" and st["agent_version"] == "1.0.0"

    # A release given as a directory is packed first; the table says who got it.
    tree = os.path.join(fleet.root, "tree-v2")
    os.makedirs(tree)
    subprocess.run(["tar", "-xzf", rel["v2"], "-C", tree], check=True)
    r = fleet.tandem("swarm", "update", "--host", "web1", "--host", "web3", "--release", tree,
                     check=0)
    assert [ln.split()[2] for ln in r.stdout.splitlines()[1:3]] == ["updated", "updated"]

    # Status of all, as JSON; the agent answers with its own (pinned) certificate.
    st = hosts_by_name(fleet.json("swarm", "status"))
    assert st["web1"]["active"]["version"] == "2.0.0"
    assert st["web1"]["prev"]["version"] == "1.0.0"
    assert st["web1"]["agent_version"] == "2.0.0"
    assert st["web2"]["active"]["version"] == "1.0.0"
    assert st["web1"]["updater_version"] and st["web1"]["agent_state"]

    # Manual rollback.
    doc = fleet.json("swarm", "rollback", "--host", "web1")
    assert doc["result"] == "rolled_back" and doc["version"] == "1.0.0"
    assert fleet.json("swarm", "status", "--host", "web1")["hosts"][0]["active"]["version"] \
        == "1.0.0"
    # Releases and history.
    rels = fleet.json("swarm", "releases", "--host", "web1")
    assert {r_["slot"]: r_["version"] for r_ in rels["releases"]} == \
        {"active": "1.0.0", "prev": "2.0.0"}
    hist = fleet.json("swarm", "history", "--host", "web1")
    assert [e["kind"] for e in hist["updater"]][-1] == "rollback"
    # Oldest first, as the updater's own history.
    assert [p["result"] for p in hist["pushes"]] == ["updated", "updated", "rolled_back"]
    hist2 = fleet.json("swarm", "history", "--host", "web2")
    assert [p["result"] for p in hist2["pushes"]] == ["updated", "rolled_back"]
    assert "did not start: agent: exited before READY" in hist2["pushes"][-1]["detail"]
    assert "output of the failing release: " in hist2["pushes"][-1]["detail"]
    show = fleet.json("swarm", "show", "web2")
    assert show["recent_pushes"][-1]["result"] == "rolled_back"


def test_fleet_fail_closed(fleet, rel):
    """Pin mismatch, no updater identity, unreachable, decommissioned: nothing is sent."""
    web1_hist = len(fleet.json("swarm", "history", "--host", "web1")["updater"])
    # A host that already runs the release is left alone (already_active, prev kept).
    before = hosts_by_name(fleet.json("swarm", "status"))
    # An impostor: enrolled with its own updater certificate, but web1's updater answers there.
    fleet.enroll("impostor", updater_port=fleet.ports["web1"][1])
    # No updater identity.
    fleet.enroll("noupd", updater=False)
    # Enrolled, nothing listening.
    fleet.enroll("dead")
    # Decommissioned: left out of --all.
    fleet.enroll("retired")
    fleet.json("swarm", "decommission", "retired")

    # No brakes (no canary, any number of failures): every host is tried and classified.
    doc = fleet.json("swarm", "update", "--all", "--release", rel["v2"], "--canary", "0",
                     "--max-failures", "100%", check=1)
    hs = hosts_by_name(doc)
    assert "retired" not in hs
    assert doc["ok"] is False
    for name in ("web1", "web2", "web3"):
        running = (before[name]["active"] or {}).get("version")
        assert hs[name]["agent"]["result"] == \
            ("already_active" if running == "2.0.0" else "updated"), hs[name]
    assert hs["impostor"]["agent"]["result"] == "failed"
    assert "pin mismatch" in hs["impostor"]["agent"]["reason"]
    assert hs["noupd"]["agent"]["result"] == "failed"
    assert hs["noupd"]["agent"]["reason"] == "no updater identity"
    assert "fingerprint" in hs["noupd"]["agent"]["detail"]
    assert hs["dead"]["agent"]["result"] == "failed"
    assert hs["dead"]["agent"]["reason"] == "unreachable"
    assert "connect to" in hs["dead"]["agent"]["detail"]
    # The impostor push never reached web1's updater: one more entry only (its own push).
    web1_pushed = 0 if hs["web1"]["agent"]["result"] == "already_active" else 1
    assert len(fleet.json("swarm", "history", "--host", "web1")["updater"]) == \
        web1_hist + web1_pushed

    # Dry run reports the same without touching anything.
    doc = hosts_by_name(fleet.json("swarm", "update", "--all", "--dry-run"))
    assert doc["impostor"]["pin_ok"] is False and doc["impostor"]["reachable"] is True
    assert doc["dead"]["reachable"] is False
    # A host without an updater identity is not asked: not "unreachable", it says why.
    assert doc["noupd"]["reachable"] is None and doc["noupd"]["updater_identity"] is False
    assert "fingerprint" in doc["noupd"]["error"]
    assert doc["web1"]["updater_identity"] is True
    assert doc["web1"]["same_sha256"] is None  # no release given
    # Status says the same, exit 1.
    st = hosts_by_name(fleet.json("swarm", "status", check=1))
    assert st["impostor"]["pin_ok"] is False
    assert st["dead"]["reachable"] is False
    assert st["web3"]["reachable"] is True
    assert st["noupd"]["reachable"] is None and st["noupd"]["status"] == "no updater identity"
    text = fleet.tandem("swarm", "status", check=1).stdout
    row = [line for line in text.splitlines() if line.startswith("noupd ")][0]
    assert "no updater identity" in row and "unreachable" not in row, row
    r = fleet.tandem("swarm", "rollback", "--host", "noupd", "--json", check=1)
    assert json.loads(r.stdout)["error"]["kind"] == "conflict"
    assert "no updater identity" in r.stderr and "enroll --updater noupd" in r.stderr
    # Rollback on a pin mismatch fails closed too.
    r = fleet.tandem("swarm", "rollback", "--host", "impostor", check=1)
    assert "pin mismatch" in r.stdout
    assert len(fleet.json("swarm", "history", "--host", "web1")["updater"]) == \
        web1_hist + web1_pushed


def test_update_usage_and_bad_release(fleet, rel, tmp_path):
    fleet.tandem("swarm", "update", "--all", check=2)
    fleet.tandem("swarm", "update", "--release", rel["v1"], check=2)
    fleet.tandem("swarm", "update", "--all", "--host", "web1", "--release", rel["v1"], check=2)
    fleet.tandem("swarm", "update", "--all", "--release", rel["v1"], "--parallel", "0", check=2)
    r = fleet.tandem("swarm", "update", "--host", "nosuch", "--release", rel["v1"], check=1)
    assert "no such host" in r.stderr
    r = fleet.tandem("swarm", "update", "--host", "web1", "--release",
                     str(tmp_path / "missing.tgz"), check=1)
    # Not a tarball: refused here with the updater's words, before the updater is asked
    # (its history stays as it was).
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not a tarball\n" * 100)
    hist = len(fleet.json("swarm", "history", "--host", "web3")["updater"])
    r = fleet.tandem("swarm", "update", "--host", "web3", "--release", str(junk), "--json",
                     check=1)
    e = json.loads(r.stdout)["error"]
    assert e["kind"] == "bad_format" and "not a gzip tar archive" in e["message"], e
    assert "nothing was sent" in r.stderr
    assert len(fleet.json("swarm", "history", "--host", "web3")["updater"]) == hist
    # Rollback with nothing to roll back to: the updater's 404 is shown, exit 1.
    fleet.enroll("fresh")
    fleet.start("fresh")
    doc = fleet.json("swarm", "rollback", "--host", "fresh", check=1)
    assert doc["result"] == "failed" and doc["http_status"] == 404, doc
    r = fleet.tandem("swarm", "rollback", "--host", "fresh", check=1)
    assert "rollback failed: HTTP 404" in r.stdout
    assert fleet.json("swarm", "releases", "--host", "fresh")["releases"] == []
    fleet.tandem("swarm", "rollback", check=2)
    fleet.tandem("swarm", "releases", "--host", "web1", "--host", "web2", check=2)


def test_include_self_refused_without_launcher(fleet, rel):
    """An updater that cannot replace itself (no /update-self, or no tandem-launcher above
    it): the agent update stands, the self column says why, exit 1, the updater keeps running."""
    pid = fleet.procs["web3"].pid
    doc = fleet.json("swarm", "update", "--host", "web3", "--release", rel["v1"],
                     "--include-self", check=1)
    h = doc["hosts"][0]
    assert h["agent"]["result"] == "updated", h
    assert h["self"]["result"] == "failed", h
    assert h["self"]["http_status"] in (400, 404, 409, 422, 503), h
    assert fleet.procs["web3"].alive() and fleet.procs["web3"].pid == pid
    hist = fleet.json("swarm", "history", "--host", "web3")
    assert hist["pushes"][-1]["result"] == "self_failed"
    # Not tried at all when the agent update did not succeed.
    r = fleet.tandem("swarm", "update", "--host", "web3", "--release", rel["bad"],
                     "--include-self", check=1)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("web3 ")][0]
    assert "rolled_back" in line and "skipped" in line, r.stdout


def test_include_self_with_launcher(tmp_path, rel):
    f = Fleet(tmp_path)
    try:
        f.enroll("selfie")
        f.start("selfie", launcher=["--probation-deadline", "10000",
                                    "--probation-stable", "1000", "--max-starts", "2"])
        before = f.json("swarm", "status", "--host", "selfie")["hosts"][0]["updater_version"]
        doc = f.json("swarm", "update", "--host", "selfie", "--release", rel["v2"],
                     "--include-self")
        h = doc["hosts"][0]
        assert h["agent"]["result"] == "updated" and h["self"]["result"] == "updated", h
        assert h["self"]["version"] == "2.0.0"
        st = f.json("swarm", "status", "--host", "selfie")["hosts"][0]
        assert st["updater_version"] == "2.0.0" != before
        assert st["agent_version"] == "2.0.0"
    finally:
        f.stop_all()


def test_busy_and_too_large(fleet, rel):
    """The updater's refusals reach the operator intact: 503 while another operation runs
    (with its Retry-After), 413 for a release over max_upload (answered mid-upload)."""
    fleet.enroll("busy")
    fleet.start("busy", keys={"probe_deadline": "5s"})
    slow = subprocess.Popen([bin_path("tandem"), "--home", fleet.home, "swarm", "update",
                             "--host", "busy", "--release", rel["slow"], "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: fleet.json("swarm", "status", "--host", "busy")["hosts"][0][
            "operation"], 90, "the slow update to be running")
        # The master itself refuses a second rollout of a host that one is running on.
        r = fleet.tandem("swarm", "update", "--host", "busy", "--release", rel["v1"], check=1)
        assert "held by rollout" in r.stderr, r.stderr
        # The updater's 503 and its Retry-After reach the operator (rollback asks directly).
        doc = fleet.json("swarm", "rollback", "--host", "busy", check=1)
        assert doc["http_status"] == 503 and "busy" in doc["reason"] and "retry after" in \
            doc["reason"], doc
    finally:
        out, err = slow.communicate(timeout=120)
    # Whatever the slow release came to (its /health is slower than the updater's probe
    # allows), the CLI reported it; once the host is free the push goes through.
    assert slow.returncode in (0, 1) and json.loads(out)["hosts"][0]["agent"]["result"], out
    doc = fleet.json("swarm", "update", "--host", "busy", "--release", rel["v1"])
    assert doc["hosts"][0]["agent"]["result"] == "updated"

    fleet.enroll("tiny")
    fleet.start("tiny", keys={"max_upload": "64K"})
    doc = fleet.json("swarm", "update", "--host", "tiny", "--release", rel["v1"], check=1)
    a = doc["hosts"][0]["agent"]
    assert a["http_status"] == 413 and a["result"] == "failed", a
    assert fleet.json("swarm", "status", "--host", "tiny")["hosts"][0]["active"] is None


def test_ipv6_host(tmp_path, rel):
    """A host enrolled by an IPv6 literal: daemons listen on [::1], the master reaches and
    pins them there."""
    f = Fleet(tmp_path)
    try:
        h = f.enroll("six", address="::1")
        assert h["address"] == "::1"
        with open(os.path.join(f.bundle("six"), "updater.conf")) as fp:
            conf = fp.read()
        assert "listen = [::1]:%d\n" % f.ports["six"][1] in conf
        assert "agent_probe = [::1]:%d\n" % f.ports["six"][0] in conf
        f.start("six")
        doc = f.json("swarm", "update", "--host", "six", "--release", rel["v1"])
        assert doc["hosts"][0]["agent"]["result"] == "updated"
        st = f.json("swarm", "status")["hosts"][0]
        assert st["pin_ok"] is True and st["agent_version"] == "1.0.0"
    finally:
        f.stop_all()


def test_one_host_rolls_back_while_others_update(tmp_path, rel):
    """One `swarm update --all`: the same release passes its probe on two hosts and fails it on
    the third (its agent inherits TANDEM_SLOW_MS beyond the updater's 2 s probe request limit),
    which is rolled back; exit 1 and the table says which host."""
    f = Fleet(tmp_path)
    try:
        for name, slow_ms in (("a1", "10"), ("a2", "6000"), ("a3", "10")):
            f.enroll(name)
            f.start(name, keys={"probe_deadline": "3s"}, env={"TANDEM_SLOW_MS": slow_ms})
        f.json("swarm", "update", "--all", "--release", rel["v1"])
        # No canary and no failure threshold: every host is attempted (the rollout's
        # default would stop at the first failure).
        r = f.tandem("swarm", "update", "--all", "--release", rel["slow"], "--canary", "0",
                     "--max-failures", "100%", check=1)
        rows = {ln.split()[0]: ln for ln in r.stdout.splitlines()[1:4]}
        assert "updated" in rows["a1"] and "4.0.0" in rows["a1"], r.stdout
        assert "rolled_back" in rows["a2"] and "1.0.0" in rows["a2"], r.stdout
        assert "updated" in rows["a3"] and "4.0.0" in rows["a3"], r.stdout
        assert "a2: new release failed, previous restored" in r.stdout
        # The tally line, and each host's time in the progress lines (not a terminal: plain).
        assert re.search(r"^updated 2, rolled back 1, failed 0 in \d+\.\d s$", r.stdout, re.M), \
            r.stdout
        for name, word in (("a1", "updated"), ("a2", "rolled_back"), ("a3", "updated")):
            assert re.search(r"^%s: %s.*\((\d+)\.\d s\)$" % (name, word), r.stderr, re.M), \
                r.stderr
        assert "\x1b[" not in r.stderr
        st = hosts_by_name(f.json("swarm", "status"))
        assert st["a2"]["active"]["version"] == "1.0.0"
        assert st["a1"]["active"]["version"] == st["a3"]["active"]["version"] == "4.0.0"
    finally:
        f.stop_all()


def run_on_terminal(argv, timeout=120):
    """Run ARGV with stdout and stderr on a pseudo-terminal; returns (exit code, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            assert ready, "no output for %d s" % timeout
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    return proc.wait(timeout=timeout), out.decode(errors="replace")


def test_progress_on_a_terminal(tmp_path, rel):
    """On a terminal the host lines are redrawn in place with their elapsed time; the
    report ends with the tally line; --json carries the elapsed time."""
    f = Fleet(tmp_path)
    try:
        for name in ("t1", "t2"):
            f.enroll(name)
            f.start(name)
        rc, out = run_on_terminal([bin_path("tandem"), "--home", f.home, "swarm", "update",
                                   "--all", "--release", rel["v1"]])
        assert rc == 0, out
        assert "\x1b[" in out and "\r" in out, out
        # Running hosts show their phase and time; finished ones fold into the counter.
        for name in ("t1", "t2"):
            assert re.search(r"\x1b\[K%s: [a-z/ ]+ \(\d+\.\d s\)\r?\n" % name, out), out
        assert "\x1b[2A" in out, out
        assert re.search(r"updated 2, rolled back 0, failed 0 in \d+\.\d s", out), out
        j = f.json("swarm", "update", "--all", "--release", rel["v1"])
        assert isinstance(j["elapsed_ms"], int) and j["elapsed_ms"] >= 0, j
        assert {h["host"] for h in j["hosts"]} == {"t1", "t2"}
        r = f.tandem("swarm", "update", "--all", "--release", rel["v1"], check=0)
        assert re.search(r"^updated 0, rolled back 0, failed 0, already active 2 in \d+\.\d s$",
                         r.stdout, re.M), r.stdout
    finally:
        f.stop_all()
