"""End-to-end tests of the updater's self-update: tandem-launcher
running tandem-updater, which supervises the real agent; releases built with
`make release` (RELEASE_UPDATER_KIND for broken updaters), pushed with curl
multipart over mutual TLS on 127.0.0.1.

Each test checks the outcome in /health, in the history, on disk (the
updater's tree INSTALL/updater) and that the agent process was never touched.
"""

import io
import json
import os
import re
import signal
import subprocess
import tarfile
import time

import pytest

from conftest import Proc, bin_path, wait_until
from release_util import Releases, sha256_file
from worker_util import Worker, curl

FALLBACK_VERSION = "0.1.0"
PROBATION_DEADLINE_MS = 10000
PROBATION_STABLE_MS = 4000   # > the crash-later build's 3 s
MAX_STARTS = 2
# The launcher's line when a self-update's probation ends.
OUTCOME = r"^SELF_UPDATE (committed|reverted) "


@pytest.fixture(scope="module")
def releases(build_dir, tmp_path_factory):
    # The crash sweeps crash updaters installed from these releases too.
    return Releases(build_dir, str(tmp_path_factory.mktemp("releases")), test_hooks=True)


class Host(Worker):
    """A worker whose tandem-updater runs under tandem-launcher."""

    def __init__(self, procs, tmp_path, pki, env=None, stable_ms=PROBATION_STABLE_MS,
                 updater_args=(), cfg=None):
        # stop_agent_on_exit is true: the handover must keep the agent even so.
        super().__init__(procs, tmp_path, pki, cfg)
        self.tree = os.path.join(self.root, "updater")
        self.proc = Proc([bin_path("tandem-launcher"), "--config", self.conf,
                          "--updater", bin_path("tandem-updater"),
                          "--probation-deadline", str(PROBATION_DEADLINE_MS),
                          "--probation-stable", str(stable_ms),
                          "--max-starts", str(MAX_STARTS)]
                         + (["--"] + list(updater_args) if updater_args else []),
                         str(tmp_path / "logs"), name="launcher", env=env)
        procs.append(self.proc)
        m = self.proc.wait_line(r"^LISTENING port=(\d+)$", timeout=30)
        self.port = int(m.group(1))

    def push(self, tarball):
        return super().push(tarball, label="agent")

    def push_self(self, tarball, confirm="true", check=True):
        args = ["-F", "sha=self", "-F", "sha256=%s" % sha256_file(tarball)]
        if confirm is not None:
            args += ["-F", "confirm_self=%s" % confirm]
        args += ["-F", "tarball=@%s;type=application/gzip" % tarball]
        r = curl(self.pki, self.pki.master, self.url("/update-self"), *args, check=check)
        if r is None:
            return None
        return r[0], r[1], json.loads(r[2])

    def updater_pids(self):
        return [int(x) for x in re.findall(r"^UPDATER pid=(\d+)", self.proc.stdout(), re.M)]

    def agent_pid(self):
        return self.health()["agent"]["pid"]

    def tree_state(self):
        """What a refused self-update must leave exactly as it was."""
        return self.slots(self.tree)

    def assert_tree_clean(self):
        for p in ("releases/active.new", "releases/prev.old", "state/journal.json",
                  "state/handover.json"):
            assert not os.path.exists(os.path.join(self.tree, p)), p

    def wait_updater(self, version, result=None, timeout=30):
        """Until /health answers with updater VERSION (and last self-update RESULT).

        With RESULT, /health is asked only once the launcher has printed an outcome
        (SELF_UPDATE committed|reverted) after those an earlier wait saw: the probation
        lasts seconds, and each /health poll is a TLS handshake in the updater, costly
        under ASan. A stale count only makes this first wait shorter."""
        deadline = time.monotonic() + timeout
        if result is not None:
            self.outcomes = self.proc.wait_count(OUTCOME, getattr(self, "outcomes", 0),
                                                 deadline)

        def ok():
            r = curl(self.pki, self.pki.master, self.url("/health"), "--max-time", "3",
                     check=False)
            if r is None or r[0] != 200:
                return None
            h = json.loads(r[2])
            if h["version"] != version:
                return None
            last = h["updater"]["last_self_update"]
            if result is not None and (last is None or last["result"] != result):
                return None
            if h["updater"]["probation"] is not None:
                return None
            return h
        return wait_until(ok, max(deadline - time.monotonic(), 1.0),
                          "updater %s (%s)" % (version, result))

    def close(self):
        pids = self.updater_pids()
        apid = None
        try:
            with open(os.path.join(self.root, "state", "agent.json")) as f:
                apid = json.load(f)["pid"]
        except (OSError, ValueError):
            pass
        if self.proc.alive():
            self.proc.signal(signal.SIGTERM)
            try:
                self.proc.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        # Anything left (the updater runs in its own session): kill it by pid.
        for pid in pids + ([apid] if apid else []):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def host(procs, tmp_path, pki, releases):
    h = Host(procs, tmp_path, pki)
    st, _, body = h.push(releases.get("1.0"))
    assert st == 200, body
    yield h
    h.close()


def self_update_history(h):
    return [e for e in h.history() if e["kind"] == "update-self"]


def make_tgz(path, members):
    with tarfile.open(path, "w:gz") as t:
        for name, data, mode in members:
            ti = tarfile.TarInfo(name)
            if data is None:
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                t.addfile(ti)
            else:
                ti.size = len(data)
                ti.mode = mode
                t.addfile(ti, io.BytesIO(data))
    return path


# ---------------------------------------------------------------- tests

def test_good_self_update_keeps_agent(host, releases):
    h0 = host.health()
    assert h0["version"] == FALLBACK_VERSION
    assert h0["updater"]["release"] is None and h0["updater"]["last_self_update"] is None
    st, _, body = host.push_self(releases.get("2.0"))
    assert st == 200, body
    assert body["status"] == "self_update_queued"
    assert body["from_version"] == FALLBACK_VERSION and body["to_version"] == "2.0"
    # A push right after the answer: it waits in the launcher's backlog or, in
    # the instant before the old updater stops accepting, gets 503 Retry-After.
    def pushed():
        st2, hdr, b = host.push(releases.get("1.1"))
        if st2 == 503:
            assert hdr.get("retry-after"), b
            return None
        assert st2 == 200, b
        return b
    b = wait_until(pushed, 60, "an agent push after the self-update", interval=0.2)
    assert b["release"]["version"] == "1.1"

    h = host.wait_updater("2.0", "committed", timeout=PROBATION_DEADLINE_MS / 1000 + 20)
    assert h["updater"]["release"]["version"] == "2.0"
    assert h["updater"]["last_self_update"]["from_version"] == FALLBACK_VERSION
    # The agent was restarted by the 1.1 push only, never by the handover.
    hist = host.history()
    kinds = [(e["kind"], e["result"]) for e in hist]
    assert ("update-self", "committed") in kinds
    assert host.tree_state().keys() == {"active"}
    host.assert_tree_clean()
    # The updater runs from its tree's current.
    pids = host.updater_pids()
    exe = os.readlink("/proc/%d/exe" % pids[-1])
    assert exe.startswith(os.path.realpath(host.tree) + "/releases/active/"), exe


def test_handover_adopts_agent(host, releases):
    agent = host.agent_pid()
    st, _, body = host.push_self(releases.get("2.0"))
    assert st == 200, body
    # SIGHUP to the launcher while the new updater is on probation (the
    # stable window is 4 s): forwarded, the probation goes on.
    host.proc.signal(signal.SIGHUP)
    h = host.wait_updater("2.0", "committed", timeout=PROBATION_DEADLINE_MS / 1000 + 20)
    assert h["agent"]["pid"] == agent
    assert host.proc.alive() and "SIGHUP: forwarded" in host.proc.stderr()
    os.kill(agent, 0)  # still the same live process
    # A second self-update goes from 2.0 to 2.1 and keeps prev.
    st, _, body = host.push_self(releases.get("2.1"))
    assert st == 200, body
    h = host.wait_updater("2.1", "committed", timeout=PROBATION_DEADLINE_MS / 1000 + 20)
    assert h["agent"]["pid"] == agent
    assert set(host.tree_state()) == {"active", "prev"}
    st, _, b = host.push(releases.get("1.1"))
    assert st == 200, b


@pytest.mark.parametrize("kind", ["exit-at-once", "hang", "crash-later"])
def test_broken_updater_reverted(host, releases, kind):
    agent = host.agent_pid()
    before = host.tree_state()
    st, _, body = host.push_self(releases.get("3.0", updater_kind=kind))
    assert st == 200, body
    h = host.wait_updater(FALLBACK_VERSION, "reverted",
                          timeout=PROBATION_DEADLINE_MS / 1000 + 20)
    last = h["updater"]["last_self_update"]
    assert last["to_version"] == "3.0", last
    assert {"exit-at-once": "exited with status 3 before serving",
            "hang": "not healthy in time",
            "crash-later": "killed by signal 14"}[kind] in last["reason"], last
    assert h["agent"]["pid"] == agent
    os.kill(agent, 0)
    assert host.tree_state() == before
    host.assert_tree_clean()
    assert os.listdir(os.path.join(host.tree, "releases", "failed")), "quarantined"
    res = [e["result"] for e in self_update_history(host)]
    assert res[-1] == "reverted", res
    # The previous updater works: an agent push succeeds.
    st, _, b = host.push(releases.get("1.1"))
    assert st == 200, b


def test_confirm_self_required(host, releases):
    before = host.tree_state()
    for confirm in (None, "false"):
        st, _, body = host.push_self(releases.get("2.0"), confirm=confirm)
        assert st == 400, body
        assert "confirm_self" in body["detail"]["error"]
        assert body["detail"]["rolled_back"] is False
    assert host.tree_state() == before
    host.assert_tree_clean()
    assert host.health()["version"] == FALLBACK_VERSION


def test_unknown_self_update_mode_refused(host, releases):
    """mode is 'full' or 'delta' (test_delta_self.py): anything else is a 400 naming the field."""
    before = host.tree_state()
    tgz = releases.get("2.0")
    r = curl(host.pki, host.pki.master, host.url("/update-self"), "-F", "sha=self",
             "-F", "sha256=%s" % sha256_file(tgz), "-F", "confirm_self=true", "-F", "mode=patch",
             "-F", "tarball=@%s;type=application/gzip" % tgz)
    body = json.loads(r[2])
    assert r[0] == 400, body
    assert body["detail"]["field"] == "mode" and "'full' or 'delta'" in body["detail"]["error"], body
    assert host.tree_state() == before
    host.assert_tree_clean()
    assert host.health()["version"] == FALLBACK_VERSION


def test_preflight_failure_422(host, releases, tmp_path):
    agent = host.agent_pid()
    before = host.tree_state()
    manifest = json.dumps({"name": "tandem-agent", "version": "9.0",
                           "entrypoint": "bin/tandem-agent",
                           "updater_entrypoint": "bin/tandem-updater"}).encode()
    bad = make_tgz(str(tmp_path / "bad.tar.gz"), [
        ("bin", None, 0),
        ("bin/tandem-agent", b"#!/bin/sh\nexit 0\n", 0o755),
        ("bin/tandem-updater", b"#!/bin/sh\necho self-test broken >&2\nexit 7\n", 0o755),
        ("manifest.json", manifest, 0o644)])
    st, _, body = host.push_self(bad)
    assert st == 422, body
    assert "preflight" in body["detail"]["error"]
    assert "self-test broken" in body["detail"]["stderr"]
    # An agent-only release (no updater_entrypoint) is refused too.
    manifest2 = json.dumps({"name": "tandem-agent", "version": "9.1",
                            "entrypoint": "bin/tandem-agent"}).encode()
    agent_only = make_tgz(str(tmp_path / "agent-only.tar.gz"), [
        ("bin", None, 0), ("bin/tandem-agent", b"#!/bin/sh\nexit 0\n", 0o755),
        ("manifest.json", manifest2, 0o644)])
    st, _, body = host.push_self(agent_only)
    assert st == 422, body
    assert "updater_entrypoint" in body["detail"]["error"]
    assert host.tree_state() == before
    host.assert_tree_clean()
    h = host.health()
    assert h["version"] == FALLBACK_VERSION and h["agent"]["pid"] == agent
    assert [e["result"] for e in self_update_history(host)] == ["refused", "refused"]


def test_self_update_needs_launcher(procs, tmp_path, pki, releases):
    """An updater started without tandem-launcher refuses (nobody would start the new one)."""
    h = Host(procs, tmp_path, pki)  # writes the configuration; its launcher is not used
    h.close()
    p = Proc([bin_path("tandem-updater"), "--config", h.conf], str(tmp_path / "logs2"),
             name="updater-alone")
    procs.append(p)
    h.port = int(p.wait_line(r"^LISTENING port=(\d+)$", timeout=30).group(1))
    st, _, body = h.push_self(releases.get("2.0"))
    assert st == 503, body
    assert "launcher" in body["detail"]["error"]
    assert not os.path.exists(os.path.join(h.tree, "releases", "active"))
    assert p.stop(timeout=20) == 0


# Crash sweep: the updater dies (test hook _exit) at each step of the
# self-update; the launcher restarts, finishes or undoes, and the agent stays.
# First self-update of the tree: the switch is a first install.
SWEEP = [
    ("self.update.journal_staging", False),
    ("self.staged", False),
    ("self.preflight_passed", False),
    ("self.update.journal_switching", False),
    ("self.update.first_renamed", False),
    ("self.update.current_created", False),
    ("self.switched", False),
    ("self.handover_written", True),
    ("self.responded", True),
]


@pytest.mark.sweep
@pytest.mark.parametrize("point,committed", SWEEP)
def test_crash_sweep_self_update(procs, tmp_path, pki, releases, point, committed):
    h = Host(procs, tmp_path, pki, env={"TANDEM_TEST_CRASH_AT": point})
    try:
        st, _, body = h.push(releases.get("1.0"))
        assert st == 200, body
        agent = h.agent_pid()
        r = h.push_self(releases.get("2.0"), check=False)
        if r is not None:
            assert r[0] == 200, r
            assert committed, r
        if committed:
            hh = h.wait_updater("2.0", "committed", timeout=PROBATION_DEADLINE_MS / 1000 + 20)
        else:
            def back():  # restarted (the launcher's output), then /health
                return len(h.updater_pids()) >= 2 and h.wait_updater(FALLBACK_VERSION)
            hh = wait_until(back, 30, "the updater to be restarted")
        assert hh["agent"]["pid"] == agent
        os.kill(agent, 0)
        h.assert_tree_clean()
        if not committed:
            assert h.tree_state() == {}
            res = [e["result"] for e in self_update_history(h)]
            assert res == ["undone"], res
        # The next self-update (no crash point left on its path once passed) works.
        if committed:
            assert h.tree_state().keys() == {"active"}
    finally:
        h.close()


def test_launcher_restart_keeps_start_counter(procs, tmp_path, pki, releases):
    """The launcher dies (kill -9) while a hanging new updater is on probation: the
    next launcher stops the orphaned updater, continues the probation with the
    persisted start counter (max-starts 2: one more start, then the revert) and
    keeps the agent; a second launcher for the same install dir is refused."""
    h = Host(procs, tmp_path, pki)
    h2 = None
    try:
        st, _, body = h.push(releases.get("1.0"))
        assert st == 200, body
        agent = h.agent_pid()
        st, _, body = h.push_self(releases.get("3.0", updater_kind="hang"))
        assert st == 200, body
        hand = os.path.join(h.tree, "state", "handover.json")

        def started_once():
            try:
                with open(hand) as f:
                    return json.load(f)["starts"] == 1 and len(h.updater_pids()) == 2
            except (OSError, ValueError):
                return False
        wait_until(started_once, 20, "the new updater's first start")
        hung = h.updater_pids()[-1]
        os.killpg(h.proc.pid, signal.SIGKILL)
        h.proc.p.wait()
        # The hung updater outlived its launcher (own session) and holds the socket.
        os.kill(hung, 0)

        h2 = Host.__new__(Host)
        h2.__dict__.update(h.__dict__)
        h2.proc = Proc(h.proc.argv, str(tmp_path / "logs2"), name="launcher2")
        procs.append(h2.proc)
        h2.port = int(h2.proc.wait_line(r"^LISTENING port=(\d+)$", timeout=30).group(1))
        # The new launcher stopped that orphan (pid + start time + boot id) before binding.
        assert "left running by an earlier launcher" in h2.proc.stderr()
        assert not os.path.exists("/proc/%d" % hung) or \
            open("/proc/%d/stat" % hung).read().split(") ")[1][0] == "Z"
        # A second launcher for the same install dir refuses to run.
        r = subprocess.run(h.proc.argv, capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and "another tandem-launcher" in r.stderr, r.stderr
        hh = h2.wait_updater(FALLBACK_VERSION, "reverted",
                             timeout=PROBATION_DEADLINE_MS / 1000 + 20)
        out = h2.proc.stdout()
        # Exactly one more start of 3.0 (the second of MAX_STARTS), then the revert.
        assert out.count("version=3.0") == 1, out
        assert "SELF_UPDATE reverted 3.0" in out
        assert hh["agent"]["pid"] == agent
        assert "no healthy answer" in hh["updater"]["last_self_update"]["reason"]
        h2.assert_tree_clean()
    finally:
        (h2 or h).close()
        h.close()


def test_self_test_checks_state_dirs(tmp_path, pki):
    """--self-test (the preflight of /update-self) fails when a state directory is unusable."""
    upd = bin_path("tandem-updater")
    inst = tmp_path / "inst"
    conf = tmp_path / "u.conf"
    conf.write_text("install_dir = %s\nca = %s\ncert = %s\nkey = %s\nagent_config = x\n"
                    % (inst, pki.ca_crt, pki.updater[0], pki.updater[1]))
    r = subprocess.run([upd, "--config", str(conf), "--self-test"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    (inst / "updater").mkdir(parents=True)
    (inst / "updater" / "state").write_text("not a directory")
    r = subprocess.run([upd, "--config", str(conf), "--self-test"], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "updater/state: not a writable directory" in r.stderr, r.stderr


# The switch steps that only a self-update over an earlier one goes through
# (first self-updates are swept above): N good self-updates first, then the
# one that crashes; undone, the updater of the last good one is back.
SWEEP_LATER = [
    ("self.update.exchanged", 1),
    ("self.update.old_to_prev", 1),
    ("self.update.prev_moved", 2),
]


@pytest.mark.sweep
@pytest.mark.parametrize("point,before", SWEEP_LATER)
def test_crash_sweep_later_self_update(procs, tmp_path, pki, releases, point, before):
    h = Host(procs, tmp_path, pki, env={"TANDEM_TEST_CRASH_AT": point}, stable_ms=300)
    try:
        st, _, body = h.push(releases.get("1.0"))
        assert st == 200, body
        agent = h.agent_pid()
        versions = ["2.0", "2.1"][:before]
        for v in versions:
            st, _, body = h.push_self(releases.get(v))
            assert st == 200, body
            h.wait_updater(v, "committed", timeout=PROBATION_DEADLINE_MS / 1000 + 20)
        slots = h.tree_state()
        starts = len(h.updater_pids())
        r = h.push_self(releases.get("3.0"), check=False)
        assert r is None, r  # cut by the crash
        def back():  # restarted (the launcher's output), then /health
            return len(h.updater_pids()) > starts and h.wait_updater(versions[-1])
        hh = wait_until(back, 30, "the previous updater to be back")
        assert hh["agent"]["pid"] == agent
        assert h.tree_state() == slots
        h.assert_tree_clean()
        assert [e["result"] for e in self_update_history(h)][-1] == "undone"
    finally:
        h.close()


def test_launcher_passes_updater_args(procs, tmp_path, pki, releases):
    """Arguments after "--" reach every updater: --seed installs the first agent
    release (the packaged service's way), and survive a self-update."""
    h = Host(procs, tmp_path, pki, stable_ms=300,
             updater_args=["--seed", releases.get("1.0")])
    try:
        hh = h.health()
        assert [r["version"] for r in hh["releases"]] == ["1.0"]
        agent = hh["agent"]["pid"]
        st, _, body = h.push_self(releases.get("2.0"))
        assert st == 200, body
        hh = h.wait_updater("2.0", "committed", timeout=PROBATION_DEADLINE_MS / 1000 + 20)
        assert hh["agent"]["pid"] == agent
        with open("/proc/%d/cmdline" % h.updater_pids()[-1], "rb") as f:
            assert b"--seed" in f.read()
    finally:
        h.close()
    # A stray argument without "--" is a usage error, not an updater argument.
    r = subprocess.run([bin_path("tandem-launcher"), "--config", h.conf, "--updater",
                        bin_path("tandem-updater"), "stray"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
