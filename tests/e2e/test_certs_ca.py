"""CA rotation in documented steps: `tandem pki ca-rotate begin` (a new CA
that signs, every host trusting the old and the new through PUT /trust),
re-issuing everything under the new CA (`pki renew-master`, `swarm renew`),
`tandem pki ca-rotate finish` (the new CA alone everywhere). Pushes work at
every step; at the end a certificate of the old CA is refused by the
updaters and the agents."""

import os
import shutil
import subprocess

import pytest

from conftest import bin_path
from swarm_util import curl_as, fleet, fp_of, releases, tandem  # noqa: F401 (fixtures)


def curl(fleet, port, pair, path, cacert=None, body=None, method=None, name="web1"):
    """(HTTP status or 0 when the handshake failed, doc) presenting PAIR (cert, key) to
    host NAME's server on PORT."""
    return curl_as(fleet, name, port, pair, path, body=body, method=method, cacert=cacert)


def master_pair(fleet):
    m = os.path.join(fleet.home, "master")
    return os.path.join(m, "master.crt"), os.path.join(m, "master.key")


def push(fleet, names, release):
    for n in names:
        assert fleet.json("swarm", "update", "--host", n, "--release", release)["ok"], n


def test_ca_rotation_keeps_the_fleet_working_and_retires_the_old_ca(fleet, releases, tmp_path):
    names = ("web1", "web2")
    for n in names:
        fleet.enroll(n)
        fleet.start(n)
    push(fleet, names, releases["v1"])
    keep = str(tmp_path / "old")
    os.makedirs(keep)
    for src in ("ca/ca.crt", "master/master.crt", "master/master.key"):
        shutil.copy(os.path.join(fleet.home, src), keep)
    old_ca = os.path.join(keep, "ca.crt")
    old_master = (os.path.join(keep, "master.crt"), os.path.join(keep, "master.key"))
    old_ca_fp = fp_of(old_ca)

    # Nothing to finish yet.
    r = fleet.tandem("pki", "ca-rotate", "finish")
    assert r.returncode == 1 and "no CA rotation" in r.stderr, r.stderr
    assert fleet.tandem("pki", "ca-rotate", "later").returncode == 2

    doc = fleet.json("pki", "ca-rotate", "begin")
    new_ca_fp = doc["new_ca_fingerprint"]
    assert doc["old_ca_fingerprint"] == old_ca_fp and new_ca_fp != old_ca_fp
    assert sorted(h["result"] for h in doc["hosts"]) == ["trusted", "trusted"], doc
    assert fp_of(os.path.join(fleet.home, "ca", "ca.crt")) == new_ca_fp
    bundle = os.path.join(fleet.home, "ca", "bundle.pem")
    for n in names:
        code, h = curl(fleet, fleet.ports[n][1], old_master, "/health", cacert=bundle,
                       name=n)
        assert code == 200 and sorted(h["ca_fingerprints"]) == sorted([old_ca_fp, new_ca_fp])
    push(fleet, names, releases["v2"])
    # Running begin again changes nothing but re-sends the bundle.
    doc = fleet.json("pki", "ca-rotate", "begin")
    assert doc["new_ca_fingerprint"] == new_ca_fp

    # finish is refused while anything still has a certificate of the old CA.
    r = fleet.tandem("pki", "ca-rotate", "finish")
    assert r.returncode == 1 and "renew-master" in r.stderr, r.stderr
    assert fleet.json("pki", "renew-master")["finished"] is True
    push(fleet, names, releases["v1"])
    r = fleet.tandem("pki", "ca-rotate", "finish")
    assert r.returncode == 1 and "not on the new CA" in r.stderr, r.stdout + r.stderr
    assert os.path.exists(bundle)
    doc = fleet.json("swarm", "renew", "--all", "--force")
    assert doc["ok"] is True, doc
    push(fleet, names, releases["v2"])

    doc = fleet.json("pki", "ca-rotate", "finish")
    assert doc["finished"] is True and sorted(h["result"] for h in doc["hosts"]) == \
        ["renewed", "renewed"], doc
    assert not os.path.exists(bundle)
    assert not os.path.exists(os.path.join(fleet.home, "ca", "retired"))
    push(fleet, names, releases["v1"])
    new_master = master_pair(fleet)
    for n in names:
        agent_port, updater_port = fleet.ports[n]
        code, h = curl(fleet, updater_port, new_master, "/health", name=n)
        assert code == 200 and h["ca_fingerprints"] == [new_ca_fp], h
        # A certificate of the old CA is refused by the updater and by the agent.
        code, _ = curl(fleet, updater_port, old_master, "/health", name=n)
        assert code == 0, n
        code, _ = curl(fleet, agent_port, old_master, "/health", name=n)
        assert code == 0, n
        code, _ = curl(fleet, agent_port, new_master, "/health", name=n)
        assert code == 200, n
    # A restarted updater keeps trusting the new CA alone.
    p = fleet.procs["web1"]
    p.signal(15)
    p.p.wait(timeout=30)
    fleet.start("web1")
    code, h = curl(fleet, fleet.ports["web1"][1], new_master, "/health")
    assert code == 200 and h["ca_fingerprints"] == [new_ca_fp]
    push(fleet, names, releases["v2"])


def test_trust_route_refuses_what_does_not_fit(fleet, tmp_path):
    fleet.enroll("web1")
    fleet.enroll("web2")
    fleet.start("web1")
    port = fleet.ports["web1"][1]
    m = master_pair(fleet)
    with open(os.path.join(fleet.home, "ca", "ca.crt")) as f:
        ca = f.read()
    other = (os.path.join(fleet.bundle("web2"), "updater.crt"),
             os.path.join(fleet.bundle("web2"), "updater.key"))
    code, _ = curl(fleet, port, other, "/trust", body=ca, method="PUT")
    assert code == 403
    # A leaf certificate, garbage, nothing.
    with open(other[0]) as f:
        leaf = f.read()
    for body in (leaf, "garbage", ""):
        code, doc = curl(fleet, port, m, "/trust", body=body, method="PUT")
        assert code == 400, (body[:20], code, doc)
    # Another CA alone would lock the host out: refused.
    home2 = str(tmp_path / "other")
    subprocess.run([bin_path("tandem"), "--home", home2, "pki", "init"], check=True,
                   capture_output=True)
    with open(os.path.join(home2, "ca", "ca.crt")) as f:
        foreign = f.read()
    code, doc = curl(fleet, port, m, "/trust", body=foreign, method="PUT")
    assert code == 409 and "lock the host out" in doc["detail"]["error"], doc
    # Both: accepted (the host's own certificate still verifies).
    code, doc = curl(fleet, port, m, "/trust", body=ca + foreign, method="PUT")
    assert code == 200 and len(doc["ca_fingerprints"]) == 2, doc
    code, doc = curl(fleet, port, m, "/trust", body=ca, method="PUT")
    assert code == 200 and doc["ca_fingerprints"] == [fp_of(os.path.join(fleet.home, "ca",
                                                                         "ca.crt"))]


@pytest.mark.sweep
@pytest.mark.parametrize("point", ["ca.next_made", "ca.bundle_written", "ca.retired_kept",
                                   "ca.key_switched", "ca.switched"])
def test_master_crash_during_begin_is_finished_by_running_it_again(fleet, releases, point):
    fleet.enroll("web1")
    fleet.start("web1")
    r = tandem(fleet.home, "pki", "ca-rotate", "begin", env={"TANDEM_TEST_CRASH_AT": point})
    assert r.returncode == 86, r.stdout + r.stderr
    doc = fleet.json("pki", "ca-rotate", "begin")
    assert [h["result"] for h in doc["hosts"]] == ["trusted"], doc
    push(fleet, ["web1"], releases["v1"])
    assert fleet.json("pki", "renew-master")["finished"] is True
    assert fleet.json("swarm", "renew", "--all", "--force")["ok"] is True
    assert fleet.json("pki", "ca-rotate", "finish")["finished"] is True
    push(fleet, ["web1"], releases["v2"])
