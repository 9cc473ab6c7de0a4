"""End-to-end tests of idempotent pushes on one real tandem-updater + tandem-agent pair:
a push of the release a host already runs is `already_active` (nothing reinstalled, the agent
not restarted, prev kept), `--force` reinstalls it without losing the rollback point, a
rollback to a copy of the running release is refused, and request ids let a client learn what
became of a request (GET /history?request_id=, the same id in the rollout's host row)."""

import json
import os
import subprocess

import pytest

from swarm_util import Fleet, hosts_by_name, make_release
from worker_util import curl_run


@pytest.fixture(scope="module")
def rel(build_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("releases"))
    return {
        "v1": make_release(build_dir, "1.0.0", out),
        "v2": make_release(build_dir, "2.0.0", out),
    }


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, rel):
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        f.enroll("h1")
        f.start("h1")
        for v in ("v1", "v2"):
            doc = f.json("swarm", "update", "--hosts", "h1", "--release", rel[v])
            assert doc["ok"] is True, doc
        yield f
    finally:
        f.stop_all()


def sha256(path):
    return subprocess.run(["sha256sum", path], capture_output=True, text=True,
                          check=True).stdout.split()[0]


def curl(fleet, method, path, *form, expect=200):
    """METHOD https://127.0.0.1:PORT/PATH on h1's updater with the master's certificate."""
    home = fleet.home
    extra = []
    for f in form:
        extra += ["-F", f]
    r = curl_run("https://127.0.0.1:%d%s" % (fleet.ports["h1"][1], path), home + "/ca/ca.crt",
                 (home + "/master/master.crt", home + "/master/master.key"), *extra,
                 method=method, max_time=90)
    assert r.rc == 0, r.stderr
    assert r.status == expect, (path, r.status, r.body)
    return json.loads(r.body)


def slots(fleet):
    """{"active": release, "prev": release} as the updater reports them."""
    return {r["slot"]: r for r in curl(fleet, "GET", "/releases")["releases"]}


def agent_restarts(fleet):
    return curl(fleet, "GET", "/health")["agent"]["restarts"]


def test_push_of_the_active_release_is_already_active(fleet, rel):
    health = curl(fleet, "GET", "/health")
    assert {"request_id", "already_active"} <= set(health["features"])
    before = slots(fleet)
    assert before["active"]["version"] == "2.0.0" and before["prev"]["version"] == "1.0.0"
    restarts = agent_restarts(fleet)
    n_hist = len(curl(fleet, "GET", "/history")["history"])

    # Through the CLI: reported as already_active, exit 0.
    doc = fleet.json("swarm", "update", "--hosts", "h1", "--release", rel["v2"])
    assert hosts_by_name(doc)["h1"]["agent"]["result"] == "already_active", doc
    assert doc["ok"] is True

    # Straight to the updater (as a client that does not look first): the same answer.
    out = curl(fleet, "POST", "/update", "sha=2.0.0", "sha256=" + sha256(rel["v2"]),
               "request_id=curl-1", "tarball=@" + rel["v2"])
    assert out["status"] == "already_active", out
    assert out["release"]["id"] == before["active"]["id"]
    after = slots(fleet)
    assert after["active"]["id"] == before["active"]["id"]
    assert after["prev"]["id"] == before["prev"]["id"]
    assert agent_restarts(fleet) == restarts
    hist = curl(fleet, "GET", "/history?request_id=curl-1")["history"]
    assert [(h["result"], h["request_id"], h["version"]) for h in hist] == \
        [("already_active", "curl-1", "2.0.0")]
    assert len(curl(fleet, "GET", "/history")["history"]) == n_hist + 1
    assert curl(fleet, "GET", "/history?request_id=never-sent")["history"] == []
    # Hostile ids are refused, nothing recorded.
    bad = curl(fleet, "GET", "/history?request_id=a%2Fb", expect=400)
    assert "request_id" in bad["detail"]["error"]
    bad = curl(fleet, "POST", "/update", "sha=x", "sha256=" + sha256(rel["v2"]),
               "request_id=" + "x" * 37, "tarball=@" + rel["v2"], expect=400)
    assert bad["detail"]["field"] == "request_id"
    bad = curl(fleet, "POST", "/update", "sha=x", "sha256=" + sha256(rel["v2"]),
               "force=maybe", "tarball=@" + rel["v2"], expect=400)
    assert bad["detail"]["field"] == "force"
    assert slots(fleet)["active"]["id"] == before["active"]["id"]


def test_force_reinstalls_and_keeps_the_rollback_point(fleet, rel):
    before = slots(fleet)
    assert before["active"]["version"] == "2.0.0"
    doc = fleet.json("swarm", "update", "--hosts", "h1", "--release", rel["v2"], "--force")
    assert hosts_by_name(doc)["h1"]["agent"]["result"] == "updated", doc
    after = slots(fleet)
    assert after["active"]["version"] == "2.0.0"
    assert after["active"]["id"] != before["active"]["id"]  # a new install
    assert after["prev"]["id"] == before["prev"]["id"]      # 1.0.0 is still the way back
    # The push carried the rollout's request id: the updater's history has it.
    rid = doc["rollout"]["id"]
    row = fleet.json("swarm", "rollout", "status", rid)["host_rows"][0]
    assert row["request_id"], row
    hist = curl(fleet, "GET", "/history?request_id=" + row["request_id"])["history"]
    assert [h["result"] for h in hist] == ["updated"]
    # And the way back works.
    r = fleet.json("swarm", "rollback", "--host", "h1")
    assert r["result"] == "rolled_back", r
    assert slots(fleet)["active"]["version"] == "1.0.0"


def test_rollback_to_a_copy_of_the_running_release_is_refused(fleet, rel):
    # As an older updater left it (pushed twice): prev is the release that runs.
    cur = slots(fleet)
    install = fleet.install_dir("h1")
    path = os.path.join(install, "releases", "prev", "release.json")
    with open(path) as f:
        rec = json.load(f)
    rec["sha256"] = cur["active"]["sha256"]
    with open(path, "w") as f:
        json.dump(rec, f)
    # The CLI says so and exits non-zero.
    r = fleet.tandem("swarm", "rollback", "--host", "h1")
    assert r.returncode != 0
    assert "nothing to roll back to" in r.stderr
    # The updater refuses it too (a client that does not look first).
    out = curl(fleet, "POST", "/rollback?request_id=rb-1", expect=409)
    assert "nothing to roll back to" in out["detail"]["error"]
    assert [h["result"] for h in
            curl(fleet, "GET", "/history?request_id=rb-1")["history"]] == ["refused"]
    assert slots(fleet)["active"]["id"] == cur["active"]["id"]
