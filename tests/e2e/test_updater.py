"""End-to-end tests of tandem-updater: the real updater supervising
the real agent, releases built with the project's `make release`, pushed
with curl multipart over mutual TLS on 127.0.0.1.

Every refusal is checked for its status, its {"detail":{...}} body and that
nothing changed on disk (same active/prev, no staging, no journal).
"""

import io
import json
import os
import socket
import ssl
import subprocess
import signal
import tarfile
import time

import pytest

from conftest import Proc, bin_path, wait_until
from release_util import Releases, sha256_file
from worker_util import Worker, curl_run


# ---------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def releases(build_dir, tmp_path_factory):
    return Releases(build_dir, str(tmp_path_factory.mktemp("releases")))


class Host(Worker):
    """A worker whose tandem-updater runs directly (no launcher)."""

    def __init__(self, procs, tmp_path, pki, name="updater", **cfg):
        super().__init__(procs, tmp_path, pki, cfg)
        self.name = name
        self.start()

    def start(self, env=None, args=(), wait=True):
        self.proc = Proc([bin_path("tandem-updater"), "--config", self.conf] + list(args),
                         str(self.tmp / "logs"), name=self.name, env=env)
        self.procs.append(self.proc)
        if wait:
            m = self.proc.wait_line(r"^LISTENING port=(\d+)$", timeout=30)
            self.port = int(m.group(1))

    def snapshot(self):
        """What must not change on a refused push."""
        failed = os.path.join(self.root, "releases", "failed")
        return (self.slots(), sorted(os.listdir(failed)))

    def assert_clean(self):
        assert not os.path.exists(os.path.join(self.root, "releases", "active.new"))
        assert not os.path.exists(os.path.join(self.root, "releases", "prev.old"))
        assert not os.path.exists(os.path.join(self.root, "state", "journal.json"))


def assert_detail(body, rolled_back=False):
    assert set(body) == {"detail"}, body
    d = body["detail"]
    # The error body may carry more than these (kind, probe, field).
    assert {"error", "stderr", "rolled_back"} <= set(d), d
    assert d["rolled_back"] is rolled_back
    return d["error"]


def make_tgz(path, members, gz=True):
    """members: list of (TarInfo, bytes or None). Gzip level 1: what the updater
    unpacks is the same at any level, and level 9 of a release's binaries (several
    MB under ASan) cost about a second of CPU per tarball."""
    with (tarfile.open(path, "w:gz", compresslevel=1) if gz else tarfile.open(path, "w")) as t:
        for ti, data in members:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return path


def ti(name, type_=tarfile.REGTYPE, data=b"", mode=0o644, linkname=""):
    t = tarfile.TarInfo(name)
    t.type = type_
    t.mode = mode
    t.linkname = linkname
    t.size = len(data) if type_ == tarfile.REGTYPE else 0
    return t, (data if type_ == tarfile.REGTYPE else None)


def release_members(tarball, mutate=None):
    """The members of a real release, optionally changed by MUTATE(ti)."""
    out = []
    with tarfile.open(tarball, "r:gz") as t:
        for m in t.getmembers():
            data = t.extractfile(m).read() if m.isfile() else None
            if mutate is not None:
                mutate(m)
            out.append((m, data))
    return out


def assert_clean_exit(proc):
    """SIGTERM: a clean exit (0) and no sanitizer report."""
    assert proc.stop(timeout=20) == 0, proc.stderr()[-3000:]
    err = proc.stderr()
    assert "Sanitizer" not in err and "runtime error" not in err, err[-5000:]


@pytest.fixture
def host(procs, tmp_path, pki):
    h = Host(procs, tmp_path, pki)
    yield h
    if h.proc.alive():
        assert_clean_exit(h.proc)


# ---------------------------------------------------------------- tests

def test_update_rollback_history(host, releases, pki):
    h = host.health()
    assert h["role"] == "updater" and h["status"] == "no_release"
    assert h["releases"] == [] and h["operation"] is None

    v1 = releases.get("1.0.0")
    st, _, body = host.push(v1, label="v1 label")
    assert st == 200, body
    assert body["status"] == "updated"
    assert body["release"]["slot"] == "active" and body["release"]["version"] == "1.0.0"
    assert body["release"]["sha256"] == sha256_file(v1)
    assert body["release"]["sha"] == "v1 label"
    assert json.loads(body["probe"])["version"] == "1.0.0"
    ah = host.agent_health()
    assert ah["version"] == "1.0.0"
    assert ah["release"] == {"sha": "v1 label", "sha256": sha256_file(v1)}
    assert os.readlink(os.path.join(host.root, "current")) == "releases/active"

    v2 = releases.get("2.0.0")
    st, _, body = host.push(v2, label="v2")
    assert st == 200, body
    assert host.agent_health()["version"] == "2.0.0"
    st, rel = host.get("/releases")
    assert st == 200
    assert [(r["slot"], r["version"]) for r in rel["releases"]] == [("active", "2.0.0"),
                                                                    ("prev", "1.0.0")]
    h = host.health()
    assert h["status"] == "ok" and h["agent"]["state"] in ("starting", "running")
    assert h["agent"]["pid"] > 0

    st, body = host.rollback()
    assert st == 200, body
    assert body["status"] == "rolled_back" and body["release"]["version"] == "1.0.0"
    assert host.agent_health()["version"] == "1.0.0"
    st, rel = host.get("/releases")
    assert [(r["slot"], r["version"]) for r in rel["releases"]] == [("active", "1.0.0"),
                                                                    ("prev", "2.0.0")]
    host.assert_clean()

    st, hist = host.get("/history")
    assert st == 200
    kinds = [(e["kind"], e["result"]) for e in hist["history"]]
    assert kinds == [("update", "updated"), ("update", "updated"), ("rollback", "rolled_back")]
    assert hist["history"][0]["caller"] == pki.fingerprint(pki.master[0])
    assert hist["history"][0]["sha256"] == sha256_file(v1)
    assert hist["history"][0]["timings"]["total_ms"] >= 0

    # Every phase of an update has its time; a rollback has the phases it runs.
    phases = ("upload_ms", "extract_ms", "preflight_ms", "switch_ms", "probe_ms", "restore_ms",
              "total_ms")
    for e in hist["history"]:
        t = e["timings"]
        assert all(isinstance(t[k], int) and t[k] >= 0 for k in phases), e
        assert t["switch_ms"] + t["probe_ms"] <= t["total_ms"], e
        assert t["restore_ms"] == 0, e
    upd = hist["history"][1]["timings"]
    assert upd["upload_ms"] + upd["extract_ms"] + upd["preflight_ms"] + upd["switch_ms"] + \
        upd["probe_ms"] <= upd["total_ms"]
    rb = hist["history"][2]["timings"]
    assert rb["upload_ms"] == 0 and rb["extract_ms"] == 0 and rb["preflight_ms"] == 0

    # Only the master may push, roll back or list.
    before = host.snapshot()
    for path in ("/releases", "/history"):
        st, body = host.get(path, who=pki.updater)
        assert st == 403
    st, _, body = host.push(v2, who=pki.agent)
    assert st == 403
    assert_detail(body)
    assert host.snapshot() == before


@pytest.mark.parametrize("kind", ["exit-at-once", "wrong-version", "never-ready"])
def test_probe_failure_rolls_back(host, releases, kind):
    v1 = releases.get("1.0.0")
    st, _, body = host.push(v1)
    assert st == 200, body
    before = host.slots()
    bad = releases.get("3.0.0", kind)
    st, _, body = host.push(bad)
    assert st == 409, body
    err = assert_detail(body, rolled_back=True)
    if kind == "exit-at-once":
        # Gone before READY: the start fails, nothing is probed.
        assert "new release did not start: agent: exited before READY (exited with status 1)" \
            in err, err
    else:
        assert "new release failed its probe" in err, err
    # On the wire: the kind, the restored release's probe body (the old agent's
    # /health, so the caller sees what serves now); no form field was at fault.
    d = body["detail"]
    assert d["kind"] == "probe_failed", d
    assert json.loads(d["probe"])["version"] == "1.0.0", d
    assert "field" not in d, d
    # The old release serves again, verified through the agent itself.
    ah = host.agent_health()
    assert ah["version"] == "1.0.0" and ah["release"]["sha256"] == sha256_file(v1)
    assert host.slots() == before
    host.assert_clean()
    failed = os.listdir(os.path.join(host.root, "releases", "failed"))
    assert len(failed) == 1
    h = host.health()
    assert h["status"] == "ok" and not h["both_bad"]
    st, hist = host.get("/history")
    assert hist["history"][-1]["result"] == "rolled_back"


def agent_argv(host):
    with open("/proc/%d/cmdline" % host.health()["agent"]["pid"], "rb") as f:
        return f.read().decode().split("\0")


def test_readiness(host, releases, tmp_path):
    """make release declares readiness ("readiness": "ready-fd"): the agent
    gets --ready-fd and counts as started once it says READY. A release whose
    manifest does not declare it still installs, probed over HTTP only."""
    v1 = releases.get("1.0.0")
    with tarfile.open(v1, "r:gz") as t:
        assert json.loads(t.extractfile("manifest.json").read())["readiness"] == "ready-fd"
    st, _, body = host.push(v1)
    assert st == 200, body
    assert "--ready-fd" in agent_argv(host)
    agent = host.health()["agent"]
    assert "agent: pid %d is ready" % agent["pid"] in host.proc.stderr()
    # /health says the agent declared readiness and said READY.
    assert agent["ready_declared"] is True and agent["ready"] is True

    members = []
    for m, data in release_members(releases.get("2.0.0")):
        if m.name.endswith("manifest.json"):
            manifest = json.loads(data)
            del manifest["readiness"]
            data = json.dumps(manifest).encode()
            m.size = len(data)
        members.append((m, data))
    plain = make_tgz(str(tmp_path / "plain.tgz"), members)
    st, _, body = host.push(plain)
    assert st == 200, body
    assert body["release"]["version"] == "2.0.0"
    assert "--ready-fd" not in agent_argv(host)
    agent = host.health()["agent"]
    assert agent["ready_declared"] is False and agent["ready"] is False
    host.assert_clean()


def test_push_with_our_client(host, releases, pki):
    """common/httpc (tandem-testc) pushes, pinning the updater's certificate."""
    v1 = releases.get("1.0.0")

    def testc(*args, pin=None):
        argv = [bin_path("tandem-testc"), "--ca", pki.ca_crt, "--cert", pki.master[0],
                "--key", pki.master[1], "--timeout-ms", "60000"]
        if pin:
            argv += ["--pin", pin]
        argv += list(args) + ["127.0.0.1:%d" % host.port, "/update"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=90)

    good_pin = pki.fingerprint(pki.updater[0])
    r = testc("--multipart-file", v1, "--file-field", "tarball", "--field", "sha=by testc",
              "--field", "sha256=" + sha256_file(v1), pin=good_pin)
    assert r.returncode == 0, r.stderr
    first, _, body = r.stdout.partition("\n")
    assert first == "status=200", r.stdout
    assert json.loads(body)["release"]["sha"] == "by testc"
    assert host.agent_health()["release"]["sha"] == "by testc"
    # A wrong pin: refused by our client before anything is sent.
    before = host.snapshot()
    r = testc("--multipart-file", v1, "--file-field", "tarball", "--field",
              "sha256=" + sha256_file(v1), pin="0" * 64)
    assert r.returncode == 1 and "pin" in r.stderr.lower(), r.stderr
    assert host.snapshot() == before


def test_seed_tarball(host, releases):
    """--seed installs a first release; ignored once one is installed; a bad
    seed is a startup error that leaves nothing installed."""
    v1, v2 = releases.get("1.0.0"), releases.get("2.0.0")
    host.proc.stop(timeout=20)
    bad = releases.get("3.0.0", "exit-at-once")
    host.start(args=["--seed", bad], wait=False)
    assert host.proc.wait(timeout=60) == 1
    assert "release did not start and there is no previous release: agent: exited before " \
        "READY" in host.proc.stderr()
    assert host.slots() == {}
    host.assert_clean()
    host.start(args=["--seed", v1])
    ah = host.agent_health()
    assert ah["version"] == "1.0.0"
    assert ah["release"] == {"sha": "seed", "sha256": sha256_file(v1)}
    host.proc.stop(timeout=20)
    host.start(args=["--seed", v2])
    host.wait_agent("1.0.0")
    assert [r["version"] for r in host.get("/releases")[1]["releases"]] == ["1.0.0"]


def test_master_pins(procs, tmp_path, pki, releases):
    """With master_fingerprints set, a CA-signed master certificate that is
    not pinned is refused (403) and nothing is touched."""
    other = pki.issue("master2", "tandem-master", ou="master", eku=("clientAuth",))
    h = Host(procs, tmp_path, pki, master_fingerprints=pki.fingerprint(pki.master[0]))
    try:
        v1 = releases.get("1.0.0")
        st, _, body = h.push(v1, who=other)
        assert st == 403, body
        assert "not pinned" in assert_detail(body)
        assert h.slots() == {}
        h.assert_clean()
        st, _ = h.get("/history", who=other)
        assert st == 403
        # A CA-signed certificate whose subject names no role: /health only.
        norole = pki.issue("norole", "evil@host1", eku=("clientAuth",))
        st, body = h.get("/health", who=norole)
        assert st == 200 and body["status"] == "no_release", body
        for st, body in (h.get("/releases", who=norole), h.push(v1, who=norole)[0::2]):
            assert st == 403, body
            assert assert_detail(body).endswith(
                "is not allowed for unknown certificate CN=evil@host1")
        assert h.slots() == {}
        h.assert_clean()
        st, _, body = h.push(v1)
        assert st == 200, body
    finally:
        assert_clean_exit(h.proc)


def test_first_install_failure(host, releases):
    bad = releases.get("3.0.0", "exit-at-once")
    st, _, body = host.push(bad)
    assert st == 422, body
    assert "no previous release" in assert_detail(body)
    assert host.slots() == {}
    assert not os.path.lexists(os.path.join(host.root, "current"))
    host.assert_clean()
    assert host.health()["status"] == "no_release"
    # A good push afterwards works.
    st, _, body = host.push(releases.get("1.0.0"))
    assert st == 200, body


def test_both_bad(host, releases):
    v1 = releases.get("1.0.0")
    st, _, body = host.push(v1)
    assert st == 200, body
    # Break the installed release behind the updater's back.
    exe = os.path.join(host.root, "releases", "active", "bin", "tandem-agent")
    os.unlink(exe)
    with open(exe, "w") as f:
        f.write("#!/bin/sh\nexit 3\n")
    os.chmod(exe, 0o755)
    st, _, body = host.push(releases.get("3.0.0", "exit-at-once"))
    assert st == 500, body
    err = assert_detail(body, rolled_back=False)
    assert "failed too" in err
    h = host.health()
    assert h["both_bad"] is True and h["status"] == "both_bad"
    host.assert_clean()
    # A good push clears it.
    st, _, body = host.push(releases.get("2.0.0"))
    assert st == 200, body
    assert host.health()["both_bad"] is False


def test_rollback_without_prev(host, releases):
    st, body = host.rollback()
    assert st == 404
    assert_detail(body)
    st, _, body = host.push(releases.get("1.0.0"))
    assert st == 200
    st, body = host.rollback()
    assert st == 404
    assert host.agent_health()["version"] == "1.0.0"


def test_concurrent_push_gets_503(host, releases, pki):
    v1 = releases.get("1.0.0")
    st, _, body = host.push(v1)
    assert st == 200, body
    before = host.snapshot()
    # A push that sends its headers and part of the body, then stalls.
    ctx = ssl.create_default_context(cafile=pki.ca_crt)
    ctx.load_cert_chain(pki.master[0], pki.master[1])
    ctx.check_hostname = False
    raw = socket.create_connection(("127.0.0.1", host.port), timeout=10)
    s = ctx.wrap_socket(raw)
    boundary = "XXbXX"
    head = ("--%s\r\nContent-Disposition: form-data; name=\"tarball\"; filename=\"t.tgz\"\r\n"
            "Content-Type: application/gzip\r\n\r\n" % boundary).encode()
    with open(v1, "rb") as f:
        data = f.read()
    total = len(head) + len(data) + 200
    s.sendall(("POST /update HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
               "boundary=%s\r\nContent-Length: %d\r\n\r\n" % (boundary, total)).encode())
    s.sendall(head + data[:1000])
    try:
        def busy():
            op = host.health()["operation"]
            return op if op and op["kind"] == "update" else None
        op = wait_until(busy, 10, "the first push to hold the operation lock")
        st, headers, body = host.push(v1)
        assert st == 503, body
        assert headers.get("retry-after", "").isdigit()
        assert op["id"] in assert_detail(body)
        st, body = host.rollback()
        assert st == 503
    finally:
        s.close()
    wait_until(lambda: host.health()["operation"] is None, 10, "the lock to be released")
    assert host.snapshot() == before
    host.assert_clean()
    assert host.agent_health()["version"] == "1.0.0"


def test_malformed_uploads(host, releases, tmp_path, pki):
    v1 = releases.get("1.0.0")
    st, _, body = host.push(v1)
    assert st == 200, body
    before = host.snapshot()
    d = str(tmp_path)

    def p(name):
        return os.path.join(d, name)

    good = release_members(v1)
    cases = [
        ("traversal", make_tgz(p("t1.tgz"), good + [ti("../evil", data=b"x")]), 422, "'..'"),
        ("absolute", make_tgz(p("t2.tgz"), good + [ti("/tmp/evil", data=b"x")]), 422,
         "absolute"),
        ("symlink escape", make_tgz(p("t3.tgz"), good + [ti("bin/x", tarfile.SYMTYPE,
                                                             linkname="../../../etc")]),
         422, "leaves the release"),
        ("hardlink", make_tgz(p("t4.tgz"), good + [ti("bin/h", tarfile.LNKTYPE,
                                                       linkname="bin/tandem-agent")]),
         422, "hardlink"),
        ("device", make_tgz(p("t5.tgz"), good + [ti("dev", tarfile.CHRTYPE)]), 422, "device"),
        ("fifo", make_tgz(p("t6.tgz"), good + [ti("fifo", tarfile.FIFOTYPE)]), 422, "FIFO"),
        ("too many entries", make_tgz(p("t7.tgz"), good + [ti("f%03d" % i, data=b"x")
                                                           for i in range(250)]),
         422, "entries"),
        ("gzip bomb", make_tgz(p("t8.tgz"), good + [ti("bomb", data=bytes(48 << 20))]),
         422, "unpacked size"),
        ("not gzip", make_tgz(p("t9.tar"), good, gz=False), 422, "gzip"),
        ("no entrypoint", make_tgz(p("t10.tgz"), [m for m in good if m[0].isdir() or
                                                  m[0].name.endswith("manifest.json")]),
         422, "entrypoint"),
    ]
    with open(v1, "rb") as f:
        data = f.read()
    with open(p("trunc.tgz"), "wb") as f:
        f.write(data[:len(data) // 2])
    cases.append(("truncated", p("trunc.tgz"), 422, ""))
    open(p("empty"), "wb").close()
    # An empty file part never reaches the handler: the same as no tarball at all.
    cases.append(("empty", p("empty"), 400, "tarball"))
    with open(p("big"), "wb") as f:
        f.write(os.urandom(9 << 20))
    cases.append(("oversize", p("big"), 413, "exceeds"))

    for name, path, want, needle in cases:
        st, _, body = host.push(path)
        assert st == want, (name, body)
        assert needle in assert_detail(body), (name, body)
        assert host.snapshot() == before, name
        host.assert_clean()

    # Digest problems.
    st, _, body = host.push(v1, sha256="0" * 64)
    assert st == 422 and "sha256 mismatch" in assert_detail(body)
    st, _, body = host.push(v1, sha256=False)
    assert st == 400 and "sha256" in assert_detail(body)
    assert body["detail"]["field"] == "sha256" and "probe" not in body["detail"], body
    st, _, body = host.push(v1, sha256="xyz")
    assert st == 400 and body["detail"]["field"] == "sha256", body
    st, _, body = host.push(v1, fields=["-F", "sha256=" + sha256_file(v1)])
    assert st == 400 and "tarball" in assert_detail(body)
    assert body["detail"]["field"] == "tarball", body
    assert host.snapshot() == before
    host.assert_clean()
    assert host.agent_health()["version"] == "1.0.0"

    # setuid/setgid/sticky bits are stripped, not refused.
    def setuid(m):
        if m.name.endswith("tandem-agent"):
            m.mode = 0o6755
    path = make_tgz(p("suid.tgz"), release_members(releases.get("2.0.0"), setuid))
    st, _, body = host.push(path)
    assert st == 200, body
    mode = os.stat(os.path.join(host.root, "current", "bin", "tandem-agent")).st_mode
    assert mode & 0o7777 == 0o755


def test_disk_full(host, releases, tmp_path):
    """min_free larger than the free space: 507, nothing left behind."""
    v1 = releases.get("1.0.0")
    st, _, body = host.push(v1)
    assert st == 200, body
    host.proc.stop()
    before = host.snapshot()
    conf = open(host.conf).read().replace("min_free = 1M", "min_free = 1T")
    with open(host.conf, "w") as f:
        f.write(conf)
    host.start()
    st, _, body = host.push(releases.get("2.0.0"))
    assert st == 507, body
    assert "disk space" in assert_detail(body)
    assert host.snapshot() == before
    host.assert_clean()


def test_crash_loop_reported(procs, tmp_path, pki, releases):
    """An agent that passes its probe and then keeps crashing is restarted with
    backoff and reported as a crash loop in /health."""
    h = Host(procs, tmp_path, pki, restart_backoff_min="50ms", restart_min_spacing="50ms",
             crash_loop_count="3", crash_loop_window="30s", crash_loop_retry="30s",
             probe_stable="200ms")
    try:
        h.proc.stop(timeout=20)
        h.start(env={"TANDEM_CRASH_AFTER_MS": "700"})
        st, _, body = h.push(releases.get("4.0.0", "crash-later"))
        assert st == 200, body
        agent = wait_until(lambda: (lambda a: a if a["crash_loop"] else None)(
            h.health()["agent"]), 20, "the crash loop to be reported")
        assert agent["state"] == "crash_loop" and agent["recent_crashes"] >= 3
        assert agent["last_exit"] is not None
        assert h.health()["status"] == "degraded"
    finally:
        assert_clean_exit(h.proc)


def test_run_as_user(procs, tmp_path, pki, releases):
    """run_as_user/run_as_group: the agent (and its preflight) run unprivileged."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    import pathlib
    import pwd
    import shutil
    import tempfile
    nobody = pwd.getpwnam("nobody")
    # pytest's tmp_path is under a 0700 directory: the agent's user could not
    # even reach its binary. A world-traversable base, like /opt or /var/lib.
    base = pathlib.Path(tempfile.mkdtemp(prefix="tandem-runas.", dir="/tmp"))
    os.chmod(str(base), 0o755)
    # The agent's own key must be readable by the user it runs as.
    keydir = base / "agentkeys"
    keydir.mkdir()
    for src, name in ((pki.agent[0], "agent.crt"), (pki.agent[1], "agent.key"),
                      (pki.ca_crt, "ca.crt")):
        dst = keydir / name
        dst.write_bytes(open(src, "rb").read())
        os.chown(str(dst), nobody.pw_uid, nobody.pw_gid)
        os.chmod(str(dst), 0o600)
    h = None
    try:
        h = Host(procs, base, pki, run_as_user="nobody", run_as_group="nogroup")
        with open(h.agent_conf, "w") as f:
            f.write("ca = %s\ncert = %s\nkey = %s\nlisten = 127.0.0.1:%d\n"
                    % (keydir / "ca.crt", keydir / "agent.crt", keydir / "agent.key",
                       h.agent_port))
        os.chmod(h.agent_conf, 0o644)
        st, _, body = h.push(releases.get("1.0.0"))
        assert st == 200, body
        pid = h.health()["agent"]["pid"]
        with open("/proc/%d/status" % pid) as f:
            ids = {ln.split(":")[0]: ln.split()[1:] for ln in f if ln.startswith(("Uid", "Gid"))}
        assert ids["Uid"] == [str(nobody.pw_uid)] * 4
        assert ids["Gid"] == [str(nobody.pw_gid)] * 4
        assert h.agent_health()["version"] == "1.0.0"
    finally:
        if h is not None:
            assert_clean_exit(h.proc)
        shutil.rmtree(str(base))


def test_hung_agent_restarted(procs, tmp_path, pki, releases):
    """A stopped (hung) agent answers nothing: after liveness_failures checks
    in a row it is killed and restarted; /health says so."""
    h = Host(procs, tmp_path, pki, liveness_interval="200ms", liveness_timeout="300ms",
             liveness_failures=2)
    st, _, body = h.push(releases.get("1.0.0"))
    assert st == 200, body
    pid = h.health()["agent"]["pid"]
    lv = h.health()["agent"]["liveness"]
    assert lv["enabled"] is True and lv["hung_kills"] == 0, lv
    os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: h.health()["agent"]["pid"] not in (None, pid), 30,
               "the hung agent to be replaced")
    h.wait_agent("1.0.0")
    lv = h.health()["agent"]["liveness"]
    assert lv["hung_kills"] == 1 and lv["last_miss"], lv
    assert not pid_alive(pid)
    assert "is hung" in h.proc.stderr()
    # A live agent is left alone: same pid across several more intervals.
    new = h.health()["agent"]["pid"]
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        assert h.health()["agent"]["pid"] == new
    assert h.health()["agent"]["liveness"]["hung_kills"] == 1


def test_sigterm_during_probe_answers(procs, tmp_path, pki, releases):
    """SIGTERM while a push is being probed: the push finishes and its client gets the real
    answer (200, the new release), then the updater exits cleanly."""
    import threading
    h = Host(procs, tmp_path, pki, probe_stable="3s")
    st, _, body = h.push(releases.get("1.0.0"))
    assert st == 200, body
    result = {}
    t = threading.Thread(target=lambda: result.update(r=h.push(releases.get("1.1.0"))))
    t.start()

    def probing():
        op = h.health()["operation"]
        return op is not None and op.get("phase") == "probing"
    wait_until(probing, 30, "the push to reach its probe")
    h.proc.signal(signal.SIGTERM)
    t.join(60)
    assert not t.is_alive()
    st, _, body = result["r"]
    assert st == 200 and body["status"] == "updated", body
    assert body["release"]["version"] == "1.1.0", body
    assert h.proc.wait(30) == 0, h.proc.stderr()[-3000:]
    assert "waiting up to" in h.proc.stderr()
    h.assert_clean()


def test_restart_adopts_agent(host, releases):
    st, _, body = host.push(releases.get("1.0.0"))
    assert st == 200, body
    pid = host.health()["agent"]["pid"]
    # The updater dies hard; the agent keeps running and is adopted.
    host.proc.p.kill()
    host.proc.p.wait()
    host.start()
    h = host.health()
    assert h["agent"]["pid"] == pid
    # An adopted agent has no readiness pipe to this updater.
    assert h["agent"]["ready_declared"] is False and h["agent"]["ready"] is False
    assert host.agent_health()["version"] == "1.0.0"
    # Crash it: the supervisor restarts it.
    os.kill(pid, 9)
    wait_until(lambda: host.health()["agent"]["pid"] not in (None, pid), 15,
               "the agent to be restarted")
    host.wait_agent("1.0.0")


def test_config_checks(tmp_path, pki):
    upd = bin_path("tandem-updater")
    conf = tmp_path / "u.conf"
    conf.write_text("install_dir = %s\nca = %s\ncert = %s\nkey = %s\nagent_config = x\n"
                    % (tmp_path / "i", pki.ca_crt, pki.updater[0], pki.updater[1]))
    r = subprocess.run([upd, "--config", str(conf), "-n"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([upd, "--config", str(conf), "--self-test"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([upd, "--config", str(conf), "--print-config"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "install_dir" in r.stdout
    again = tmp_path / "again.conf"
    again.write_text(r.stdout)
    r = subprocess.run([upd, "--config", str(again), "-n"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    conf.write_text(conf.read_text() + "bogus = 1\n")
    r = subprocess.run([upd, "--config", str(conf), "-n"], capture_output=True, text=True)
    assert r.returncode == 2 and "bogus" in r.stderr
    r = subprocess.run([upd, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("tandem-updater ")


# ---------------------------------------------------------------- crash sweep

CRASH_STATUS = 86


def curl_rc(pki, url, *extra):
    """curl that may lose its connection (the updater dies mid-request)."""
    return curl_run(url, pki.ca_crt, pki.master, *extra)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def crash_and_recover(host, point, action):
    """Restart the updater with the crash hook at POINT, run ACTION (which it
    dies in), restart it normally; returns the agent pid seen before."""
    host.proc.stop(timeout=20)
    host.start(env={"TANDEM_TEST_CRASH_AT": point})
    old_pid = host.health()["agent"]["pid"]
    action()
    rc = host.proc.wait(timeout=60)
    assert rc == CRASH_STATUS, "point %s not reached (exit %s)\n%s" % (
        point, rc, host.proc.stderr()[-3000:])
    host.start()
    return old_pid


def check_recovered(host, want_active, want_prev, point):
    """Exactly the expected releases, clean disk, one agent serving current."""
    rel = host.get("/releases")[1]["releases"]
    got = {r["slot"]: r["sha256"] for r in rel}
    assert got.get("active") == want_active and got.get("prev") == want_prev, (point, rel)
    host.assert_clean()

    def serving():
        try:
            return host.agent_health()["release"]["sha256"] == want_active
        except AssertionError:
            return False
    wait_until(serving, 20, "the agent to serve the active release after %s" % point)


@pytest.mark.sweep
@pytest.mark.parametrize("points,kind,committed", [
    (["update.journal_staging", "update.journal_switching", "update.prev_moved",
      "update.exchanged", "update.old_to_prev", "update.agent_started",
      "update.probe_passed"], "good", False),
    # The commit point is the journal's COMMITTING record: from there on, finish.
    (["update.journal_committing", "commit.prev_old_removed",
      "commit.done"], "good", True),
    (["update.journal_restoring", "restore.old_active_back", "restore.new_removed",
      "restore.prev_back", "restore.done"], "exit-at-once", False),
])
def test_crash_sweep_update(host, releases, points, kind, committed):
    """kill -9 (a test hook's _exit) at every step of an update, then restart."""
    v1, v2 = releases.get("1.0.0"), releases.get("2.0.0")
    v3 = releases.get("3.0.0", kind)
    for t in (v1, v2):
        st, _, body = host.push(t)
        assert st == 200, body
    for point in points:
        rel = {r["slot"]: r["sha256"] for r in host.get("/releases")[1]["releases"]}
        # Push whichever good release is not active (or the broken one).
        new = v3 if kind != "good" else (v3 if rel["active"] != sha256_file(v3) else v2)
        new_sha = sha256_file(new)

        def push():
            curl_rc(host.pki, host.url("/update"), "-F", "sha256=" + new_sha,
                    "-F", "tarball=@" + new)
        old_pid = crash_and_recover(host, point, push)
        if committed:
            check_recovered(host, new_sha, rel["active"], point)
        else:
            check_recovered(host, rel["active"], rel["prev"], point)
        # Never two agents: the one from before the crash is gone or adopted.
        cur = host.health()["agent"]["pid"]
        assert cur == old_pid or not pid_alive(old_pid), point


def agent_procs(root):
    """Live processes running an executable from ROOT's releases (any slot,
    a removed one included): what holds the agent's port, found the way an
    operator would (ps), not the way the updater does."""
    prefix = os.path.join(root, "releases") + "/"
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % d)
        except OSError:
            continue
        if exe.startswith(prefix) and pid_alive(int(d)):
            out.append(int(d))
    return out


def check_one_agent(host, version):
    """Exactly one agent runs, the recorded one, serving VERSION; a push works."""
    host.wait_agent(version)
    wait_until(lambda: agent_procs(host.root) == [host.health()["agent"]["pid"]], 20,
               "only the recorded agent to run (found %s)" % agent_procs(host.root))
    h = host.health()
    assert h["status"] == "ok" and not h["agent"].get("crash_looping"), h


@pytest.mark.parametrize("when", ["update", "start-up"])
def test_crash_between_spawn_and_record(host, releases, when):
    """The updater dies after starting an agent and before recording it: the
    agent runs on, holding the port, known to no file. The next updater finds
    it anyway, stops it, and the host ends with one agent and working pushes."""
    v1, v2 = releases.get("1.0.0"), releases.get("2.0.0")
    st, _, body = host.push(v1)
    assert st == 200, body
    if when == "update":
        def push():
            curl_rc(host.pki, host.url("/update"), "-F", "sha256=" + sha256_file(v2),
                    "-F", "tarball=@" + v2)
        # kill -9 keeps the agent (a graceful stop stops it): the next updater
        # adopts it and its first spawn is the update's.
        host.proc.p.kill()
        host.proc.p.wait()
        host.start(env={"TANDEM_TEST_CRASH_AT": "agent.spawned"})
        push()
        assert host.proc.wait(timeout=60) == CRASH_STATUS, host.proc.stderr()[-3000:]
        assert agent_procs(host.root), "the crash left no unrecorded agent"
        host.start()
    else:
        host.proc.stop(timeout=20)
        for pid in agent_procs(host.root):
            os.kill(pid, 9)
        wait_until(lambda: not agent_procs(host.root), 10, "the agent to exit")
        host.start(env={"TANDEM_TEST_CRASH_AT": "agent.spawned"}, wait=False)
        assert host.proc.wait(timeout=60) == CRASH_STATUS, host.proc.stderr()[-3000:]
        assert agent_procs(host.root), "the crash left no unrecorded agent"
        host.start()
    check_recovered(host, sha256_file(v1), None, "agent.spawned")
    check_one_agent(host, "1.0.0")
    assert "no record names" in host.proc.stderr()
    st, _, body = host.push(v2)
    assert st == 200, body
    check_one_agent(host, "2.0.0")


def test_kill_when_agent_appears(host, releases):
    """kill -9 of the updater the instant a new agent process exists, during
    pushes and rollbacks: after each restart one agent runs the active release
    and the next push succeeds."""
    rel = [releases.get("1.0.0"), releases.get("2.0.0")]
    st, _, body = host.push(rel[0])
    assert st == 200, body
    for i in range(4):
        before = set(agent_procs(host.root))
        slots = {r["slot"]: r["sha256"] for r in host.get("/releases")[1]["releases"]}
        if i % 2 == 1 and slots.get("prev") not in (None, slots["active"]):
            path, argv = "/rollback", ["-X", "POST"]
        else:
            new = rel[1] if sha256_file(rel[0]) == slots["active"] else rel[0]
            path, argv = "/update", ["-F", "sha256=" + sha256_file(new), "-F", "tarball=@" + new]
        client = subprocess.Popen(
            ["curl", "-sS", "--max-time", "60", "--cacert", host.pki.ca_crt,
             "--cert", host.pki.master[0], "--key", host.pki.master[1], "-o", "/dev/null"]
            + argv + [host.url(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: set(agent_procs(host.root)) - before, 60,
                       "a new agent process", interval=0.001)
            host.proc.p.kill()
            host.proc.p.wait()
        finally:
            client.wait(timeout=90)
        host.start()
        host.assert_clean()
        active = {r["slot"]: r for r in host.get("/releases")[1]["releases"]}["active"]
        check_one_agent(host, active["version"])
    active = {r["slot"]: r["sha256"] for r in host.get("/releases")[1]["releases"]}["active"]
    nxt = rel[1] if sha256_file(rel[0]) == active else rel[0]
    st, _, body = host.push(nxt)
    assert st == 200, body


@pytest.mark.parametrize("points,committed", [
    (["rollback.journal_switching", "rollback.exchanged", "rollback.agent_started",
      "rollback.probe_passed"], False),
    (["rollback.journal_committing", "commit.done"], True),
])
def test_crash_sweep_rollback(host, releases, points, committed):
    for t in (releases.get("1.0.0"), releases.get("2.0.0")):
        st, _, body = host.push(t)
        assert st == 200, body
    for point in points:
        rel = {r["slot"]: r["sha256"] for r in host.get("/releases")[1]["releases"]}

        def rollback():
            curl_rc(host.pki, host.url("/rollback"), "-X", "POST")
        crash_and_recover(host, point, rollback)
        if committed:
            check_recovered(host, rel["prev"], rel["active"], point)
        else:
            check_recovered(host, rel["active"], rel["prev"], point)
