"""The master renews its own certificate: `tandem pki renew-master` rolls
every updater's master pins over online (PUT /pins/master, kept in the
updater's state, the config's master_fingerprints untouched) before the
master switches, proves the new certificate at each host, and drops the old
one once every host confirmed. A host down during the rollover keeps
accepting the old certificate until a later run confirms it; a crash of the
master or of an updater at any step leaves a fleet the master still
drives."""

import os
import shutil

import pytest

from swarm_util import curl_as, fleet, fp_of, releases, tandem  # noqa: F401 (fixtures)


def save_master(fleet, where):
    """A copy of the master's current pair (the 'old' certificate after a renewal)."""
    os.makedirs(where, exist_ok=True)
    for n in ("master.crt", "master.key"):
        shutil.copy(os.path.join(fleet.home, "master", n), os.path.join(where, n))
    return os.path.join(where, "master.crt"), os.path.join(where, "master.key")


def call(fleet, name, pair, path, body=None, method=None):
    """curl to NAME's updater presenting PAIR (cert, key); (status, doc)."""
    return curl_as(fleet, name, fleet.ports[name][1], pair, path, body=body, method=method)


def master_pins(fleet, name, pair):
    code, doc = call(fleet, name, pair, "/health")
    assert code == 200, (code, doc)
    return doc["master_pins"]


def test_renew_master_rolls_pins_over_and_finishes_later_for_a_host_that_was_down(
        fleet, releases, tmp_path):
    for name in ("web1", "web2"):
        fleet.enroll(name)
    fleet.start("web1")
    old = save_master(fleet, str(tmp_path / "old"))
    old_fp = fp_of(old[0])
    assert master_pins(fleet, "web1", old) == [old_fp]
    assert fleet.json("swarm", "update", "--host", "web1", "--release", releases["v1"])["ok"]

    # web2 is down: web1 rolls over, web2 is listed, the command says to run it again.
    r = fleet.tandem("pki", "renew-master", "--timeout", "5")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "web1: confirmed" in r.stdout and "web2: failed" in r.stdout, r.stdout
    assert "renew-master' again" in r.stderr, r.stderr
    new = (os.path.join(fleet.home, "master", "tls", "current", "cert.pem"),
           os.path.join(fleet.home, "master", "tls", "current", "key.pem"))
    new_fp = fp_of(new[0])
    assert new_fp != old_fp
    # web1 takes only the new certificate now; its config was not rewritten.
    assert master_pins(fleet, "web1", new) == [new_fp]
    code, doc = call(fleet, "web1", old, "/releases")
    assert code == 403 and "not pinned" in doc["detail"]["error"], (code, doc)
    code, _ = call(fleet, "web1", new, "/releases")
    assert code == 200
    with open(os.path.join(fleet.bundle("web1"), "test.conf")) as f:
        conf = f.read()
    assert old_fp in conf and new_fp not in conf
    # The other commands present the new certificate: a push to web1 works.
    assert fleet.json("swarm", "update", "--host", "web1", "--release", releases["v2"])["ok"]
    # pki status describes the certificate in force.
    st = fleet.json("pki", "status")
    assert st["master"]["fingerprint"] == new_fp, st

    # A backup now could not hold the pair in force (a link): refused until the end.
    r = fleet.tandem("backup", "create", str(tmp_path / "b.tar.gz"), "--no-encrypt")
    assert r.returncode == 1 and "renew-master" in r.stderr, r.stderr
    assert not os.path.exists(str(tmp_path / "b.tar.gz"))

    # web2 comes back: it still accepts the old certificate only.
    fleet.start("web2")
    assert master_pins(fleet, "web2", old) == [old_fp]
    code, _ = call(fleet, "web2", new, "/releases")
    assert code == 403
    # Running again finishes: web2 gets the pin over the old certificate and confirms it.
    doc = fleet.json("pki", "renew-master", "--timeout", "5")
    assert doc["finished"] is True and doc["resumed"] is True, doc
    assert doc["new_fingerprint"] == new_fp and doc["old_fingerprint"] == old_fp, doc
    assert sorted(h["result"] for h in doc["hosts"]) == ["confirmed", "confirmed"], doc
    # The new pair is the master's own files now; the rollover's state is gone.
    assert fp_of(os.path.join(fleet.home, "master", "master.crt")) == new_fp
    assert not os.path.exists(os.path.join(fleet.home, "master", "tls"))
    assert not os.path.exists(os.path.join(fleet.home, "master", "rollover"))
    mine = save_master(fleet, str(tmp_path / "new"))
    for name in ("web1", "web2"):
        assert master_pins(fleet, name, mine) == [new_fp]
        code, _ = call(fleet, name, old, "/releases")
        assert code == 403, name
    assert fleet.json("swarm", "update", "--host", "web2", "--release", releases["v1"])["ok"]
    # A restarted updater keeps the rolled pins (state, not config).
    p = fleet.procs["web2"]
    p.signal(15)
    p.p.wait(timeout=30)
    fleet.start("web2")
    assert master_pins(fleet, "web2", mine) == [new_fp]
    assert fleet.json("swarm", "update", "--host", "web2", "--release", releases["v2"])["ok"]
    # Finished: a backup is taken again.
    fleet.tandem("backup", "create", str(tmp_path / "b.tar.gz"), "--no-encrypt", check=0)
    # A new enrollment pins the new certificate.
    fleet.enroll("web3")
    with open(os.path.join(fleet.bundle("web3"), "updater.conf")) as f:
        assert new_fp in f.read()


def test_pins_route_refuses_what_does_not_fit(fleet, tmp_path):
    fleet.enroll("web1")
    fleet.enroll("web2")
    fleet.start("web1")
    m = save_master(fleet, str(tmp_path / "m"))
    mfp = fp_of(m[0])
    other = (os.path.join(fleet.bundle("web2"), "updater.crt"),
             os.path.join(fleet.bundle("web2"), "updater.key"))
    # Only the pinned master.
    code, _ = call(fleet, "web1", other, "/pins/master", body='{"add":"%s"}' % ("a" * 64),
                   method="PUT")
    assert code == 403
    for body in ('{}', 'nope', '{"add":"xyz"}', '{"add":"%s","confirm":"%s"}' % ("a" * 64, mfp),
                 '{"add":"%s","extra":1}' % ("a" * 64), '{"add":7}'):
        code, doc = call(fleet, "web1", m, "/pins/master", body=body, method="PUT")
        assert code == 400, (body, code, doc)
    # Confirming a certificate this connection does not present is refused.
    code, doc = call(fleet, "web1", m, "/pins/master", body='{"confirm":"%s"}' % ("b" * 64),
                     method="PUT")
    assert code == 409, (code, doc)
    # Wrong method.
    code, _ = call(fleet, "web1", m, "/pins/master", body='{"add":"%s"}' % ("a" * 64),
                   method="POST")
    assert code in (404, 405)
    assert master_pins(fleet, "web1", m) == [mfp]
    # Adding is idempotent and bounded.
    for i in range(9):
        code, doc = call(fleet, "web1", m, "/pins/master", body='{"add":"%064x"}' % (i + 1),
                         method="PUT")
        assert code == (200 if i < 8 else 409), (i, code, doc)
    # A confirm over the master's own certificate makes it the only pin again.
    code, doc = call(fleet, "web1", m, "/pins/master", body='{"confirm":"%s"}' % mfp.upper(),
                     method="PUT")
    assert code == 200 and doc["pins"] == [mfp], doc
    # A corrupt state file is ignored at start: the configured pins apply.
    with open(os.path.join(fleet.install_dir("web1"), "state", "master_pins.json"), "w") as f:
        f.write("{garbage")
    p = fleet.procs["web1"]
    p.signal(15)
    p.p.wait(timeout=30)
    fleet.start("web1")
    assert master_pins(fleet, "web1", m) == [mfp]
    assert "master pins:" in fleet.procs["web1"].stderr()


@pytest.mark.sweep
@pytest.mark.parametrize("point", ["master.rollover_recorded", "cert.gen_written",
                                   "cert.previous_set", "cert.flipped",
                                   "cert.pending_removed", "master.key_folded",
                                   "master.cert_folded", "master.tls_removed"])
def test_master_crash_at_every_step_leaves_a_fleet_it_drives(fleet, releases, point):
    fleet.enroll("web1")
    fleet.start("web1")
    r = tandem(fleet.home, "pki", "renew-master", "--timeout", "5",
               env={"TANDEM_TEST_CRASH_AT": point})
    assert r.returncode == 86, r.stdout + r.stderr
    # Whatever pair is in force, the fleet is driven...
    assert fleet.json("swarm", "update", "--host", "web1", "--release", releases["v1"])["ok"]
    # ...and running again finishes, to a single pin.
    doc = fleet.json("pki", "renew-master", "--timeout", "5")
    assert doc["finished"] is True, doc
    new_fp = fp_of(os.path.join(fleet.home, "master", "master.crt"))
    assert doc["new_fingerprint"] == new_fp
    m = (os.path.join(fleet.home, "master", "master.crt"),
         os.path.join(fleet.home, "master", "master.key"))
    assert master_pins(fleet, "web1", m) == [new_fp]
    assert fleet.json("swarm", "update", "--host", "web1", "--release", releases["v2"])["ok"]


def test_updater_crash_while_writing_pins(fleet, releases):
    fleet.enroll("web1")
    fleet.start("web1")
    assert fleet.procs["web1"].stop(timeout=30) == 0
    p = fleet.start("web1", env={"TANDEM_TEST_CRASH_AT": "pins.written"})
    r = fleet.tandem("pki", "renew-master", "--timeout", "5")
    assert r.returncode == 1, r.stdout + r.stderr
    assert p.wait(timeout=30) == 86
    fleet.start("web1")
    # The add was written before the crash: the new certificate already works,
    # the old one too until the next run confirms.
    doc = fleet.json("pki", "renew-master", "--timeout", "5")
    assert doc["finished"] is True, doc
    assert fleet.json("swarm", "update", "--host", "web1", "--release", releases["v1"])["ok"]
