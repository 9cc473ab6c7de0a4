"""Log lines as an operator ships them: with log_format = json, every line
the launcher, the updater and the agent write while a host is pushed a good
release, a broken one (rolled back) and a rollback, and is stopped, is one
JSON object with ts, level, prog, pid and msg; the updater reopens its
log_file on SIGHUP (forwarded by the launcher) after a rotation. The journal
target is checked under a real systemd in test_systemd.py, its fallback in
tests/unit/test_log.c."""

import json
import os
import re
import signal

from conftest import wait_until
from swarm_util import Fleet, make_release

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def json_lines(path, prog):
    """Every line of PATH as an object of PROG (the test fails on the first that is not)."""
    with open(path, "rb") as f:
        text = f.read().decode()        # strict: the lines are valid UTF-8
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError("%s:%d is not JSON: %r" % (path, n, line))
        assert isinstance(obj, dict), (path, n, line)
        assert TS.match(obj["ts"]), (path, n, obj)
        assert obj["level"] in ("error", "warn", "info", "debug"), (path, n, obj)
        assert obj["prog"] == prog and isinstance(obj["pid"], int), (path, n, obj)
        assert isinstance(obj["msg"], str), (path, n, obj)
        if "errno" in obj:
            assert isinstance(obj["errno"], int) and obj["error"], (path, n, obj)
        out.append(obj)
    assert out, "%s is empty" % path
    return out


def test_json_logs_every_line_parses(build_dir, tmp_path):
    fleet = Fleet(tmp_path / "fleet")
    try:
        fleet.enroll("h1")
        upd_log = str(tmp_path / "updater-lines.log")
        agent_log = str(tmp_path / "agent-lines.log")
        with open(os.path.join(fleet.bundle("h1"), "agent.conf"), "a") as f:
            f.write("log_format = json\nlog_file = %s\nlog_level = debug\n" % agent_log)
        p = fleet.start("h1", launcher=[], keys={"log_format": "json", "log_file": upd_log})
        good = make_release(build_dir, "2.0.0", str(tmp_path))
        bad = make_release(build_dir, "3.0.0", str(tmp_path), kind="exit-at-once")
        fleet.tandem("swarm", "update", "--host", "h1", "--release", good, check=0)

        # Rotation: the file is moved away, SIGHUP reopens the path.
        os.rename(upd_log, upd_log + ".1")
        p.signal(signal.SIGHUP)
        wait_until(lambda: os.path.exists(upd_log), 10, "the updater to reopen its log file")
        fleet.tandem("swarm", "update", "--host", "h1", "--release", bad, check=1)
    finally:
        fleet.stop_all()

    before = json_lines(upd_log + ".1", "tandem-updater")
    after = json_lines(upd_log, "tandem-updater")
    # The first push before the rotation; the rolled-back one (warnings) after it.
    assert any("2.0.0" in o["msg"] for o in before), before
    assert not any("3.0.0" in o["msg"] for o in before), before
    assert any(o["level"] == "warn" for o in after), after
    agents = json_lines(agent_log, "tandem-agent")
    assert len({o["pid"] for o in agents}) >= 2, agents   # 2.0.0, 3.0.0, 2.0.0 restored
    launcher = json_lines(p.err_path, "tandem-launcher")
    assert any("SIGHUP" in o["msg"] for o in launcher), launcher
