"""The master's crash sweep: a test build of `tandem` stops itself (as kill -9 would) at
every persisted step of a rollout (TANDEM_TEST_CRASH_AT=rollout.<point>, see
master/rollout.h); `tandem swarm rollout resume` then ends with the same host rows as a
run that was never interrupted, and no host installed the release more than once (from
the updaters' own histories, state/history.jsonl).

The scenario reaches every point: four real updater+agent pairs on 127.0.0.1, a canary,
waves 50 %,100 %, a 1 s soak, one host at a time, and a release that fails on the third
host (a fail-marker build), with --on-halt revert: canary and wave 2 updated, the third
host rolled back by its updater, the rollout halts, the two updated hosts are reverted
newest wave first, the fourth host is never tried.

make check runs a bounded set of points; `make rollout-sweep` (TANDEM_ROLLOUT_SWEEP=full)
runs all of them."""

import json
import os

import pytest

from swarm_util import Fleet, hosts_by_name, make_release, tandem

HOSTS = ["s0", "s1", "s2", "s3"]
ALL_POINTS = ["created", "dispatched", "answered", "committed", "soak_started",
              "gate_passed", "wave_passed", "halted", "revert_dispatched", "reverted"]
SMOKE_POINTS = ["created", "dispatched", "answered", "halted", "revert_dispatched"]
POINTS = ALL_POINTS if os.environ.get("TANDEM_ROLLOUT_SWEEP") == "full" else SMOKE_POINTS
CRASH_STATUS = 86


@pytest.fixture(scope="module")
def rel(build_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("releases"))
    return {
        "v1": make_release(build_dir, "1.0.0", out),
        "marker": make_release(build_dir, "4.0.0", out, kind="fail-marker"),
    }


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, rel):
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        for name in HOSTS:
            f.enroll(name)
            f.start(name)
        f.json("swarm", "update", "--all", "--release", rel["v1"], "--canary", "0",
               "--waves", "100%", "--parallel", "4")
        yield f
    finally:
        f.stop_all()


def updater_histories(fleet):
    """Each updater's own history (INSTALL/state/history.jsonl, what GET /history
    serves), oldest first: read from its file, not through a CLI run per host
    (eight per crash point)."""
    out = {}
    for h in HOSTS:
        path = os.path.join(fleet.install_dir(h), "state", "history.jsonl")
        with open(path) as f:
            out[h] = [json.loads(line) for line in f if line.strip()]
    return out


def run_scenario(fleet, rel, point):
    """One rollout of the failing release, stopped at POINT (None: not at all) and resumed.
    Returns its normalised rows and each host's new updater history entries."""
    before = updater_histories(fleet)
    crash = {"TANDEM_TEST_CRASH_AT": "rollout." + point} if point else {}
    args = ["swarm", "update", "--all", "--release", rel["marker"], "--canary", "1",
            "--waves", "50%,100%", "--soak", "1s", "--on-halt", "revert", "--parallel", "1",
            "--paused", "--json"]
    r = tandem(fleet.home, *args, env=crash if point == "created" else None)
    if point == "created":
        assert r.returncode == CRASH_STATUS, r.stderr
        rid = fleet.json("swarm", "rollout", "list")["rollouts"][0]["id"]
    else:
        assert r.returncode == 3, r.stderr
        rid = json.loads(r.stdout)["id"]
    plan = fleet.json("swarm", "rollout", "status", rid)
    assert [w["hosts"] for w in plan["wave_plan"]] == [1, 1, 2]
    third = [h["host"] for h in plan["host_rows"] if h["seq"] == 3][0]
    marker = os.path.join(fleet.bundle(third), "fail-marker")
    open(marker, "w").close()
    try:
        if point and point != "created":
            r = tandem(fleet.home, "swarm", "rollout", "resume", rid, env=crash)
            assert r.returncode == CRASH_STATUS, (point, r.returncode, r.stdout, r.stderr)
            mid = fleet.json("swarm", "rollout", "status", rid)
            assert mid["finished_at"] is None, mid
            if point == "dispatched":
                assert mid["counts"].get("dispatched") == 1, mid["counts"]
            if point == "revert_dispatched":
                assert mid["counts"].get("reverting") == 1, mid["counts"]
        r = tandem(fleet.home, "swarm", "rollout", "resume", rid, "--json")
        assert r.returncode == 1, (point, r.stdout, r.stderr)
    finally:
        os.unlink(marker)
    doc = fleet.json("swarm", "rollout", "status", rid)
    assert doc["state"] == "halted" and doc["finished_at"], doc
    rows = [(h["seq"], h["wave"], h["state"], h["agent"]["result"], h["agent"]["version"])
            for h in sorted(doc["host_rows"], key=lambda x: x["seq"])]
    after = updater_histories(fleet)
    new = {h: after[h][len(before[h]):] for h in HOSTS}
    return rows, new, doc


def test_crash_sweep_resume_gives_the_same_rows(fleet, rel):
    reference, new, doc = run_scenario(fleet, rel, None)
    assert [r[2] for r in reference] == ["reverted", "reverted", "rolled_back", "skipped"], \
        (reference, doc["reason"], [e for e in fleet.json("swarm", "rollout", "events",
                                                       doc["id"])["events"]
                                    if e["kind"] in ("host", "halted", "soak")])
    assert doc["summary"] == "halted (2 of 4 updated, 2 reverted)", doc
    for point in POINTS:
        rows, new, doc = run_scenario(fleet, rel, point)
        assert rows == reference, (point, rows, reference, doc["reason"],
                                   fleet.json("swarm", "rollout", "events", doc["id"]))
        for host, entries in new.items():
            installs = [e for e in entries if e.get("kind") == "update" and
                        e.get("result") == "updated"]
            assert len(installs) <= 1, (point, host, entries)
        st = hosts_by_name(fleet.json("swarm", "status"))
        assert {h: s["active"]["version"] for h, s in st.items()} == \
            {h: "1.0.0" for h in HOSTS}, (point, st)
