"""The install probe on a starved host: an attempt that gets no answer in
time (connect, handshake or answer) is inconclusive and retried until the
probe deadline; only an answer that is wrong, the agent exiting, or a whole
probe_deadline without any answer while it stays alive fail a release. The
starvation is made deterministic with SIGSTOP / SIGCONT of the new agent."""

import http.server
import json
import os
import re
import signal
import ssl
import threading

import pytest

from conftest import wait_until
from release_util import sha256_file
from test_updater import Host, agent_procs, assert_clean_exit, pid_alive, releases  # noqa: F401

# One attempt may take 300 ms; the stability window is long enough to stop
# the agent inside it for several attempts.
KEYS = dict(probe_deadline="6s", probe_stable="3s", probe_attempt_timeout="300ms",
            probe_max_interval="100ms", liveness_interval="0")


def first_passes(h):
    return h.proc.stderr().count(": first pass after ")


def push_and_stop_in_window(h, releases):  # noqa: F811
    """Push 1.0.0, then push 1.1.0 in a thread and SIGSTOP its agent as soon
    as the probe first passes (the updater logs it), inside the stability
    window. Returns (thread, result dict, stopped pid)."""
    st, _, body = h.push(releases.get("1.0.0"))
    assert st == 200, body
    old = h.health()["agent"]["pid"]
    v11 = releases.get("1.1.0")
    n = first_passes(h)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=h.push(v11)))
    t.start()
    wait_until(lambda: first_passes(h) > n, 30, "the probe's first pass")
    pids = [p for p in agent_procs(h.root) if p != old]
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGSTOP)
    return t, result, pids[0]


def inconclusive_count(h):
    return h.proc.stderr().count("stability window, no answer (inconclusive)")


def test_stopped_agent_longer_than_an_attempt_passes(procs, tmp_path, pki, releases):  # noqa: F811
    """The new agent is stopped (starved) inside the stability window for
    three attempts' timeouts, less than the deadline: the push succeeds."""
    h = Host(procs, tmp_path, pki, **KEYS)
    t, result, pid = push_and_stop_in_window(h, releases)
    try:
        wait_until(lambda: inconclusive_count(h) >= 3 or not t.is_alive(), 30,
                   "three attempts without an answer")
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass  # the probe gave up and the agent was stopped: the push failed
    t.join(60)
    assert not t.is_alive()
    st, _, body = result["r"]
    assert st == 200 and body["status"] == "updated", body
    assert body["release"]["version"] == "1.1.0", body
    assert inconclusive_count(h) >= 3
    agent = h.health()["agent"]
    assert agent["pid"] == pid, agent
    assert re.search(r"passed for .* \(\d+ attempts, [1-9]\d* without an answer\)",
                     agent["last_probe"]), agent
    h.assert_clean()
    assert_clean_exit(h.proc)


def test_silent_for_the_whole_deadline_rolls_back(procs, tmp_path, pki, releases):  # noqa: F811
    """Stopped for good: only after probe_deadline without any answer is the
    release failed, and the known-good one restored."""
    h = Host(procs, tmp_path, pki, **dict(KEYS, probe_deadline="2s"))
    t, result, _ = push_and_stop_in_window(h, releases)
    t.join(60)
    assert not t.is_alive()
    st, _, body = result["r"]
    assert st == 409, body
    d = body["detail"]
    assert d["rolled_back"] is True, d
    assert re.search(r"stability window: no answer for \d+ ms while the agent stayed alive",
                     d["error"]), d
    assert inconclusive_count(h) >= 3
    h.wait_agent("1.0.0")
    assert h.health()["status"] == "ok"
    h.assert_clean()
    assert_clean_exit(h.proc)


def test_wrong_version_fails_at_once(procs, tmp_path, pki, releases):  # noqa: F811
    """A release that answers 200 with the wrong version is evidence before
    its first pass too: it is rolled back long before probe_deadline, which
    only bounds silence."""
    deadline_ms = 20000
    h = Host(procs, tmp_path, pki, **dict(KEYS, probe_deadline="%dms" % deadline_ms))
    st, _, body = h.push(releases.get("1.0.0"))
    assert st == 200, body
    st, _, body = h.push(releases.get("3.0.0", "wrong-version"))
    assert st == 409, body
    d = body["detail"]
    assert d["rolled_back"] is True and d["kind"] == "probe_failed", d
    assert "wrong answer after" in d["error"], d
    st, hist = h.get("/history")
    last = hist["history"][-1]
    assert last["result"] == "rolled_back", last
    assert last["timings"]["probe_ms"] < deadline_ms / 4, last
    h.wait_agent("1.0.0")
    h.assert_clean()
    assert_clean_exit(h.proc)


@pytest.mark.parametrize("retries", [0, 2])
def test_restored_release_crashing_once(procs, tmp_path, pki, releases, retries):  # noqa: F811
    """A bad push is rolled back and the known-good release crashes once on
    its restart (a "fail-once" marker its agent removes): with restore
    retries the host ends healthy on the good release; without (0) it is
    both bad, as every host was before the retries."""
    h = Host(procs, tmp_path, pki, restore_probe_retries=str(retries),
             restore_retry_backoff="100ms")
    st, _, body = h.push(releases.get("1.0.0", "fail-marker"))
    assert st == 200, body
    marker = os.path.join(os.path.dirname(h.agent_conf), "fail-once")
    open(marker, "w").close()
    st, _, body = h.push(releases.get("1.1.0", "exit-at-once"))
    assert not os.path.exists(marker)  # the restored agent did crash once
    d = body["detail"]
    if retries == 0:
        assert st == 500 and d["rolled_back"] is False, body
        assert h.health()["both_bad"] is True
    else:
        assert st == 409 and d["rolled_back"] is True, body
        assert "passed at attempt 2" in d["error"], d
        h.wait_agent("1.0.0")
        hl = h.health()
        assert hl["both_bad"] is False and hl["status"] == "ok", hl
        assert "restored release" in h.proc.stderr() and "attempt 1 of 3" in h.proc.stderr()
    h.assert_clean()
    assert_clean_exit(h.proc)


def into_both_bad(h, releases, marker_name):  # noqa: F811
    """Install 1.0.0 (the fail-marker build), create its MARKER_NAME file
    (fail-once: it crashes once; fail-marker: while the file exists), push
    a release that exits at once: with no restore retries the host is both
    bad. Returns the marker's path."""
    st, _, body = h.push(releases.get("1.0.0", "fail-marker"))
    assert st == 200, body
    marker = os.path.join(os.path.dirname(h.agent_conf), marker_name)
    open(marker, "w").close()
    st, _, body = h.push(releases.get("1.1.0", "exit-at-once"))
    assert st == 500 and body["detail"]["rolled_back"] is False, body
    return marker


def test_both_bad_retries_the_good_release(procs, tmp_path, pki, releases):  # noqa: F811
    """No restore retries: the good release's one crash makes the host both
    bad; the periodic both_bad retry restarts and probes it, and the host
    is healthy again without a push."""
    h = Host(procs, tmp_path, pki, restore_probe_retries="0", both_bad_retries="3",
             both_bad_retry_interval="2s")
    into_both_bad(h, releases, "fail-once")
    hl = h.health()
    assert hl["status"] == "both_bad", hl
    r = hl["both_bad_retry"]
    assert r["attempts"] == 0 and r["max"] == 3 and r["running"] is False, r
    assert 0 <= r["next_in_ms"] <= 2000, r
    # The pass removes state/both_bad.json: wait for that (a file) before asking /health
    # (a curl and a handshake in the updater per poll).
    state = os.path.join(h.root, "state", "both_bad.json")
    wait_until(lambda: not os.path.exists(state), 30, "the both_bad retry to pass")
    wait_until(lambda: h.health()["both_bad"] is False, 30, "the both_bad retry to pass")
    hl = h.health()
    assert hl["status"] == "ok" and "both_bad_retry" not in hl, hl
    h.wait_agent("1.0.0")
    assert "passed its probe; the host is healthy again" in h.proc.stderr()
    h.assert_clean()
    assert_clean_exit(h.proc)


def test_both_bad_retries_are_bounded_and_a_push_wins(procs, tmp_path, pki, releases):  # noqa: F811
    """A good release that keeps failing: both_bad_retries retries, then
    none; a push works at any time and ends both_bad."""
    h = Host(procs, tmp_path, pki, restore_probe_retries="0", both_bad_retries="2",
             both_bad_retry_interval="100ms")
    marker = into_both_bad(h, releases, "fail-marker")

    def exhausted():
        r = h.health().get("both_bad_retry")
        return (r is not None and r["attempts"] == 2 and not r["running"] and
                r["next_in_ms"] is None)
    wait_until(exhausted, 30, "two both_bad retries, then none")
    assert h.health()["status"] == "both_bad"
    assert "no more retries" in h.proc.stderr()
    os.unlink(marker)
    st, _, body = h.push(releases.get("2.0.0"))
    assert st == 200, body
    hl = h.health()
    assert hl["both_bad"] is False and hl["status"] == "ok", hl
    h.assert_clean()
    assert_clean_exit(h.proc)


def restart_hard(h):
    """kill -9 the updater and start it again on the same tree."""
    h.proc.p.kill()
    h.proc.p.wait()
    h.start()


def test_both_bad_survives_a_restart(procs, tmp_path, pki, releases):  # noqa: F811
    """both_bad is kept in state/both_bad.json: an updater killed with -9
    and started again still reports it with its retry schedule, the retries
    go on from the count they had, and the first pass removes the file."""
    interval_ms = 4000
    h = Host(procs, tmp_path, pki, restore_probe_retries="0", both_bad_retries="3",
             both_bad_retry_interval="%dms" % interval_ms)
    marker = into_both_bad(h, releases, "fail-marker")
    state = os.path.join(h.root, "state", "both_bad.json")
    assert json.load(open(state)) == {"attempts": 0}
    # One retry fails (the marker stays): the count is kept on disk.
    wait_until(lambda: json.load(open(state)) == {"attempts": 1}, 30, "a failed retry")

    restart_hard(h)
    hl = h.health()
    assert hl["status"] == "both_bad" and hl["both_bad"] is True, hl
    r = hl["both_bad_retry"]
    # The next retry is the second, after the doubled interval, from the restart.
    assert r["attempts"] == 1 and r["max"] == 3, r
    assert r["next_in_ms"] is not None and 0 <= r["next_in_ms"] <= 2 * interval_ms, r
    assert "both bad since an earlier run (1 retries made, retrying)" in h.proc.stderr()
    os.unlink(marker)
    # The retry comes after the doubled interval (8 s): wait for the pass to remove the file,
    # then ask /health.
    wait_until(lambda: not os.path.exists(state), 60, "the retry after the restart")
    wait_until(lambda: h.health()["both_bad"] is False, 60, "the retry after the restart")
    assert not os.path.exists(state)
    assert h.health()["status"] == "ok"
    h.wait_agent("1.0.0")

    # Retries used up before the restart: none after it either.
    restart_hard(h)
    assert h.health()["both_bad"] is False


def test_both_bad_without_retries_left_survives_a_restart(procs, tmp_path, pki,  # noqa: F811
                                                          releases):
    """Retries used up, then kill -9 and a restart: still both_bad, no retry
    planned; a push ends it and removes the file."""
    h = Host(procs, tmp_path, pki, restore_probe_retries="0", both_bad_retries="1",
             both_bad_retry_interval="100ms")
    marker = into_both_bad(h, releases, "fail-marker")
    state = os.path.join(h.root, "state", "both_bad.json")
    wait_until(lambda: json.load(open(state)) == {"attempts": 1}, 30, "the one retry")
    restart_hard(h)
    hl = h.health()
    assert hl["status"] == "both_bad", hl
    r = hl["both_bad_retry"]
    assert r["attempts"] == 1 and r["next_in_ms"] is None and not r["running"], r
    os.unlink(marker)
    st, _, body = h.push(releases.get("2.0.0"))
    assert st == 200, body
    assert h.health()["both_bad"] is False
    assert not os.path.exists(state)
    h.assert_clean()


class ForeignAgent:
    """A foreign HTTPS server on PORT that answers every GET with 200 and
    the /health body a release VERSION with SHA256 would give, with the
    agent's own certificate (so it passes the probe's pin): what a probe
    would take for the release. Counts the requests it answered."""

    def __init__(self, pki, port, version, sha256):
        body = json.dumps({"status": "ok", "version": version,
                           "release": {"sha": "label", "sha256": sha256}}).encode()
        seen = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.agent[0], pki.agent[1])
        ctx.load_verify_locations(pki.ca_crt)
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.thread = threading.Thread(target=self.srv.serve_forever,
                                       kwargs={"poll_interval": 0.01})
        self.thread.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join()


def test_agent_gone_before_ready_is_not_probed(procs, tmp_path, pki, releases):  # noqa: F811
    """The new agent cannot bind its port because a foreign server holds it,
    one that answers /health with 200 and exactly the new release's version
    and sha256. The agent exits before READY: the start fails at once as
    "exited before READY" with the agent's output, the foreign server is
    never asked, and the known-good release is restored."""
    h = Host(procs, tmp_path, pki, restore_probe_retries="3", restore_retry_backoff="200ms",
             liveness_interval="0")
    st, _, body = h.push(releases.get("1.0.0", "fail-marker"))
    assert st == 200, body
    old = h.health()["agent"]["pid"]
    hold = os.path.join(os.path.dirname(h.agent_conf), "hold")
    open(hold, "w").close()
    v11 = releases.get("1.1.0", "fail-marker")
    result = {}
    t = threading.Thread(target=lambda: result.update(r=h.push(v11)))
    t.start()
    foreign = None
    try:
        # The old agent is stopped and the new one waits before it listens. Its
        # own log line says it found the marker (a scan of /proc alone can catch
        # the old agent mid-exit and the new one before its exec).
        agent_log = os.path.join(h.root, "state", "agent.log")
        held = "[%d]: warn: fail-marker test build: hold found"

        def holding():
            try:
                with open(agent_log, errors="replace") as f:
                    text = f.read()
            except FileNotFoundError:
                return []
            return [p for p in agent_procs(h.root) if p != old and held % p in text]
        wait_until(holding, 30, "the new agent holding before it listens")
        assert not pid_alive(old)
        new = [p for p in agent_procs(h.root) if p != old]
        assert len(new) == 1, new
        foreign = ForeignAgent(pki, h.agent_port, "1.1.0", sha256_file(v11))
        # It really would pass a probe of 1.1.0.
        ah = h.agent_health()
        assert ah["version"] == "1.1.0" and ah["release"]["sha256"] == sha256_file(v11), ah
        del foreign.requests[:]
        os.unlink(hold)
        wait_until(lambda: not pid_alive(new[0]), 30, "the new agent to exit", interval=0.002)
    finally:
        if os.path.exists(hold):
            os.unlink(hold)
        if foreign is not None:
            foreign.close()  # the restored agent needs the port (restore retries cover a race)
    t.join(60)
    assert not t.is_alive()
    assert foreign.requests == [], foreign.requests
    st, _, body = result["r"]
    assert st == 409, body
    d = body["detail"]
    assert d["rolled_back"] is True and d["kind"] == "probe_failed", d
    assert re.match(r"new release did not start: agent: exited before READY "
                    r"\(exited with status 1\)", d["error"]), d
    assert "cannot bind 127.0.0.1:%d" % h.agent_port in d["stderr"], d
    last = h.history()[-1]
    assert last["result"] == "rolled_back" and last["version"] == "1.1.0", last
    assert "exited before READY" in last["error"], last
    h.wait_agent("1.0.0")
    assert h.health()["status"] == "ok"
    h.assert_clean()
    assert_clean_exit(h.proc)
