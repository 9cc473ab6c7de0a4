"""Real hosts under a real systemd: a Debian 12 container booted with
systemd-nspawn (systemd as PID 1, private network: only loopback inside)
gets the worker package the documented way, and the service is checked as an
operator meets it. One boot serves every test of this file, in order:

  README's "Quick start on real hosts" blocks, run as written (only the
  example address becomes 127.0.0.1: the master runs inside the container
  too), give a healthy host the master pushes to and rolls back;
  the sandbox is applied to all three programs; their lines reach the
  journal under the unit, as JSON objects with log_format = json;
  a hard-killed launcher, updater, or whole unit comes back (the agent is
  adopted where it survived); the unit is Type=notify (READY=1 once the
  updater serves) and a SIGSTOPped updater is restarted by systemd's
  watchdog; a push with --include-self and a rollback;
  a newer worker package on a self-updated host runs the newer (packaged)
  updater; systemctl reload on a root without procps; stop stops the agent;
  dpkg --purge leaves nothing behind.

The tests share the container and run in file order (each one leaves the
host serving, except the last two); any single one can also run alone. The
README's steps run with the packaged timers; the tests after them run with
short ones (`quick`: the agent's probe window, the launcher's probation
window, RestartSec), which they would otherwise only wait out.
The root is made once per build directory by debootstrap (minutes) and
reused from its tarball (seconds): tests/e2e/container_util.py.
"""

import glob
import json
import os
import re
import time

import pytest

from conftest import ROOT
from container_util import Container, nspawn_unsupported, readme_blocks, root_tarball
from packaging_util import build_debs, depends
from release_util import build_is_asan, run_make_release

# `make deb` writes BUILD/deb/: under pytest-xdist this file shares a worker
# with test_packaging.py (conftest.py).
pytestmark = [pytest.mark.skipif(
    build_is_asan(os.environ.get("TANDEM_BUILD") or os.path.join(ROOT, "build")),
    reason="the packages are checked by the normal (non-ASan) e2e run"),
    pytest.mark.xdist_group("build-deb")]

README = os.path.join(ROOT, "README.md")
EXAMPLE_ADDR = "192.0.2.10"   # the README's host; inside the container it is 127.0.0.1
HOST = "web1"
SVC = "tandem-updater"
PROGS = ("tandem-launcher", "tandem-updater", "tandem-agent")
# Everything on the root file system, for the purge check.
FIND_ALL = ("find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run "
            "-o -path /tmp -o -path /root -o -path /var/log -o -path /var/cache "
            "-o -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/lib/systemd \\) "
            "-prune -o -print | sort")


@pytest.fixture(scope="module")
def host(build_dir, tmp_path_factory):
    why = nspawn_unsupported()
    if why is not None:
        pytest.skip(why)
    debs = build_debs(build_dir)
    pkgs = set()
    for d in debs.values():
        pkgs |= depends(d)
    tar = root_tarball(build_dir, pkgs)
    c = Container(tar, tmp_path_factory.mktemp("debian12"))
    try:
        c.start()
        print("container: unpacked in %.1f s, booted in %.1f s" % (c.unpack_s, c.boot_s))
        c.before = c.sh(FIND_ALL)
        c.debs = debs
        c.build_dir = build_dir
        c.releases = str(tmp_path_factory.mktemp("releases"))
        # The master's machine is this container too; README: `tandem` is the
        # installed one (apt install ./build/deb/tandem-master_*.deb).
        c.push(debs["tandem-master"], "/root/master/" + os.path.basename(debs["tandem-master"]))
        c.sh("apt install ./master/tandem-master_*.deb >/dev/null 2>&1")
        yield c
    finally:
        c.stop()


def release(c, version):
    """`make release VERSION=V` on this machine, copied to /root/build/ inside."""
    out = os.path.join(c.releases, "tandem-agent-%s.tar.gz" % version)
    if not os.path.exists(out):
        run_make_release(c.build_dir, version, out)
    c.push(out, "/root/build/tandem-agent-%s.tar.gz" % version)
    return "build/tandem-agent-%s.tar.gz" % version


def master_line(c, line):
    """One line of a master block: what happens on the operator's machine
    (make, scp) is done from here; every other line runs as written inside."""
    cmd = re.sub(r"\s+#.*$", "", line).strip()
    if not cmd:
        return
    if cmd == "make && make deb":
        assert all(os.path.exists(d) for d in c.debs.values())
        return
    m = re.fullmatch(r"make release VERSION=(\S+)", cmd)
    if m:
        release(c, m.group(1))
        return
    m = re.fullmatch(r"scp -r (.+) root@%s:" % re.escape(EXAMPLE_ADDR), cmd)
    if m:
        for src in m.group(1).split():
            if src.startswith("~/"):          # on the master, i.e. inside
                c.sh("cp -r %s /root/" % src)
                continue
            assert src.startswith("build/"), src
            found = glob.glob(os.path.join(c.build_dir, src[len("build/"):]))
            assert len(found) == 1, (src, found)
            c.push(found[0], "/root/" + os.path.basename(found[0]))
        return
    assert not cmd.startswith(("make", "scp")), "a master-side step this test cannot do: " + cmd
    c.sh(line.replace(EXAMPLE_ADDR, "127.0.0.1"))


def status(c):
    """The master's view of web1 (swarm status --json)."""
    r = c.run("tandem swarm status --host %s --json" % HOST, check=False)
    try:
        return json.loads(r.stdout)["hosts"][0]
    except (ValueError, KeyError, IndexError):
        return {}


def healthy(c, updater_version=None):
    """The master's view of web1 when it is healthy (and runs UPDATER_VERSION), else None."""
    s = status(c)
    ok = s.get("reachable") and s.get("status") == "ok" and s.get("agent_state") == "running"
    if updater_version is not None:
        ok = ok and s.get("updater_version") == updater_version
    return s if ok else None


def agent_pid(c):
    pids = c.pids("tandem-agent")
    assert len(pids) == 1, pids
    return pids[0]


def svc(c, *props):
    return c.unit(SVC, *props)


def cursor(c):
    out = c.sh("journalctl -n 0 --show-cursor --no-pager")
    return re.search(r"-- cursor: (\S+)", out).group(1)


def journal(c, after=None):
    """The unit's journal entries (since cursor AFTER), as dicts."""
    since = " --after-cursor '%s'" % after if after else ""
    out = c.sh("journalctl -u %s%s -o json --no-pager" % (SVC, since))
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def served(host):
    """README's real-host blocks, in order, as written: the master (inside
    too) enrolls web1, the host installs the package and the bundle and
    starts the service, the master pushes 1.0.1 and rolls back. Every other
    test starts from there (so any one of them can run alone)."""
    c = host
    blocks = readme_blocks(README)
    assert [side for side, _ in blocks] == ["master", "host", "master"], blocks
    c.pushed = None
    for side, text in blocks:
        if side == "host":
            assert "install-bundle" in text
            c.sh(text, timeout=300)
            continue
        for line in text.splitlines():
            master_line(c, line)
            if line.startswith("tandem swarm update"):
                c.pushed = c.wait(lambda: healthy(c), 30, "web1 healthy after the push")
    return c


# The timers the tests after the README's steps run with: the README's steps
# run with the packaged ones; after them the agent's probe window
# (probe_stable, 3 s), the launcher's probation window (10 s) and systemd's
# RestartSec (2 s) would only be waited out, about half of this file's time.
QUICK_DROPIN = "/run/systemd/system/%s.service.d/test-timers.conf" % SVC
PROBE_STABLE = "500ms"
PROBATION_STABLE_MS = 1000
RESTART_SEC = "300ms"


@pytest.fixture(scope="module")
def quick(served):
    """The host of `served` with short timers: probe_stable in updater.conf,
    and a runtime drop-in giving the packaged ExecStart the launcher's
    --probation-stable and a short RestartSec. What is checked stays the
    same; only the windows that are waited out shrink."""
    c = served
    unit = c.sh("systemctl cat %s" % SVC)
    execs = re.findall(r"^ExecStart=(\S*/tandem-launcher) (.*)$", unit, re.M)
    assert len(execs) == 1, unit
    launcher, args = execs[0]
    c.sh("grep -q '^probe_stable' /etc/tandem/updater.conf || "
         "echo 'probe_stable = %s' >> /etc/tandem/updater.conf" % PROBE_STABLE)
    c.sh("mkdir -p %s && printf '[Service]\\nRestartSec=%s\\nExecStart=\\n"
         "ExecStart=%s --probation-stable %d %s\\n' > %s && systemctl daemon-reload && "
         "systemctl restart %s"
         % (os.path.dirname(QUICK_DROPIN), RESTART_SEC, launcher, PROBATION_STABLE_MS, args,
            QUICK_DROPIN, SVC))
    u = svc(c, "ExecStart", "RestartUSec")
    assert "--probation-stable %d" % PROBATION_STABLE_MS in u["ExecStart"], u
    assert u["RestartUSec"] == RESTART_SEC, u
    c.wait(lambda: healthy(c), 60, "web1 healthy with the short timers")
    return c


def test_readme_real_host_steps(served):
    """A healthy host the master pushed to, with the bundle in place the documented way."""
    c = served
    assert c.pushed is not None and c.pushed["active"]["version"] == "1.0.1", c.pushed
    # The last block ended with a rollback to the seed release.
    s = c.wait(lambda: healthy(c), 30, "web1 healthy after the rollback")
    assert s["active"]["version"] == "1.0.0" and s["prev"]["version"] == "1.0.1", s
    assert s["updater_version"] == "1.0.0" and s["pin_ok"] is True, s
    u = svc(c, "ActiveState", "SubState", "NRestarts")
    assert (u["ActiveState"], u["SubState"], u["NRestarts"]) == ("active", "running", "0"), u

    # install-bundle's owners and modes, and the bundle's pins in the configuration.
    modes = c.sh("stat -c '%n %a %U:%G' /etc/tandem/* | sort")
    assert modes.split("\n")[:-1] == [
        "/etc/tandem/agent.conf 640 root:tandem",
        "/etc/tandem/agent.crt 640 root:tandem",
        "/etc/tandem/agent.key 600 tandem:tandem",
        "/etc/tandem/ca.crt 640 root:tandem",
        "/etc/tandem/updater.conf 640 root:tandem",
        "/etc/tandem/updater.crt 640 root:tandem",
        "/etc/tandem/updater.key 600 tandem:tandem",
    ], modes
    conf = c.read("/etc/tandem/updater.conf")
    bundle = c.read("/root/%s/updater.conf" % HOST)
    for key in ("master_fingerprints", "agent_pin", "listen", "agent_probe"):
        want = re.search(r"^%s = (\S+)$" % key, bundle, re.M).group(1)
        assert re.search(r"^%s = %s$" % (key, re.escape(want)), conf, re.M), (key, want)
    assert re.search(r"^install_dir = /var/lib/tandem$", conf, re.M)


def test_sandbox_applied(quick):
    """All three programs run as tandem, without capabilities, with
    NoNewPrivileges and a seccomp filter, on a read-only root."""
    c = quick
    uid = c.sh("id -u tandem").strip()
    for prog in PROGS:
        pids = c.pids(prog)
        assert len(pids) == 1, (prog, pids)
        st = c.sh("cat /proc/%d/status" % pids[0])
        fields = dict(re.findall(r"^(\w+):\s*(.*)$", st, re.M))
        assert fields["Uid"].split()[0] == uid, (prog, fields["Uid"])
        assert fields["NoNewPrivs"] == "1", prog
        assert fields["CapEff"] == "0000000000000000", prog
        assert fields["CapBnd"] == "0000000000000000", prog
        assert fields["Seccomp"] == "2", prog
        mounts = c.sh("cat /proc/%d/mountinfo" % pids[0])
        root = [m for m in mounts.splitlines() if m.split()[4] == "/"]
        assert root and " ro," in " " + root[-1].split()[5] + ",", (prog, root)


def test_logs_reach_the_journal(quick):
    """Lines of the launcher, the updater and the agent are in the unit's
    journal with their own identifier and priority; with log_format = json
    every one of them is a JSON object."""
    c = quick
    # systemd's own messages about the unit are there too (from init.scope).
    native = [e for e in journal(c)
              if e.get("_TRANSPORT") == "journal" and e.get("SYSLOG_IDENTIFIER") in PROGS]
    idents = {e.get("SYSLOG_IDENTIFIER") for e in native}
    assert set(PROGS) <= idents, idents
    for e in native:
        assert e.get("_SYSTEMD_UNIT") == SVC + ".service", e
        assert e.get("PRIORITY") in ("3", "4", "6", "7"), e
    assert any(e["SYSLOG_IDENTIFIER"] == "tandem-agent" and "ready on port" in e["MESSAGE"]
               for e in native)

    # JSON lines: switch both files, restart, read what the new processes said.
    c.sh("sed -i 's/^log_format = text$/log_format = json/' /etc/tandem/updater.conf "
         "/etc/tandem/agent.conf")
    old = {str(p) for prog in PROGS for p in c.pids(prog)}
    mark = cursor(c)
    c.sh("systemctl restart %s" % SVC)
    c.wait(lambda: healthy(c), 60, "web1 healthy with JSON logs")
    # The old processes' last lines (text) come after the mark too.
    lines = [e for e in journal(c, mark)
             if e.get("_TRANSPORT") == "journal" and e.get("SYSLOG_IDENTIFIER") in PROGS and
             e["_PID"] not in old]
    seen = set()
    for e in lines:
        obj = json.loads(e["MESSAGE"])
        assert {"ts", "level", "prog", "pid", "msg"} <= set(obj), obj
        assert obj["prog"] == e["SYSLOG_IDENTIFIER"], (obj, e["SYSLOG_IDENTIFIER"])
        assert str(obj["pid"]) == e["_PID"], (obj, e["_PID"])
        seen.add(obj["prog"])
    assert set(PROGS) <= seen, seen
    c.sh("sed -i 's/^log_format = json$/log_format = text/' /etc/tandem/updater.conf "
         "/etc/tandem/agent.conf && systemctl restart %s" % SVC)
    c.wait(lambda: healthy(c), 60, "web1 healthy again with text logs")


def test_launcher_killed_hard_agent_adopted(quick):
    """SIGKILL of the unit's main process (the launcher): systemd restarts
    the unit, the new launcher stops the orphaned updater, and the new updater
    adopts the agent, which kept serving (same pid)."""
    c = quick
    before = svc(c, "MainPID", "NRestarts")
    agent = agent_pid(c)
    c.sh("systemctl kill -s KILL --kill-who=main %s" % SVC)
    c.wait(lambda: svc(c, "NRestarts")["NRestarts"] == str(int(before["NRestarts"]) + 1), 30,
           "systemd to restart the unit")
    c.wait(lambda: healthy(c) and len(c.pids("tandem-updater")) == 1, 60,
           "one updater serving again")
    assert svc(c, "MainPID")["MainPID"] != before["MainPID"]
    assert agent_pid(c) == agent


def test_updater_killed_agent_adopted(quick):
    """SIGKILL of the updater alone: the launcher starts another, which adopts the agent."""
    c = quick
    restarts = svc(c, "NRestarts")["NRestarts"]
    agent = agent_pid(c)
    old = c.pids("tandem-updater")
    c.sh("kill -9 %d" % old[0])
    c.wait(lambda: c.pids("tandem-updater") not in ([], old) and healthy(c), 60,
           "a new updater serving")
    assert agent_pid(c) == agent
    assert svc(c, "NRestarts")["NRestarts"] == restarts


def test_notify_ready_and_hung_updater_restarted(quick):
    """Type=notify: the unit is active only once the launcher said READY=1
    (its updater answered /health), with the launcher's STATUS= line. A
    SIGSTOPped updater stops the launcher's watchdog pings, and systemd
    restarts the unit (WatchdogSec shortened by a drop-in, as an operator
    would); the new launcher kills the stopped updater and the new updater
    adopts the agent."""
    c = quick
    dropin = "/run/systemd/system/%s.service.d" % SVC
    c.sh("mkdir -p %s && printf '[Service]\\nWatchdogSec=6s\\n' > %s/watchdog.conf && "
         "systemctl daemon-reload && systemctl restart %s" % (dropin, dropin, SVC))
    try:
        # `systemctl restart` returned: READY=1 came, so the updater serves already.
        u = svc(c, "Type", "NotifyAccess", "WatchdogUSec", "ActiveState", "StatusText")
        assert u["Type"] == "notify" and u["NotifyAccess"] == "main", u
        assert u["WatchdogUSec"] == "6s" and u["ActiveState"] == "active", u
        assert u["StatusText"].startswith("serving: updater "), u
        upd = c.pids("tandem-updater")
        assert len(upd) == 1
        c.wait(lambda: healthy(c), 60, "web1 healthy with a 6 s watchdog")
        # Pings keep it running well past the period.
        before = svc(c, "NRestarts", "MainPID")
        agent = agent_pid(c)
        mark = cursor(c)
        # Watched for longer than WatchdogSec: a missing ping would show. NRestarts
        # only grows and MainPID changes with a restart, so a restart between two
        # looks shows at the next one: a look every half second (each is an
        # nsenter and a systemctl), and one after the watch.
        watch_end = time.monotonic() + 8
        while True:
            assert svc(c, "NRestarts", "MainPID") == before
            if time.monotonic() >= watch_end:
                break
            time.sleep(0.5)  # the watch's sampling period, not a wait for a server
        c.sh("kill -STOP %d" % upd[0])
        c.wait(lambda: svc(c, "NRestarts")["NRestarts"] == str(int(before["NRestarts"]) + 1),
               60, "systemd to restart the unit after the watchdog timeout")
        assert any("Watchdog timeout" in e.get("MESSAGE", "") for e in journal(c, mark)), \
            [e.get("MESSAGE") for e in journal(c, mark)][-20:]
        c.wait(lambda: healthy(c) and c.pids("tandem-updater") not in ([], upd), 60,
               "a new updater serving")
        assert upd[0] not in c.pids("tandem-updater")
        assert agent_pid(c) == agent
        assert svc(c, "MainPID")["MainPID"] != before["MainPID"]
    finally:
        c.sh("rm -f %s/watchdog.conf && systemctl daemon-reload && systemctl restart %s"
             % (dropin, SVC))
    c.wait(lambda: healthy(c), 60, "web1 healthy with the packaged watchdog")
    assert svc(c, "WatchdogUSec")["WatchdogUSec"] == "1min"


def test_whole_unit_killed_comes_back(quick):
    """systemctl kill -s KILL signals every process of the unit (the agent
    too): systemd restarts it and the updater starts a new agent."""
    c = quick
    before = svc(c, "NRestarts")["NRestarts"]
    agent = agent_pid(c)
    r = c.run("systemctl kill -s KILL %s" % SVC, check=False)
    # systemd can report a failure for the unit's other processes when one of
    # them is already exiting as it walks the cgroup, though it sent them
    # SIGKILL; that every process died is checked below (a new agent).
    assert r.returncode == 0 or "to auxiliary processes" in r.stderr, r.stderr
    c.wait(lambda: svc(c, "NRestarts")["NRestarts"] == str(int(before) + 1), 30,
           "systemd to restart the unit")
    c.wait(lambda: healthy(c), 60, "web1 serving again")
    assert agent_pid(c) != agent


def test_push_include_self_and_rollback(quick):
    """A release pushed with --include-self replaces the agent and the updater
    (through the launcher's probation); a rollback brings the agent back."""
    c = quick
    rel = release(c, "1.0.2")
    r = c.run("tandem swarm update --host %s --release %s --include-self --json" % (HOST, rel),
              timeout=300)
    out = json.loads(r.stdout)
    h = out["hosts"][0]
    assert out["ok"] and h["agent"]["result"] == "updated" and h["self"]["result"] == "updated", out
    s = c.wait(lambda: healthy(c), 60, "web1 healthy after the self-update")
    assert s["updater_version"] == "1.0.2" and s["active"]["version"] == "1.0.2", s
    upd = c.pids("tandem-updater")
    assert len(upd) == 1
    exe = c.sh("readlink /proc/%d/exe" % upd[0]).strip()
    assert exe.startswith("/var/lib/tandem/updater/releases/"), exe
    c.sh("tandem swarm rollback --host %s" % HOST)
    s = c.wait(lambda: healthy(c), 60, "web1 healthy after the rollback")
    assert s["active"]["version"] == "1.0.0" and s["prev"]["version"] == "1.0.2", s


def test_package_upgrade_newer_updater_wins(quick):
    """A host whose updater was self-updated (1.0.2) gets a newer worker
    package (1.0.3): the package's restart runs the packaged updater, the
    newer one; the self-updated one stays in the tree. Then a self-update
    newer than the package wins again."""
    c = quick
    s = healthy(c)
    if s is None or s["updater_version"] != "1.0.2":
        # Run alone: self-update to 1.0.2 first.
        c.run("tandem swarm update --host %s --release %s --include-self --json"
              % (HOST, release(c, "1.0.2")), timeout=300)
        c.wait(lambda: (healthy(c) or {}).get("updater_version") == "1.0.2", 60,
               "the self-updated updater 1.0.2")
    deb = build_debs(c.build_dir, "1.0.3", ("tandem-worker",))["tandem-worker"]
    c.push(deb, "/root/" + os.path.basename(deb))
    active = s["active"] if s is not None else healthy(c)["active"]
    c.sh("dpkg -i /root/%s >/dev/null 2>&1" % os.path.basename(deb), timeout=300)
    s = c.wait(lambda: healthy(c, "1.0.3"), 60,
               "the packaged updater 1.0.3 after the upgrade")
    upd = c.pids("tandem-updater")
    assert len(upd) == 1
    assert c.sh("readlink /proc/%d/exe" % upd[0]).strip() == "/usr/sbin/tandem-updater"
    assert c.sh("ls /var/lib/tandem/updater/releases/active/")  # the 1.0.2 tree is kept
    assert any("packaged updater 1.0.3 is newer than the self-updated 1.0.2" in
               e.get("MESSAGE", "") for e in journal(c))
    # The agent's release is the master's business: the upgrade left it as it was.
    assert s["active"] == active, (s["active"], active)

    # A self-update newer than the package runs from the tree again.
    r = c.run("tandem swarm update --host %s --release %s --include-self --json"
              % (HOST, release(c, "1.0.4")), timeout=300)
    assert json.loads(r.stdout)["ok"], r.stdout
    s = c.wait(lambda: healthy(c, "1.0.4"), 60,
               "the self-updated updater 1.0.4")
    upd = c.pids("tandem-updater")
    assert c.sh("readlink /proc/%d/exe" % upd[0]).strip().startswith(
        "/var/lib/tandem/updater/releases/")


def test_reload_without_procps(quick):
    """systemctl reload works where /bin/kill (procps) is absent: the unit
    uses the shell's builtin kill; the launcher forwards SIGHUP."""
    c = quick
    assert c.run("test -e /bin/kill || test -e /usr/bin/kill", check=False).returncode != 0
    main = svc(c, "MainPID")["MainPID"]
    mark = cursor(c)
    c.sh("systemctl reload %s" % SVC)
    c.wait(lambda: any("SIGHUP: forwarded to the updater" in e.get("MESSAGE", "")
                       for e in journal(c, mark)), 30, "the launcher to log the SIGHUP")
    u = svc(c, "MainPID", "ActiveState")
    assert u == {"MainPID": main, "ActiveState": "active"}, u
    assert healthy(c)


def test_stop_stops_the_agent(quick):
    c = quick
    c.sh("systemctl stop %s" % SVC)
    assert svc(c, "ActiveState")["ActiveState"] == "inactive"
    for prog in PROGS:
        assert c.pids(prog) == [], prog


def test_purge_leaves_nothing(quick):
    """dpkg --purge: no file, directory, user, group or unit of the package remains."""
    c = quick
    c.sh("dpkg --purge tandem-worker >/dev/null 2>&1")
    assert c.run("getent passwd tandem || getent group tandem", check=False).returncode != 0
    assert "could not be found" in c.run("systemctl status %s" % SVC, check=False).stderr
    after = c.sh(FIND_ALL)
    added = sorted(set(after.splitlines()) - set(c.before.splitlines()))
    # What stays is the master package installed at the start, and the
    # shadow files' backups that adduser/deluser keep.
    master = set(c.sh("dpkg -L tandem-master").split())
    leftover = [p for p in added if p not in master and
                p not in ("/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-")]
    assert leftover == [], leftover
