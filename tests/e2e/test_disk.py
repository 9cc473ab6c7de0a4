"""A full disk under the updater: its install directory is a small tmpfs
mounted by the test and filled by it to exactly 0 bytes free, or to a few
pages more (enough for the journal, not for the staging tree, ...).

Whatever write of the path meets ENOSPC first (journal, staging
extraction, release.json, history, state/agent.json, the self-update's own
tree), the answer is the documented 507 (kind no_space), nothing changed
(same active and prev, no staging, no journal), the host keeps running its
active release, and the next push after space was freed succeeds.
"""

import contextlib
import errno
import os
import subprocess
import tarfile

import pytest

from release_util import Releases
from test_selfupdate import Host as LauncherHost
from test_updater import (Host, assert_clean_exit, assert_detail, make_tgz, release_members,
                          ti)

PAGE = 4096


@pytest.fixture(scope="module")
def releases(build_dir, tmp_path_factory):
    return Releases(build_dir, str(tmp_path_factory.mktemp("releases")))


class Tmpfs:
    """A tmpfs of SIZE bytes mounted at PATH, and a filler file in it."""

    def __init__(self, path, size):
        path.mkdir()
        self.path = str(path)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % size, "tmpfs",
                            self.path], capture_output=True, text=True)
        if r.returncode != 0:
            os.rmdir(self.path)
            pytest.skip("cannot mount a tmpfs here: %s" % r.stderr.strip())
        self.filler = os.path.join(self.path, ".filler")

    def used(self):
        return sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(self.path)
                   for f in fs if not os.path.islink(os.path.join(dp, f)))

    def resize(self, size):
        r = subprocess.run(["mount", "-o", "remount,size=%d" % size, self.path],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

    def free(self):
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave=0):
        """Fill the file system up to exactly LEAVE bytes free (LEAVE a
        multiple of the page size)."""
        self.unfill()
        with open(self.filler, "wb", buffering=0) as f:
            for chunk in (1 << 20, PAGE):
                while True:
                    try:
                        f.write(bytes(chunk))
                    except OSError as ex:
                        assert ex.errno == errno.ENOSPC, ex
                        break
        assert self.free() == 0
        if leave > 0:
            size = os.path.getsize(self.filler)
            os.truncate(self.filler, max(0, size - leave))
        assert self.free() == leave, (self.free(), leave)

    def unfill(self):
        if os.path.exists(self.filler):
            os.unlink(self.filler)

    def umount(self):
        subprocess.run(["umount", "-l", self.path], capture_output=True)


def assert_refused_no_space(h, st, body, before, version):
    assert st == 507, body
    assert body["detail"].get("kind") == "no_space", body
    assert "space" in assert_detail(body), body
    assert h.snapshot() == before
    h.assert_clean()
    assert h.agent_health()["version"] == version


@contextlib.contextmanager
def updater_on_tmpfs(procs, tmp_path, pki, size):
    """An updater (min_free 0) whose install dir is a fresh tmpfs of SIZE bytes:
    yields (tmpfs, host); at the end the updater must exit cleanly, and the
    tmpfs is unmounted."""
    fs = Tmpfs(tmp_path / "install", size)
    h = None
    try:
        h = Host(procs, tmp_path, pki, min_free="0")
        yield fs, h
    finally:
        if h is not None and h.proc.alive():
            assert_clean_exit(h.proc)
        fs.umount()


def test_disk_really_full(procs, tmp_path, pki, releases):
    """ENOSPC while extracting is 507 and leaves nothing behind; the next push
    fits again."""
    with updater_on_tmpfs(procs, tmp_path, pki, 64 << 20) as (fs, h):
        v1 = releases.get("1.0.0")
        st, _, body = h.push(v1)
        assert st == 200, body
        # Room for 2.0.0 unpacked (larger in the ASan build) plus 1 MiB: the same
        # release with 8 MiB more cannot fit, 2.0.0 alone does.
        with tarfile.open(releases.get("2.0.0")) as tf:
            v2 = sum(m.size for m in tf.getmembers() if m.isfile())
        fs.resize(((fs.used() + v2 + (1 << 20)) // PAGE + 64) * PAGE)
        before = h.snapshot()
        big = make_tgz(str(tmp_path / "big.tgz"),
                       release_members(releases.get("2.0.0")) + [ti("fill", data=bytes(8 << 20))])
        st, _, body = h.push(big)
        assert_refused_no_space(h, st, body, before, "1.0.0")
        st, _, body = h.push(releases.get("2.0.0"))
        assert st == 200, body


# The engine's own records' reserve (INSTALL_HEADROOM in updater/install.h).
HEADROOM = 512 << 10
# Free space left for a push: 0 (the journal would be the first write to
# fail), a page, a few (the journal fits; release.json, the history line or
# agent.json would not), up to one page short of the reserve.
LEAVE_PAGES = (0, 1, 2, 3, 4, 8, 16, 64, HEADROOM // PAGE - 1)


def test_disk_zero_free(procs, tmp_path, pki, releases):
    """min_free 0 and the disk filled to 0 bytes free, or a few pages more:
    every update and rollback is 507 with nothing changed and the agent not
    even restarted; with room for the records but not for the staging tree,
    the update is 507 and the rollback (which stages nothing) goes through;
    once the space is back the next push succeeds."""
    with updater_on_tmpfs(procs, tmp_path, pki, 96 << 20) as (fs, h):
        st, _, body = h.push(releases.get("1.0.0"))
        assert st == 200, body
        st, _, body = h.push(releases.get("2.0.0"))
        assert st == 200, body
        v3 = releases.get("3.0.0")
        pid = h.health()["agent"]["pid"]
        for pages in LEAVE_PAGES:
            fs.fill(pages * PAGE)
            before = h.snapshot()
            st, _, body = h.push(v3)
            assert_refused_no_space(h, st, body, before, "2.0.0")
            st, body = h.rollback()
            assert_refused_no_space(h, st, body, before, "2.0.0")
            health = h.health()
            assert health["status"] == "ok", health
            assert health["agent"]["pid"] == pid, (pages, health["agent"])
        # Room for the records, not for 3.0.0's staging tree.
        fs.fill(HEADROOM + 64 * PAGE)
        before = h.snapshot()
        st, _, body = h.push(v3)
        assert_refused_no_space(h, st, body, before, "2.0.0")
        st, body = h.rollback()
        assert st == 200 and body["status"] == "rolled_back", body
        h.assert_clean()
        assert h.agent_health()["version"] == "1.0.0"
        fs.unfill()
        st, _, body = h.push(v3)
        assert st == 200, body
        assert h.agent_health()["version"] == "3.0.0"
        h.assert_clean()
        assert h.history()[-1]["result"] == "updated"


def test_disk_full_history_lines_kept(procs, tmp_path, pki, releases):
    """0 bytes free: the refusals' history lines fill the file's last page,
    then the disk refuses them too; the updater keeps those in memory and
    writes them, in order and whole, before the next line the disk takes."""
    with updater_on_tmpfs(procs, tmp_path, pki, 64 << 20) as (fs, h):
        st, _, body = h.push(releases.get("1.0.0"))
        assert st == 200, body
        v2 = releases.get("2.0.0")
        fs.fill(0)
        # A line is a few hundred bytes: a page's worth of them, and the next fails.
        pushes = 0
        while "line is kept in memory" not in h.proc.stderr():
            assert pushes < PAGE // 200 + 2, h.proc.stderr()
            st, _, body = h.push(v2)
            assert st == 507, body
            pushes += 1
        st, _, body = h.push(v2)
        assert st == 507, body
        pushes += 1
        fs.unfill()
        st, _, body = h.push(v2)
        assert st == 200, body
        hist = h.history()  # every line parses: no torn line swallowed another
        refused = [e for e in hist if e.get("error_kind") == "no_space"]
        assert len(refused) == pushes, (pushes, refused)
        assert hist[-1]["result"] == "updated" and hist[-1]["version"] == "2.0.0", hist[-1]
        stamps = [e["finished_at"] for e in hist]
        assert stamps == sorted(stamps), stamps
        assert "wrote a line kept from a full disk (0 left)" in h.proc.stderr()


def test_disk_zero_free_self_update(procs, tmp_path, pki, releases):
    """/update-self on a full disk: 507, the updater's tree unchanged, the
    updater and its agent keep running; with space back it is accepted."""
    fs = Tmpfs(tmp_path / "install", 96 << 20)
    h = None
    try:
        h = LauncherHost(procs, tmp_path, pki)
        st, _, body = h.push(releases.get("1.0.0"))
        assert st == 200, body
        ver = h.health()["version"]
        tarball = releases.get("3.0")
        for pages in (0, 1, 4, 16):
            fs.fill(pages * PAGE)
            before = h.tree_state()
            st, _, body = h.push_self(tarball)
            assert st == 507, body
            assert body["detail"].get("kind") == "no_space", body
            assert h.tree_state() == before
            h.assert_tree_clean()
            assert h.health()["version"] == ver
            assert h.agent_health()["version"] == "1.0.0"
        fs.unfill()
        st, _, body = h.push_self(tarball)
        assert st == 200, body
    finally:
        if h is not None:
            h.close()
        fs.umount()
