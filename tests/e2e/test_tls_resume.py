"""TLS session resumption in the master's client: the connections of one command
after the first resume the session the first handshake made (the updater's
/metrics counts resumed handshakes), TANDEM_TLS_NO_RESUME=1 turns it off, and
each status command asks a host once (one full handshake). That a revoked or
re-pinned server is refused on a resumed session is shown in
tests/unit/test_httpc.c (test_tls_resumption).
"""

import os
import re

from swarm_util import curl_as, fleet, releases, tandem  # noqa: F401 (fixtures)

SAMPLE_RX = re.compile(r'^tandem_tls_handshakes_total\{side="server",resumed="(true|false)"\} '
                       r'(\d+)$', re.M)


def server_handshakes(fleet, name):
    """{resumed: count} of NAME's updater (the scrape itself is one full handshake)."""
    m = os.path.join(fleet.home, "master")
    st, text = curl_as(fleet, name, fleet.ports[name][1],
                       (os.path.join(m, "master.crt"), os.path.join(m, "master.key")),
                       "/metrics")
    assert st == 200, text
    out = {k: int(v) for k, v in SAMPLE_RX.findall(text)}
    assert set(out) == {"true", "false"}, text
    return out


def test_one_command_resumes_and_the_switch_turns_it_off(fleet, releases):  # noqa: F811
    fleet.enroll("web1")
    fleet.start("web1")
    h0 = server_handshakes(fleet, "web1")
    # A push: /health, the upload and its follow-up requests, one host.
    doc = fleet.json("swarm", "update", "--host", "web1", "--release", releases["v1"])
    assert doc["ok"] is True, doc
    h1 = server_handshakes(fleet, "web1")
    full = h1["false"] - h0["false"] - 1  # minus the scrape
    resumed = h1["true"] - h0["true"]
    assert full == 1, (h0, h1)
    assert resumed >= 1, (h0, h1)

    # A push with resumption off: every connection a full handshake.
    # swarm status asks each host once per command: one full handshake, nothing to resume.
    r = fleet.tandem("swarm", "status", "--host", "web1", check=None)
    assert r.returncode == 0, r.stderr
    h2 = server_handshakes(fleet, "web1")
    assert h2["false"] - h1["false"] - 1 == 1, (h1, h2)
    assert h2["true"] == h1["true"], (h1, h2)
    env = {"TANDEM_TLS_NO_RESUME": "1"}
    r = tandem(fleet.home, "swarm", "update", "--host", "web1", "--release", releases["v2"],
               env=env)
    assert r.returncode == 0, r.stderr
    h3 = server_handshakes(fleet, "web1")
    assert h3["true"] == h2["true"], (h2, h3)
    assert h3["false"] - h2["false"] - 1 >= 2, (h2, h3)
