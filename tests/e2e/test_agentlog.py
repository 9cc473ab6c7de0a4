"""The logs the updater owns stay within log_max: the agent's stdout/stderr
(agent_log, INSTALL_DIR/state/agent.log), which the updater copies to
agent.log.1 and truncates (updater/logcap) while the agent keeps writing to
it, and the updater's own log_file, which it renames to updater.log.1 before
a line would pass the cap (common/log); tandem-launcher caps the updaters'
output (state/updater.log) as the updater caps the agent's. At most log_keep rotated copies
remain. The agent here is the log-flood build: it writes to stderr as fast
as it can, for ever, and the host keeps working.
"""

import os
import time

import pytest

from conftest import wait_until
from release_util import Releases
from test_selfupdate import Host as LauncherHost
from test_updater import Host, assert_clean_exit
from worker_util import curl_run

LOG_MAX = 256 << 10
LOG_KEEP = 2
# How far agent.log may pass log_max while one check and copy run, when the
# agent writes at full speed on a loaded machine (the updater wakes up on
# every write; the copy takes a few milliseconds).
FLOOD_SLACK = 16 * LOG_MAX


@pytest.fixture(scope="module")
def releases(build_dir, tmp_path_factory):
    return Releases(build_dir, str(tmp_path_factory.mktemp("releases")))


def sizes(path, keep):
    """{suffix: size} of PATH and PATH.1 .. PATH.(KEEP + 1) that exist."""
    out = {}
    for suffix in [""] + [".%d" % i for i in range(1, keep + 2)]:
        try:
            out[suffix] = os.path.getsize(path + suffix)
        except FileNotFoundError:
            pass
    return out


def log_health_requests(h, pki, releases):  # noqa: F811
    """Install 1.0.0, then 4 x 100 /health requests on kept-alive
    connections: at log_level debug two lines each, several times a 16 KiB
    log_max."""
    st, _, body = h.push(releases.get("1.0.0"))
    assert st == 200, body
    url = h.url("/health")
    for _ in range(4):
        # 99 more URLs: curl keeps one connection alive for all of them.
        r = curl_run(url, pki.ca_crt, pki.master, *([url] * 99), max_time=60, real_curl=True)
        assert r.rc == 0 and r.status == 200, r.stderr


def assert_capped(path, keep, cap, rotated_cap):
    """PATH and exactly KEEP rotated copies exist, PATH within CAP, the
    copies within ROTATED_CAP; returns their sizes."""
    got = sizes(path, keep)
    assert set(got) == {""} | {".%d" % i for i in range(1, keep + 1)}, got
    assert got[""] <= cap, got
    assert all(v <= rotated_cap for k, v in got.items() if k), got
    return got


def test_agent_log_capped_under_flood(procs, tmp_path, pki, releases):
    h = Host(procs, tmp_path, pki, log_max=str(LOG_MAX), log_keep=str(LOG_KEEP))
    log = os.path.join(h.root, "state", "agent.log")
    try:
        st, _, body = h.push(releases.get("1.0.0", "log-flood"))
        assert st == 200, body
        # The flood runs: watch every file for 3 s while the agent writes.
        worst, seen_rotated = {}, 0
        end = time.monotonic() + 3
        while time.monotonic() < end:
            for k, v in sizes(log, LOG_KEEP).items():
                worst[k] = max(worst.get(k, 0), v)
            seen_rotated = max(seen_rotated, len(worst) - 1)
        print("largest sizes seen:", worst)
        assert ".%d" % (LOG_KEEP + 1) not in worst, worst
        assert seen_rotated == LOG_KEEP, worst  # it did flood, and was rotated
        assert worst[""] <= LOG_MAX + FLOOD_SLACK, worst
        for i in range(1, LOG_KEEP + 1):
            assert worst[".%d" % i] <= 2 * LOG_MAX, worst
        # The host keeps working: the agent answers, and a push goes through.
        assert h.agent_health()["version"] == "1.0.0"
        st, _, body = h.push(releases.get("2.0.0"))
        assert st == 200, body
        assert h.agent_health()["version"] == "2.0.0"
    finally:
        if h.proc.alive():
            assert_clean_exit(h.proc)


def test_updater_log_file_capped(procs, tmp_path, pki, releases):
    updater_log = str(tmp_path / "updater.log")
    cap = 16 << 10
    h = Host(procs, tmp_path, pki, log_max=str(cap), log_keep=str(LOG_KEEP),
             log_file=updater_log)
    try:
        log_health_requests(h, pki, releases)
        assert_capped(updater_log, LOG_KEEP, cap, cap)
        # Whole lines only, the newest in the live file.
        for suffix in ("", ".1", ".2"):
            with open(updater_log + suffix) as f:
                text = f.read()
            assert text.endswith("\n"), suffix
            assert all(" tandem-updater[" in ln for ln in text.splitlines()), suffix
        assert h.agent_health()["version"] == "1.0.0"
    finally:
        if h.proc.alive():
            assert_clean_exit(h.proc)


def test_launcher_caps_updater_output(procs, tmp_path, pki, releases):
    """The updater logs to stderr, which tandem-launcher appends to
    state/updater.log: /health requests at log_level debug (two lines each)
    pass log_max several times, and the launcher keeps the file capped."""
    cap = 16 << 10
    h = LauncherHost(procs, tmp_path, pki, cfg={"log_max": str(cap), "log_keep": "1"})
    log = os.path.join(h.root, "state", "updater.log")
    try:
        log_health_requests(h, pki, releases)
        # The watcher runs on its own thread: until it has caught up.
        wait_until(lambda: os.path.getsize(log) <= cap, 10, "updater.log back under log_max")
        assert_capped(log, 1, cap, 2 * cap)
        assert h.health()["status"] == "ok"
    finally:
        h.close()
