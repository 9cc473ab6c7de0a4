"""tandem-launcher speaking systemd's notification protocol to a fake
NOTIFY_SOCKET (an AF_UNIX datagram socket opened by the test, with
SO_PASSCRED so every message shows the pid that sent it): READY=1 only once
its updater answers /health over mTLS, WATCHDOG=1 every half WATCHDOG_USEC
while the updater answers, no more pings while the updater is SIGSTOPped,
pings again after SIGCONT, STOPPING=1 on SIGTERM. The real systemd side
(a hung updater restarted) is in test_systemd.py.
"""

import os
import shutil
import signal
import socket
import struct
import tempfile
import time

import pytest

from conftest import Proc, bin_path, wait_until
from worker_util import curl
from worker_util import write_worker_configs

WATCHDOG_MS = 4000   # a check every 2 s, each with a 1 s timeout


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tandem-wd.", dir="/tmp")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.msgs = []   # (monotonic time, sender pid, {key: value})

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def poll(self, timeout):
        """Receive what arrives within TIMEOUT seconds (at least one pass)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            self.sock.settimeout(max(left, 0.001))
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except (socket.timeout, BlockingIOError):
                return
            pid = None
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", cdata[:12])[0]
            fields = dict(ln.split("=", 1) for ln in data.decode().split("\n") if "=" in ln)
            self.msgs.append((time.monotonic(), pid, fields))

    def wait_for(self, key, value=None, timeout=20.0, since=0):
        """The first message from index SINCE on with KEY (= VALUE); its index."""
        def seen():
            self.poll(0.05)
            for i in range(since, len(self.msgs)):
                f = self.msgs[i][2]
                if key in f and (value is None or f[key] == value):
                    return i + 1
            return None
        return wait_until(seen, timeout, "sd_notify %s=%s" % (key, value or "*")) - 1

    def pings(self, since=0):
        return [t for t, _, f in self.msgs[since:] if f.get("WATCHDOG") == "1"]


@pytest.fixture
def fake_systemd():
    s = FakeSystemd()
    yield s
    s.close()


def start_launcher(procs, tmp_path, pki, env):
    root = str(tmp_path / "install")
    _, _, conf = write_worker_configs(tmp_path, pki, root)
    p = Proc([bin_path("tandem-launcher"), "--config", conf,
              "--updater", bin_path("tandem-updater")],
             str(tmp_path / "logs"), name="launcher", env=env)
    procs.append(p)
    port = int(p.wait_line(r"^LISTENING port=(\d+)$", timeout=30).group(1))
    upid = int(p.wait_line(r"^UPDATER pid=(\d+)", timeout=30).group(1))
    return p, port, upid


def health_status(pki, port):
    r = curl(pki, pki.master, "https://127.0.0.1:%d/health" % port, check=False)
    return None if r is None else r[0]


def test_ready_watchdog_and_hung_updater(procs, tmp_path, pki, fake_systemd):
    fs = fake_systemd
    launcher, port, upid = start_launcher(procs, tmp_path, pki, {
        "NOTIFY_SOCKET": fs.path, "WATCHDOG_USEC": str(WATCHDOG_MS * 1000)})

    # READY=1 from the launcher itself (NotifyAccess=main), once /health answers.
    i = fs.wait_for("READY", "1")
    assert health_status(pki, port) == 200
    _, sender, fields = fs.msgs[i]
    assert sender == launcher.pid
    assert fields["STATUS"].startswith("serving: updater fallback, pid %d" % upid)
    assert all(m[1] == launcher.pid for m in fs.msgs)
    # The updater (and its agent) never see the unit's notification socket.
    with open("/proc/%d/environ" % upid, "rb") as f:
        env = f.read().split(b"\0")
    assert not [v for v in env if v.startswith((b"NOTIFY_SOCKET=", b"WATCHDOG_"))]

    # Periodic pings, about every half period.
    wait_until(lambda: fs.poll(0.1) or len(fs.pings()) >= 3, 20, "three watchdog pings")
    p = fs.pings()
    gaps = [b - a for a, b in zip(p, p[1:])]
    assert all(0.5 * WATCHDOG_MS / 2000 < g < WATCHDOG_MS / 1000 for g in gaps), gaps

    # A hung updater: its listening socket (the launcher's) still accepts, but
    # no TLS handshake completes. At most a ping from a check that was already
    # done, then none for longer than the watchdog period.
    os.kill(upid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        n = len(fs.msgs)
        fs.wait_for("STATUS", None, timeout=WATCHDOG_MS / 1000 + 5, since=n)
        fs.poll(WATCHDOG_MS / 1000 * 1.5)
        late = [t for t in fs.pings(n) if t > stopped + 0.2]
        assert late == [], "pings while the updater is stopped: %s" % late
        assert any(f.get("STATUS", "").startswith("updater pid %d not answering /health" % upid)
                   for _, _, f in fs.msgs[n:])
        assert launcher.alive()
    finally:
        os.kill(upid, signal.SIGCONT)

    # Answering again: pings resume (systemd would have restarted the unit by now).
    n = len(fs.msgs)
    fs.wait_for("WATCHDOG", "1", timeout=WATCHDOG_MS / 1000 + 10, since=n)
    assert any(f.get("STATUS", "").startswith("serving") for _, _, f in fs.msgs[n:])

    # STOPPING=1 on SIGTERM, before the updater is stopped.
    assert launcher.stop(timeout=30) == 0
    fs.wait_for("STOPPING", "1", timeout=5)


def test_ready_without_watchdog_and_never_ready(procs, tmp_path, pki, fake_systemd):
    """Without WATCHDOG_USEC: READY=1 and no pings. An updater that never
    answers /health never makes the launcher say READY=1."""
    fs = fake_systemd
    launcher, port, upid = start_launcher(procs, tmp_path, pki, {"NOTIFY_SOCKET": fs.path})
    fs.wait_for("READY", "1")
    fs.poll(1.5)
    assert fs.pings() == []
    assert launcher.stop(timeout=30) == 0
    fs.wait_for("STOPPING", "1", timeout=5)

    # An "updater" that runs but never answers: no READY=1, ever.
    fs.msgs.clear()
    other = tmp_path / "never"
    other.mkdir()
    mute = other / "mute-updater"
    mute.write_text("#!/bin/sh\nexec sleep 600\n")
    mute.chmod(0o755)
    root = str(other / "install")
    _, _, conf = write_worker_configs(other, pki, root)
    launcher = Proc([bin_path("tandem-launcher"), "--config", conf, "--updater", str(mute)],
                    str(other / "logs"), name="launcher", env={"NOTIFY_SOCKET": fs.path})
    procs.append(launcher)
    launcher.wait_line(r"^UPDATER pid=(\d+)", timeout=30)
    fs.poll(3)
    assert [f for _, _, f in fs.msgs if "READY" in f or "WATCHDOG" in f] == []
    assert launcher.stop(timeout=30) == 0
    fs.wait_for("STOPPING", "1", timeout=5)
