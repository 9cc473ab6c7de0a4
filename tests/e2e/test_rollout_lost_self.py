"""End-to-end tests of self-updates (`swarm update --include-self`) whose connection breaks:
tandem-updater under tandem-launcher, reached through test_rollout_lost's proxy, which cuts
the POST /update-self only. The updater records the queued self-update under the master's
request id before it answers, and the launcher records the end of the probation (committed,
reverted) under the same id: the master settles a lost answer from that history, sends again
a self-update the updater never took, and falls back to the full release when the lost
answer was the refusal of a delta. A master that dies after the agent's push settles the
self-update the same way when the rollout is resumed (TANDEM_TEST_CRASH_AT)."""

import json
import os

import pytest

from conftest import free_port
from release_util import sha256_file
from swarm_util import Fleet, hosts_by_name, tandem
from test_delta_self import srels, updater_log  # noqa: F401 (a fixture)
from test_rollout_idempotent import curl
from test_rollout_lost import CutProxy, start_behind_proxy

CRASH_STATUS = 86
LAUNCHER = ["--probation-deadline", "10000", "--probation-stable", "300", "--max-starts", "2"]


@pytest.fixture(scope="module")
def sfleet(tmp_path_factory, srels):  # noqa: F811
    """h1 under tandem-launcher behind the proxy, its agent and updater on S1 (2.0)."""
    f = Fleet(tmp_path_factory.mktemp("sfleet"))
    proxy = CutProxy(free_port())
    try:
        start_behind_proxy(f, proxy, launcher=LAUNCHER)
        doc = f.json("swarm", "update", "--hosts", "h1", "--release", srels["s1"][0],
                     "--include-self")
        assert doc["ok"] is True and doc["hosts"][0]["self"]["result"] == "updated", doc
        yield f
    finally:
        proxy.close()
        f.stop_all()


def updater_release(fleet):
    with open(os.path.join(fleet.install_dir("h1"), "updater", "releases", "active",
                           "release.json")) as f:
        return json.load(f)["sha256"]


def self_history(fleet, rid=None):
    return [h for h in fleet.json("swarm", "history", "--host", "h1")["updater"]
            if h["kind"] == "update-self" and (rid is None or h.get("request_id") == rid)]


def handovers(fleet):
    """Self-updates this host's updaters queued (each one a launcher handover)."""
    return updater_log(fleet, "h1").count("queued, handing over")


def self_uploads(fleet, n):
    return [u for u in fleet.proxy.uploads[n:] if u["path"] == "/update-self"]


def include_self(fleet, release, *extra, check=0):
    return fleet.json("swarm", "update", "--hosts", "h1", "--release", release,
                      "--include-self", *extra, check=check)


def test_self_answer_lost_settled_from_history(sfleet, srels):
    """The updater queued the self-update and handed over, but its answer never arrived:
    reported updated (the launcher committed it), one self-update, not a failure."""
    s2 = srels["s2"][0]
    n, q = len(sfleet.proxy.uploads), handovers(sfleet)
    sfleet.proxy.arm("answer", path="/update-self")
    doc = include_self(sfleet, s2, "--full")
    assert sfleet.proxy.cuts[-1:] == ["answer"], sfleet.proxy.cuts
    h = hosts_by_name(doc)["h1"]
    assert doc["ok"] is True and h["agent"]["result"] == "updated", doc
    assert h["self"]["result"] == "updated" and h["self"]["version"] == "2.1", h
    assert "connection broke" in h["self"]["detail"], h
    ups = self_uploads(sfleet, n)
    assert len(ups) == 1, ups
    rid = ups[0]["request_id"]
    assert rid
    assert [e["result"] for e in self_history(sfleet, rid)] == ["queued", "committed"]
    assert handovers(sfleet) == q + 1
    assert updater_release(sfleet) == sha256_file(s2)
    # The same request again (a client that missed the answer and did not ask the history):
    # refused, no second handover, and the request's record stays the self-update that ran.
    body = curl(sfleet, "POST", "/update-self", "sha=again", "sha256=" + sha256_file(s2),
                "request_id=" + rid, "confirm_self=true",
                "tarball=@%s;type=application/gzip" % s2, expect=409)
    assert body["detail"]["kind"] == "conflict", body
    assert "already ran (committed)" in body["detail"]["error"], body
    assert [e["result"] for e in self_history(sfleet, rid)] == ["queued", "committed"]
    assert handovers(sfleet) == q + 1


def test_self_upload_cut_sent_again(sfleet, srels):
    """Half a self-update upload: the updater never took it; the master sends it again
    under the same id, and the updater self-updates once."""
    s1 = srels["s1"][0]
    n, q = len(sfleet.proxy.uploads), handovers(sfleet)
    sfleet.proxy.arm("upload", path="/update-self")
    doc = include_self(sfleet, s1, "--full")
    assert sfleet.proxy.cuts[-1:] == ["upload"], sfleet.proxy.cuts
    h = hosts_by_name(doc)["h1"]
    assert doc["ok"] is True and h["self"]["result"] == "updated", doc
    assert h["self"]["version"] == "2.0", h
    ups = self_uploads(sfleet, n)
    assert len(ups) == 2 and ups[0]["request_id"] == ups[1]["request_id"], ups
    assert [e["result"] for e in self_history(sfleet, ups[0]["request_id"])] == \
        ["queued", "committed"]
    assert handovers(sfleet) == q + 1
    assert updater_release(sfleet) == sha256_file(s1)


def test_refused_self_delta_answer_lost_falls_back(sfleet, srels):
    """The updater refused the self delta (its copies of the shared library changed) and
    that answer was lost: the refusal under the request id leads to the full self-update,
    as the 409 itself does."""
    s2 = srels["s2"][0]
    for slot in ("active", "prev"):
        lib = os.path.join(sfleet.install_dir("h1"), "updater", "releases", slot, "lib",
                           "libbig.so.1")
        os.chmod(lib, 0o644)
        with open(lib, "r+b") as fh:
            fh.write(b"X")
    n, q = len(sfleet.proxy.uploads), handovers(sfleet)
    sfleet.proxy.arm("answer", "delta", path="/update-self")
    doc = include_self(sfleet, s2)
    assert sfleet.proxy.cuts[-1:] == ["answer"], sfleet.proxy.cuts
    h = hosts_by_name(doc)["h1"]
    assert doc["ok"] is True and h["self"]["result"] == "updated", doc
    assert h["self"]["transfer"] == "fallback", h
    ups = self_uploads(sfleet, n)
    assert [u["kind"] for u in ups] == ["delta", "full"], ups
    rid = ups[0]["request_id"]
    assert {u["request_id"] for u in ups} == {rid}
    assert [(e["result"], e.get("error_kind")) for e in self_history(sfleet, rid)] == \
        [("refused", "delta_mismatch"), ("queued", None), ("committed", None)]
    assert handovers(sfleet) == q + 1
    assert updater_release(sfleet) == sha256_file(s2)


@pytest.mark.parametrize("point", ["agent_answered", "answered"])
def test_resume_settles_the_self_update(sfleet, srels, point):
    """The master died after the agent's push of an --include-self update: before its
    self-update was sent (agent_answered) or after the updater took it (answered). The
    resume settles the agent's push from the updater's history, then the self-update under
    the same request id: sent once when it never was, not sent again when it ran."""
    target = "s2" if updater_release(sfleet) == sha256_file(srels["s1"][0]) else "s1"
    rel = srels[target][0]
    n, q = len(sfleet.proxy.uploads), handovers(sfleet)
    r = tandem(sfleet.home, "swarm", "update", "--hosts", "h1", "--release", rel,
               "--include-self", "--full", "--json",
               env={"TANDEM_TEST_CRASH_AT": "rollout." + point})
    assert r.returncode == CRASH_STATUS, (r.stdout, r.stderr)
    ups = sfleet.proxy.uploads[n:]
    assert [u["path"] for u in ups] == \
        (["/update"] if point == "agent_answered" else ["/update", "/update-self"]), ups
    rid = ups[0]["request_id"]
    assert rid and all(u["request_id"] == rid for u in ups), ups
    roll = sfleet.json("swarm", "rollout", "list")["rollouts"][0]["id"]
    r = tandem(sfleet.home, "swarm", "rollout", "resume", roll, "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    row = sfleet.json("swarm", "rollout", "status", roll)["host_rows"][0]
    version = "2.1" if target == "s2" else "2.0"
    assert row["state"] == "updated" and row["agent"]["result"] == "updated", row
    assert row["self"] is not None and row["self"]["result"] == "updated", row
    assert row["self"]["version"] == version, row
    # One agent install, one self-update, both under the request id the dispatch recorded.
    ups = sfleet.proxy.uploads[n:]
    assert [u["path"] for u in ups] == ["/update", "/update-self"], ups
    assert {u["request_id"] for u in ups} == {rid}
    assert [e["result"] for e in self_history(sfleet, rid)] == ["queued", "committed"]
    assert handovers(sfleet) == q + 1
    assert updater_release(sfleet) == sha256_file(rel)
