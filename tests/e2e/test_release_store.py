"""The master's release store (master/release_store): a release enters
HOME/store in one read of the operator's file, is checked as the store's own
copy before it takes its digest's name, and gets a record that it passed; a
release the store holds with a valid record is hashed and not checked again;
the record holds only for the file it was written for; a refused release and
a dry run write nothing; a kill -9 at any step of the store write leaves
nothing a later command trusts wrongly."""

import hashlib
import json
import os
import shutil

import pytest

from swarm_util import fleet_web1 as fleet, releases, tandem  # noqa: F401 (fixtures)
from test_updater import CRASH_STATUS

pytestmark = pytest.mark.xdist_group("release_store")

REUSED = "checked before: not checked again"


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def store(fleet):
    d = os.path.join(fleet.home, "store")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def stored(fleet, digest, suffix=".tar.gz"):
    return os.path.join(fleet.home, "store", digest + suffix)


def history(fleet):
    return len(fleet.json("swarm", "history", "--host", "web1")["updater"])


def update(fleet, rel, *extra, check=0, env=None):
    return tandem(fleet.home, "swarm", "update", "--host", "web1", "--release", rel, *extra,
                  check=check, env=env)


def test_a_release_is_stored_once_and_checked_once(fleet, releases):
    v1, v2 = releases["v1"], releases["v2"]
    d = sha(v2)
    r = update(fleet, v2)
    assert REUSED not in r.stderr, r.stderr
    # Only the release under its digest and its record: no temporaries.
    assert store(fleet) == [d + ".checked.json", d + ".tar.gz"]
    assert sha(stored(fleet, d)) == d
    with open(stored(fleet, d, ".checked.json")) as f:
        rec = json.load(f)
    assert rec["sha256"] == d and rec["size"] == os.path.getsize(v2) and rec["flags"] == 1
    assert (rec["name"], rec["version"]) == ("tandem-agent", "2.0.0"), rec
    # The same release again (another rollout of it): hashed, not copied nor checked again;
    # nothing is written to the store, not even a temporary copy removed at once.
    ino = os.stat(stored(fleet, d)).st_ino
    update(fleet, v1)
    dir_mtime = os.stat(os.path.join(fleet.home, "store")).st_mtime_ns
    r = update(fleet, v2)
    assert REUSED in r.stderr, r.stderr
    assert os.stat(stored(fleet, d)).st_ino == ino
    assert os.stat(os.path.join(fleet.home, "store")).st_mtime_ns == dir_mtime
    assert fleet.json("swarm", "status", "--host", "web1")["hosts"][0]["active"]["sha256"] == d


def test_the_record_holds_only_for_the_file_it_was_written_for(fleet, releases):
    v2 = releases["v2"]
    d = sha(v2)
    update(fleet, v2)
    rec_path = stored(fleet, d, ".checked.json")
    with open(rec_path) as f:
        good = f.read()
    # The stored copy rewritten in place (same inode, new bytes): checked again, and the
    # copy replaced by the operator's bytes, hashed and checked.
    with open(stored(fleet, d), "r+b") as f:
        f.write(b"\0\0\0\0")
    assert sha(stored(fleet, d)) != d
    r = update(fleet, v2, "--dry-run")
    assert REUSED not in r.stderr, r.stderr
    r = update(fleet, v2)
    assert REUSED not in r.stderr, r.stderr
    assert sha(stored(fleet, d)) == d
    # A record edited to say more, or another file's, or not JSON: checked again.
    with open(rec_path) as f:
        rec = json.load(f)
    for bad in (dict(rec, file="1:2:3:4.000000000:5.000000000"), dict(rec, size=rec["size"] + 1),
                dict(rec, checked_by="0.0.1"), dict(rec, sha256="0" * 64), None):
        with open(rec_path, "w") as f:
            f.write(json.dumps(bad) if bad is not None else "{not json")
        r = update(fleet, v2)
        assert REUSED not in r.stderr, (bad, r.stderr)
    r = update(fleet, v2)
    assert REUSED in r.stderr, r.stderr
    with open(rec_path) as f:
        rec = json.load(f)
    assert rec == dict(json.loads(good), file=rec["file"]), (rec, good)


def test_a_refused_release_and_a_dry_run_write_nothing(fleet, releases, tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not a tarball\n" * 100)
    r = update(fleet, str(junk), check=1)
    assert "not a gzip tar archive" in r.stderr and "nothing was sent" in r.stderr
    assert store(fleet) == []
    v2 = releases["v2"]
    update(fleet, v2, "--dry-run")
    assert store(fleet) == []
    update(fleet, v2)
    r = update(fleet, v2, "--dry-run")
    assert REUSED in r.stderr, r.stderr
    assert store(fleet) == [sha(v2) + ".checked.json", sha(v2) + ".tar.gz"]


def test_a_crash_in_the_store_write_leaves_nothing_trusted_wrongly(fleet, releases):
    v2 = releases["v2"]
    d = sha(v2)
    for point in ("store.copied", "store.committed", "store.recorded"):
        shutil.rmtree(os.path.join(fleet.home, "store"), ignore_errors=True)
        before = history(fleet)
        r = update(fleet, v2, check=CRASH_STATUS, env={"TANDEM_TEST_CRASH_AT": point})
        assert "test hook: crashing at " + point in r.stderr
        assert history(fleet) == before  # no host was asked anything
        left = store(fleet)
        if point == "store.copied":
            # The copy, checked, not yet renamed: a temporary only.
            assert len(left) == 1 and left[0].startswith(".import.tar.gz.tmp."), left
        elif point == "store.committed":
            assert left == [d + ".tar.gz"] and sha(stored(fleet, d)) == d
        else:
            assert left == [d + ".checked.json", d + ".tar.gz"]
        r = update(fleet, v2)
        # Only a record written whole is trusted; the dead writer's temporary is gone.
        assert (REUSED in r.stderr) == (point == "store.recorded"), (point, r.stderr)
        assert store(fleet) == [d + ".checked.json", d + ".tar.gz"], point
        assert sha(stored(fleet, d)) == d
        st = fleet.json("swarm", "status", "--host", "web1")["hosts"][0]
        assert st["active"]["sha256"] == d, (point, st)
