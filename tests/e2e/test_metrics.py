"""GET /metrics of the real updater over mutual TLS: Prometheus text that
Debian's promtool accepts, counters that a push and a rollback move, the
release, agent and certificate series; refused to every role but the master.
"""

import re
import shutil
import subprocess

import pytest

from release_util import Releases
from test_updater import Host
from worker_util import curl, curl_run

SAMPLE_RX = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RX = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@pytest.fixture(scope="module")
def releases(build_dir, tmp_path_factory):
    return Releases(build_dir, str(tmp_path_factory.mktemp("releases")))


def scrape(host, who=None):
    st, headers, body = curl(host.pki, who or host.pki.master, host.url("/metrics"))
    return st, headers, body


def samples(text):
    """{(name, frozenset of labels): value} of the exposition TEXT."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RX.match(line)
        assert m, "not a sample line: %r" % line
        labels = frozenset(LABEL_RX.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(s, name, **labels):
    return s.get((name, frozenset(labels.items())))


def promtool_check(text):
    if shutil.which("promtool") is None:
        pytest.fail("promtool is not installed (scripts/deps.sh installs prometheus: make deps)")
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", \
        (r.returncode, r.stdout, r.stderr, text)


def test_metrics_promtool_and_counters(procs, tmp_path, pki, releases):
    v1 = releases.get("1.0.0")
    v2 = releases.get("1.0.1")
    host = Host(procs, tmp_path, pki)
    host.proc.stop(timeout=30)
    host.start(args=["--seed", v1])

    st, headers, text = scrape(host)
    assert st == 200, text
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    promtool_check(text)
    s = samples(text)
    health = host.health()
    # The seed counts as an operation of its own kind; no update yet.
    assert value(s, "tandem_operations_total", kind="seed", result="updated") == 1
    assert value(s, "tandem_operations_total", kind="update", result="updated") == 0
    assert value(s, "tandem_release_info", slot="active", version="1.0.0",
                 sha256=health["releases"][0]["sha256"]) == 1
    assert value(s, "tandem_build_info", program="tandem-updater",
                 version=health["version"]) == 1
    assert value(s, "tandem_updater_state", state="ok") == 1
    assert value(s, "tandem_agent_up") == 1
    assert value(s, "tandem_agent_restarts_total") == 0
    assert value(s, "tandem_operation_in_progress") == 0
    assert value(s, "tandem_disk_free_bytes") > 0
    assert value(s, "tandem_security_floor") == health["security_floor"]
    not_after = value(s, "tandem_cert_not_after_timestamp_seconds", cert="updater")
    r = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-dateopt", "iso_8601",
                        "-in", pki.updater[0]], capture_output=True, text=True, check=True)
    end = subprocess.run(["date", "-u", "-d", r.stdout.split("=", 1)[1].strip(), "+%s"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert not_after == float(end)

    # A push moves the counters, the release and the phase timings.
    st, _, body = host.push(v2)
    assert st == 200 and body["status"] == "updated", body
    st, _, text = scrape(host)
    promtool_check(text)
    s = samples(text)
    assert value(s, "tandem_operations_total", kind="update", result="updated") == 1
    assert value(s, "tandem_operation_duration_seconds_count", kind="update") == 1
    assert value(s, "tandem_operation_duration_seconds_sum", kind="update") > 0
    assert value(s, "tandem_last_operation_timestamp_seconds", kind="update",
                 result="updated") > 0
    assert value(s, "tandem_operation_phase_duration_seconds", phase="probe") > 0
    assert [k for k in s if k[0] == "tandem_release_info"] and \
        value(s, "tandem_release_info", slot="active", version="1.0.1",
              sha256=body["release"]["sha256"]) == 1
    assert value(s, "tandem_release_info", slot="prev", version="1.0.0",
                 sha256=health["releases"][0]["sha256"]) == 1

    # The same release again is already_active: its own counter, nothing else moves.
    st, _, body = host.push(v2)
    assert st == 200 and body["status"] == "already_active", body
    st, rb = host.rollback()
    assert st == 200 and rb["status"] == "rolled_back", rb
    s = samples(scrape(host)[2])
    assert value(s, "tandem_operations_total", kind="update", result="already_active") == 1
    assert value(s, "tandem_operations_total", kind="update", result="updated") == 1
    assert value(s, "tandem_operations_total", kind="rollback", result="rolled_back") == 1
    assert value(s, "tandem_release_info", slot="active", version="1.0.0",
                 sha256=health["releases"][0]["sha256"]) == 1


def test_metrics_master_only(procs, tmp_path, pki):
    host = Host(procs, tmp_path, pki)
    for who in (pki.updater, pki.agent):
        st, _, body = scrape(host, who)
        assert st == 403, body
        assert "tandem_" not in body
    # No client certificate: no handshake.
    r = curl_run(host.url("/metrics"), pki.ca_crt, None, max_time=30)
    assert r.rc != 0 and r.status is None and "tandem_" not in r.body, r.stderr
    # With no release yet the metrics still parse.
    st, _, text = scrape(host)
    assert st == 200
    promtool_check(text)
    s = samples(text)
    assert value(s, "tandem_updater_state", state="no_release") == 1
    assert value(s, "tandem_agent_up") == 0
    assert not [k for k in s if k[0] == "tandem_release_info"]
