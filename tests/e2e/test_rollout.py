"""End-to-end tests of rollouts: `tandem swarm update` as a rollout (canary, waves, gates,
halt and revert), `swarm rollout ...`, labels, targets and converge, against ten real
tandem-updater + tandem-agent pairs on 127.0.0.1 started from the bundles `swarm enroll`
wrote (tests/e2e/swarm_util.py), with releases from `make release` (good ones, and the
broken kinds of agent/broken.h)."""

import json
import os
import signal
import subprocess

import pytest

from conftest import bin_path, sigint_live, wait_until
from swarm_util import Fleet, hosts_by_name, make_release

HOSTS = ["r%02d" % i for i in range(10)]


@pytest.fixture(scope="module")
def rel(build_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("releases"))
    return {
        "v1": make_release(build_dir, "1.0.0", out),
        "v2": make_release(build_dir, "2.0.0", out),
        "bad": make_release(build_dir, "3.0.0", out, kind="exit-at-once"),
        "marker": make_release(build_dir, "4.0.0", out, kind="fail-marker"),
        "crash": make_release(build_dir, "5.0.0", out, kind="crash-later"),
    }


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, rel):
    """Ten hosts, all running 1.0.0. A crash-later agent exits 2.3 s after it is ready:
    2 s after the probe's 300 ms stability window."""
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        for i, name in enumerate(HOSTS):
            f.enroll(name, extra=["--label", "ring=%s" % ("a" if i < 5 else "b")])
            f.start(name, env={"TANDEM_CRASH_AFTER_MS": "2300"})
        doc = f.json("swarm", "update", "--all", "--release", rel["v1"], "--canary", "0",
                     "--waves", "100%", "--parallel", "10")
        assert doc["ok"] is True, doc
        yield f
    finally:
        f.stop_all()


def history(fleet, host):
    return fleet.json("swarm", "history", "--host", host)["updater"]


def histories(fleet):
    return {h: history(fleet, h) for h in HOSTS}


def status(fleet, sel="all"):
    return hosts_by_name(fleet.json("swarm", "status", "--hosts", sel, "--parallel", "10"))


def active(fleet, sel="all"):
    return {h: (s["active"] or {}).get("version") for h, s in status(fleet, sel).items()}


def rollout(fleet, rid):
    return fleet.json("swarm", "rollout", "status", rid)


def rows(doc):
    return {r["host"]: r for r in doc["host_rows"]}


def clear_markers(fleet):
    for h in HOSTS:
        p = os.path.join(fleet.bundle(h), "fail-marker")
        if os.path.exists(p):
            os.unlink(p)


def back_to_v1(fleet, rel, sel="all"):
    """Every selected host on 1.0.0 again, whatever a test left (no brakes)."""
    fleet.json("swarm", "update", "--hosts", sel, "--release", rel["v1"], "--canary", "0",
               "--waves", "100%", "--max-failures", "100%", "--parallel", "10")
    assert set(active(fleet, sel).values()) == {"1.0.0"}


# ---------------------------------------------------------------- the defaults

def test_default_stops_a_failing_release_at_the_canary(fleet, rel):
    """10 hosts, a release that exits at once, no options: exactly one host attempted,
    halted, the nine others untouched (their /history has no new entry), exit 1."""
    before = histories(fleet)
    r = fleet.tandem("swarm", "update", "--all", "--release", rel["bad"], "--json", check=1)
    doc = json.loads(r.stdout)
    ro = doc["rollout"]
    assert ro["state"] == "halted" and doc["ok"] is False, ro
    assert ro["summary"] == "halted (0 of 10 updated)", ro
    assert "canary" in ro["reason"], ro
    attempted = [h for h in doc["hosts"] if h["state"] != "pending"]
    assert len(attempted) == 1, attempted
    assert attempted[0]["state"] == "rolled_back" and attempted[0]["wave"] == 1
    assert attempted[0]["agent"]["result"] == "rolled_back"
    after = histories(fleet)
    changed = [h for h in HOSTS if len(after[h]) != len(before[h])]
    assert changed == [attempted[0]["host"]], changed
    assert set(active(fleet).values()) == {"1.0.0"}
    # The halted rollout holds its hosts and says how to go on.
    r = fleet.tandem("swarm", "rollout", "status", ro["id"][:6], check=0)
    assert "halted" in r.stdout and "canary" in r.stdout
    fleet.json("swarm", "rollout", "abort", ro["id"])
    doc = rollout(fleet, ro["id"])
    assert doc["state"] == "aborted" and doc["counts"].get("skipped") == 9, doc


def test_dry_run_shows_the_waves(fleet, rel):
    doc = fleet.json("swarm", "update", "--all", "--dry-run", "--release", rel["v2"])
    assert doc["waves"] == [1, 4, 5], doc  # canary 1; 10 % adds nothing; 50 %, 100 %
    doc = fleet.json("swarm", "update", "--all", "--dry-run", "--release", rel["v2"],
                     "--canary", "0", "--waves", "1,30%,100%")
    assert doc["waves"] == [1, 2, 7], doc
    # A dry run records nothing.
    n = len(fleet.json("swarm", "rollout", "list")["rollouts"])
    fleet.json("swarm", "update", "--all", "--dry-run", "--release", rel["v2"])
    assert len(fleet.json("swarm", "rollout", "list")["rollouts"]) == n


# ---------------------------------------------------------------- halt and revert

def test_named_failures_halt_at_the_threshold_and_revert(fleet, rel):
    """A release that fails on 3 named hosts, --waves 10%,50%,100% --max-failures 20%
    --on-halt revert: halted at the threshold, every host it updated back on 1.0.0."""
    r = fleet.tandem("swarm", "update", "--all", "--release", rel["marker"], "--waves",
                     "10%,50%,100%", "--max-failures", "20%", "--on-halt", "revert",
                     "--paused", "--json", check=3)
    rid = json.loads(r.stdout)["id"]
    plan = rollout(fleet, rid)
    assert plan["state"] == "paused" and [w["hosts"] for w in plan["wave_plan"]] == [1, 4, 5]
    by_wave = {}
    for row in plan["host_rows"]:
        by_wave.setdefault(row["wave"], []).append(row["host"])
    # Two failing hosts in wave 2 and one in wave 3: after wave 2, 2 of 5 attempted hosts
    # failed (40 % > 20 %, the minimum sample of 5 reached): halt there.
    failing = by_wave[2][:2] + by_wave[3][:1]
    for h in failing:
        open(os.path.join(fleet.bundle(h), "fail-marker"), "w").close()
    try:
        r = fleet.tandem("swarm", "rollout", "resume", rid, "--json", check=1)
    finally:
        clear_markers(fleet)
    doc = json.loads(r.stdout)
    ro = doc["rollout"]
    assert ro["state"] == "halted" and "2 of 5" in ro["reason"], ro
    assert ro["summary"] == "halted (3 of 10 updated, 3 reverted)", ro
    rs = {h["host"]: h for h in doc["hosts"]}
    updated = by_wave[1] + [h for h in by_wave[2] if h not in failing]
    for h in updated:
        assert rs[h]["state"] == "reverted", rs[h]
    for h in failing[:2]:
        assert rs[h]["state"] == "rolled_back", rs[h]
    for h in by_wave[3]:
        assert rs[h]["state"] == "skipped", rs[h]
    # Every host is on 1.0.0: the reverted ones by the master, the failing ones by themselves.
    assert set(active(fleet).values()) == {"1.0.0"}
    # The revert went newest wave first.
    ev = fleet.json("swarm", "rollout", "events", rid)["events"]
    reverted = [e["host"] for e in ev if e["kind"] == "host" and e["data"]["state"] == "reverted"]
    assert reverted[-1] == by_wave[1][0], reverted


GATE = r"""#!/usr/bin/python3
# The gate after wave 1: note the environment; move the first host of wave 1 on behind the
# master's back (2.0.0, then the rollout's release again: it runs that release, but its
# prev is 2.0.0 now); mark the first host of wave 2 so that the release fails there.
import json, os, subprocess, sys
home, tandem, note, v2, marker = sys.argv[1:6]
rid, wave = os.environ["TANDEM_ROLLOUT_ID"], os.environ["TANDEM_WAVE"]
doc = json.loads(subprocess.run([tandem, "--home", home, "swarm", "rollout", "status", rid,
                                 "--json"], capture_output=True, text=True, check=True).stdout)
w1 = [r["host"] for r in doc["host_rows"] if r["wave"] == 1]
w2 = [r["host"] for r in doc["host_rows"] if r["wave"] == 2]
port = json.loads(subprocess.run([tandem, "--home", home, "swarm", "show", w1[0], "--json"],
                                 capture_output=True, text=True, check=True).stdout)["updater_port"]
for path, version in ((v2, "2.0.0"), (marker, "4.0.0")):
    sha = subprocess.run(["sha256sum", path], capture_output=True, text=True,
                         check=True).stdout.split()[0]
    subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "--cacert", home + "/ca/ca.crt",
                    "--cert", home + "/master/master.crt", "--key", home + "/master/master.key",
                    "-F", "sha=" + version, "-F", "sha256=" + sha, "-F", "tarball=@" + path,
                    "https://127.0.0.1:%d/update" % port], check=True)
open(os.path.join(home, "hosts", w2[0], "fail-marker"), "w").close()
with open(note, "w") as f:
    f.write("%s %s %s %s\n" % (rid, wave, w1[0], w2[0]))
"""


def test_gate_command_and_revert_only_where_prev_is_unchanged(fleet, rel, tmp_path):
    """The gate command runs between waves with the rollout's id and wave in its
    environment; a revert rolls back only hosts whose prev is still the release before
    the rollout (else revert-skipped)."""
    back_to_v1(fleet, rel, "ring=a")
    note = tmp_path / "gate.note"
    gate = tmp_path / "gate.py"
    gate.write_text(GATE)
    gate.chmod(0o755)
    cmd = "%s %s %s %s %s %s" % (gate, fleet.home, bin_path("tandem"), note, rel["v2"],
                                 rel["marker"])
    try:
        doc = fleet.json("swarm", "update", "--hosts", "ring=a", "--release", rel["marker"],
                         "--canary", "0", "--waves", "60%,100%", "--on-halt", "revert",
                         "--gate-cmd", cmd, check=1)
    finally:
        clear_markers(fleet)
    rid, wave, moved, failing = note.read_text().split()
    ro = doc["rollout"]
    assert rid == ro["id"] and wave == "1", (rid, wave)
    assert ro["state"] == "halted", ro
    rs = {h["host"]: h for h in doc["hosts"]}
    assert rs[failing]["state"] == "rolled_back", rs[failing]
    assert rs[moved]["state"] == "revert_skipped", rs[moved]
    assert "prev changed" in rs[moved]["agent"]["reason"], rs[moved]
    # The other hosts were updated (the second host of wave 2 alongside the failing one)
    # and are reverted.
    others = [h for h in rs if h not in (moved, failing)]
    assert len(others) == 3
    for h in others:
        assert rs[h]["state"] == "reverted", rs[h]
    assert ro["summary"] == "halted (4 of 5 updated, 3 reverted)", ro
    st = active(fleet, "ring=a")
    assert st[moved] == "4.0.0" and st[failing] == "1.0.0", st
    # A gate command that fails halts the rollout, with its last line as the reason.
    doc = fleet.json("swarm", "update", "--hosts", "ring=a", "--release", rel["v2"],
                     "--canary", "1", "--gate-cmd", "echo metrics look bad; exit 3", check=1)
    assert doc["rollout"]["state"] == "halted", doc["rollout"]
    assert "exited with status 3" in doc["rollout"]["reason"], doc["rollout"]
    assert "metrics look bad" in doc["rollout"]["reason"], doc["rollout"]
    fleet.json("swarm", "rollout", "abort", doc["rollout"]["id"])
    back_to_v1(fleet, rel, "ring=a")


# ---------------------------------------------------------------- soak

def test_soak_catches_a_crash_after_the_stability_window(fleet, rel):
    """A release that passes the probe and crashes 2 s after the stability window, --soak 5s:
    the soak gate sees it, the rollout halts before the next wave."""
    doc = fleet.json("swarm", "update", "--hosts", "ring=b", "--release", rel["crash"],
                     "--soak", "5s", check=1)
    ro = doc["rollout"]
    assert ro["state"] == "halted" and "canary" in ro["reason"], ro
    hs = [h for h in doc["hosts"] if h["state"] != "pending"]
    assert len(hs) == 1 and hs[0]["state"] == "soak_failed", hs
    assert "soak" in hs[0]["agent"]["reason"], hs[0]
    # Abort with revert: the soak-failed host goes back to 1.0.0.
    fleet.json("swarm", "rollout", "abort", ro["id"], "--revert")
    doc = rollout(fleet, ro["id"])
    assert doc["state"] == "aborted", doc
    assert rows(doc)[hs[0]["host"]]["state"] == "reverted"
    assert set(active(fleet, "ring=b").values()) == {"1.0.0"}


# ---------------------------------------------------------------- desired state

def test_converge_updates_exactly_the_hosts_that_differ(fleet, rel):
    """target set + converge; after a manual rollback on one host, converge updates exactly
    that host; a second converge does nothing."""
    sel = "ring=a"
    back_to_v1(fleet, rel, sel)
    fleet.json("swarm", "target", "set", "--hosts", sel, "--release", rel["v2"])
    targets = fleet.json("swarm", "target", "list", "--hosts", sel)["targets"]
    assert {t["label"] for t in targets} == {"agent-2.0.0-good"}
    r = fleet.tandem("swarm", "converge", "--hosts", sel, "--canary", "0", "--waves", "100%",
                     check=0)
    assert set(active(fleet, sel).values()) == {"2.0.0"}, r.stdout
    one = sorted(active(fleet, sel))[2]
    fleet.json("swarm", "rollback", "--host", one)
    n_rollouts = len(fleet.json("swarm", "rollout", "list")["rollouts"])
    doc = fleet.json("swarm", "converge", "--hosts", sel)
    assert [h["host"] for h in doc["hosts"] if h["state"] == "updated"] == [one], doc
    assert len(doc["hosts"]) == 1
    assert len(fleet.json("swarm", "rollout", "list")["rollouts"]) == n_rollouts + 1
    r = fleet.tandem("swarm", "converge", "--hosts", sel, check=0)
    assert "nothing to do" in r.stdout, r.stdout
    assert len(fleet.json("swarm", "rollout", "list")["rollouts"]) == n_rollouts + 1
    fleet.json("swarm", "target", "clear", "--hosts", sel)
    back_to_v1(fleet, rel, sel)


# ---------------------------------------------------------------- windows, pause, leases

def test_outside_the_window_nothing_is_dispatched(fleet, rel):
    before = histories(fleet)
    # 2026-12-07 is a Monday; 05:00 UTC is outside 01:00-04:00.
    env = dict(os.environ, TANDEM_TEST_NOW="2026-12-07T05:00:00Z")
    p = subprocess.Popen([bin_path("tandem"), "--home", fleet.home, "swarm", "update",
                          "--hosts", "ring=b", "--release", rel["v2"], "--window",
                          "Mon-Fri 01:00-04:00 UTC", "--json-lines"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        def waiting():
            ls = fleet.json("swarm", "rollout", "list")["rollouts"]
            return ls[0] if ls and ls[0]["state"] == "waiting_window" else None
        ro = wait_until(waiting, 30, "the rollout to wait for its window")
        assert "2026-12-08T01:00:00Z" in ro["reason"], ro
        # A second driver is refused while this one holds the lease.
        r = fleet.tandem("swarm", "rollout", "resume", ro["id"], check=1)
        assert "driven by" in r.stderr, r.stderr
        r = fleet.tandem("swarm", "rollout", "pause", ro["id"], check=0)
        assert "pause requested" in r.stdout, r.stdout
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    # Paused by another command, not interrupted: the documented "not finished".
    assert p.returncode == 3, err
    last = json.loads(out.splitlines()[-1])
    assert last["type"] == "rollout" and last["state"] == "paused", last
    assert histories(fleet) == before
    assert rollout(fleet, ro["id"])["counts"] == {"pending": 5}
    fleet.json("swarm", "rollout", "abort", ro["id"])


def test_interrupt_and_resume(fleet, rel):
    """SIGINT stops dispatching; hosts in flight finish; resume goes on from there."""
    back_to_v1(fleet, rel, "ring=b")
    p = subprocess.Popen([bin_path("tandem"), "--home", fleet.home, "swarm", "update",
                          "--hosts", "ring=b", "--release", rel["v2"], "--canary", "1",
                          "--waves", "100%", "--parallel", "1", "--json-lines"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=sigint_live)
    lines = []
    try:
        # The first host result: then interrupt.
        while True:
            line = p.stdout.readline()
            assert line, p.stderr.read()
            lines.append(json.loads(line))
            if lines[-1]["type"] == "host":
                break
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    # Reported, then ended by the SIGINT itself, so a calling shell stops too.
    assert p.returncode == -signal.SIGINT, err
    last = json.loads(out.splitlines()[-1])
    rid = last["id"]
    assert last["state"] == "running" and last["counts"].get("pending", 0) >= 1, last
    doc = fleet.json("swarm", "rollout", "resume", rid)
    assert doc["rollout"]["state"] == "done" and doc["ok"] is True, doc
    assert set(active(fleet, "ring=b").values()) == {"2.0.0"}
    back_to_v1(fleet, rel, "ring=b")


# ---------------------------------------------------------------- labels and views

def test_labels_select_and_views(fleet, rel):
    fleet.json("swarm", "label", "r03", "role=db")
    r = fleet.tandem("swarm", "label", "r03", "Bad=x", check=2)
    assert "label" in r.stderr
    show = fleet.json("swarm", "show", "r03")
    assert show["labels"] == {"ring": "a", "role": "db"}
    st = fleet.json("swarm", "status", "--hosts", "ring=a,role!=db")
    assert sorted(h["host"] for h in st["hosts"]) == ["r00", "r01", "r02", "r04"]
    fleet.tandem("swarm", "status", "--hosts", "nosuch=label", check=1)
    lines = fleet.tandem("swarm", "status", "--hosts", "r01,r02", "--json-lines",
                         check=0).stdout.splitlines()
    assert sorted(json.loads(ln)["host"] for ln in lines) == ["r01", "r02"]
    fleet.json("swarm", "label", "r03", "role-")
    # A push of the release a host already runs: already_active, prev kept.
    before = status(fleet, "r04")["r04"]
    doc = fleet.json("swarm", "update", "--host", "r04", "--release", rel["v1"])
    assert doc["hosts"][0]["agent"]["result"] == "already_active", doc
    after = status(fleet, "r04")["r04"]
    assert after["prev"] == before["prev"] and after["active"] == before["active"]
    # The views of a rollout.
    rid = doc["rollout"]["id"]
    r = fleet.tandem("swarm", "rollout", "list", check=0)
    assert rid in r.stdout
    r = fleet.tandem("swarm", "rollout", "watch", rid, check=0)
    assert "done (0 of 1 updated, 1 already active)" in r.stdout, r.stdout
    lines = fleet.tandem("swarm", "rollout", "watch", rid, "--json-lines",
                         check=0).stdout.splitlines()
    assert json.loads(lines[-1])["state"] == "done"
    assert {json.loads(ln)["kind"] for ln in lines[:-1]} >= {"created", "host", "done"}
    fleet.tandem("swarm", "rollout", "status", "zzzz", check=2)
    # A well-formed id no rollout has: ids are random hex, so a fixed one (it was
    # "abcd") is the prefix of a real id once in about 6 500 runs of this module.
    ids = [r["id"] for r in fleet.json("swarm", "rollout", "list")["rollouts"]]
    assert len(ids) < 50, "rollout list shows only the newest 50: %d" % len(ids)
    unknown = next(p for p in ("%04x" % n for n in range(0xabcd, 0x10000))
                   if not any(i.startswith(p) for i in ids))
    fleet.tandem("swarm", "rollout", "status", unknown, check=1)
    fleet.tandem("swarm", "rollout", "frobnicate", rid, check=2)
