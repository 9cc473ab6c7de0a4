"""Hostile traffic against the real updater and agent on 127.0.0.1:
malformed and ambiguous HTTP, slow clients, connection floods.

Every refusal must be the documented JSON object {"detail": {"error": ...}}
with the right status, and must change nothing."""

import json
import os
import re
import socket
import ssl
import time

import pytest

from conftest import wait_until
from hostile_util import Pollers, SilentFlood
from swarm_util import Fleet, make_release
from test_updater import Host, releases  # noqa: F401 (releases is a fixture)


def tls_ctx(pki, who):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.ca_crt)
    ctx.check_hostname = False
    if who is not None:
        ctx.load_cert_chain(who[0], who[1])
    return ctx


def raw(pki, port, data, who=None, timeout=10.0):
    """Send DATA over mTLS as WHO (the master by default); return every byte
    the server sends until it closes (or TIMEOUT passes: then None)."""
    ctx = tls_ctx(pki, who or pki.master)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with ctx.wrap_socket(s) as t:
            t.sendall(data)
            out = b""
            deadline = time.monotonic() + timeout
            while True:
                t.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    b = t.recv(65536)
                except socket.timeout:
                    return None
                except (ssl.SSLError, ConnectionResetError):
                    break
                if not b:
                    break
                out += b
            return out


def responses(data):
    """Split a byte stream of HTTP responses: [(status, headers, body)]."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        out.append((status, hdrs, rest[:n]))
        data = rest[n:]
    return out


def assert_json_error(resp, status):
    st, hdrs, body = resp
    assert st == status, resp
    assert hdrs.get("content-type", "").startswith("application/json"), resp
    doc = json.loads(body)
    assert isinstance(doc["detail"]["error"], str) and doc["detail"]["error"], doc


@pytest.fixture
def host(procs, tmp_path, pki):
    return Host(procs, tmp_path, pki)


# ------------------------------------------------------------ strict HTTP

def test_encoded_nul_does_not_reach_the_route(host, releases, pki):
    """/rollback%00 was served as /rollback (the path cut at the NUL)."""
    host.push(releases.get("1.0.0"))
    host.push(releases.get("2.0.0"))
    before = host.snapshot()
    for target in (b"/rollback%00", b"/rollback%00.json", b"/roll%00back"):
        out = raw(pki, host.port, b"POST " + target + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        (resp,) = responses(out)
        assert_json_error(resp, 400)
    # A query value with an encoded NUL is refused too, not cut short.
    out = raw(pki, host.port, b"GET /history?request_id=a%00b HTTP/1.1\r\nHost: x\r\n"
              b"Connection: close\r\n\r\n")
    assert_json_error(responses(out)[0], 400)
    assert host.snapshot() == before
    assert host.slots()["active"].startswith("2.0.0") or host.health()["status"] == "ok"


@pytest.mark.parametrize("head", [
    # two different lengths: which one frames the body is ambiguous
    b"POST /rollback HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n",
    b"POST /keyring HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
    # length and chunked together: request smuggling's classic
    b"POST /rollback HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # a chunk size no body can have
    b"POST /keyring HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"ffffffffffffffffffffffff\r\nabc",
    b"POST /keyring HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"ffffffffffffffff\r\nabc",
    # an unknown coding
    b"POST /keyring HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
], ids=["two-lengths", "repeated-length", "length-and-chunked", "chunk-too-big",
        "chunk-2^64-1", "unknown-coding"])
def test_ambiguous_framing_is_400(host, pki, head):
    before = host.snapshot()
    out = raw(pki, host.port, head)
    assert out is not None, "the server waited for the client instead of refusing"
    rs = responses(out)
    assert_json_error(rs[0], 400)
    assert host.snapshot() == before
    assert host.health()["operation"] is None


@pytest.mark.parametrize("what,data,status", [
    ("garbage request line", b"\x01\x02 nonsense\r\n\r\n", 400),
    ("HTTP/2 text", b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("a very long target", b"GET /" + b"a" * 300000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", None),
    ("a very long header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 300000 +
     b"\r\n\r\n", None),
], ids=["garbage", "http2", "long-target", "long-header"])
def test_errors_libmicrohttpd_makes_are_json(host, pki, what, data, status):
    out = raw(pki, host.port, data)
    assert out, what
    (resp,) = responses(out)
    if status is None:
        assert resp[0] in (413, 414, 431), resp
        status = resp[0]
    assert_json_error(resp, status)
    assert b"<html" not in out.lower()


def test_agent_errors_are_json_too(host, releases, pki):
    host.push(releases.get("1.0.0"))
    out = raw(pki, host.agent_port, b"GET /health HTTP/7.1\r\nHost: x\r\n\r\n", who=pki.updater)
    assert_json_error(responses(out)[0], 505)
    out = raw(pki, host.agent_port, b"\x01\x02 garbage\r\n\r\n", who=pki.updater)
    assert_json_error(responses(out)[0], 400)
    out = raw(pki, host.agent_port, b"GET /health%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
              who=pki.updater)
    assert_json_error(responses(out)[0], 400)


# ------------------------------------------------------------ deadlines per route

def trickle_until_closed(pki, port, head, who, limit):
    """Send HEAD, then one body byte every 0.2 s; return the seconds until the
    server closes the connection (or LIMIT if it has not by then)."""
    ctx = tls_ctx(pki, who)
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as s:
        with ctx.wrap_socket(s) as t:
            t.sendall(head)
            t.settimeout(0.2)
            while time.monotonic() - start < limit:
                try:
                    if t.recv(4096) == b"":
                        return time.monotonic() - start
                except socket.timeout:
                    pass
                except (ssl.SSLError, OSError):
                    return time.monotonic() - start
                try:
                    t.sendall(b"x")
                except (ssl.SSLError, OSError):
                    return time.monotonic() - start
    return limit


def test_only_operation_routes_get_the_long_deadline(procs, tmp_path, pki, releases):
    """A slow client on any route but /update, /update-self and /rollback held
    its connection for request_timeout (15 min)."""
    host = Host(procs, tmp_path, pki, route_timeout="1s", request_timeout="60s")
    # An upload route keeps the long deadline: a push takes longer than 1 s.
    st, _, body = host.push(releases.get("1.0.0"))
    assert st == 200, body
    took = trickle_until_closed(pki, host.port, b"POST /keyring HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: 4000\r\n\r\n", pki.master, 30)
    assert took < 10, "a trickled /keyring body held the connection for %.1f s" % took
    # The same trickle on /update is not cut after route_timeout.
    took = trickle_until_closed(
        pki, host.port, b"POST /update HTTP/1.1\r\nHost: x\r\nContent-Length: 4000\r\n"
        b"Content-Type: multipart/form-data; boundary=XyZ\r\n\r\n", pki.master, 3)
    assert took >= 3
    assert host.health()["status"] == "ok"


# ------------------------------------------------------------ starvation

def test_silent_connections_do_not_starve_the_probe(host, releases, pki):
    """16 silent connections from 127.0.0.1 filled the agent's per-address
    limit: the probe of a good release failed and it went to releases/failed."""
    st, _, body = host.push(releases.get("1.0.0"))
    assert st == 200, body
    flood = SilentFlood(host.agent_port, count=16)
    try:
        wait_until(lambda: flood.opened >= 16, 10, "the flood to connect")
        st, _, body = host.push(releases.get("2.0.0"))
        assert st == 200, body
        assert json.loads(body["probe"])["version"] == "2.0.0"
        # The flood was there all along: it lost connections to the probe.
        assert flood.closed_by_server > 0
    finally:
        flood.stop()
    assert host.health()["status"] == "ok"
    assert os.listdir(os.path.join(host.root, "releases", "failed")) == []
    host.wait_agent("2.0.0")


def test_push_through_a_flood(tmp_path, build_dir):
    """While connections without a certificate hold every slot of the agent and
    of the updater (from 10 addresses, reopened as soon as they are dropped) and
    50 clients with a non-master certificate poll /health, a master push of a
    good release succeeds and the host ends healthy on it."""
    fleet = Fleet(tmp_path / "fleet")
    floods = []
    pollers = None
    try:
        fleet.enroll("h1")
        # A loaded machine (an ASan build, a parallel make check) answers slowly
        # under the flood: a longer probe deadline leaves room for retries.
        fleet.start("h1", keys={"probe_deadline": "30s"})
        out = str(tmp_path / "rel")
        os.mkdir(out)
        v1 = make_release(build_dir, "1.0.0", out)
        v2 = make_release(build_dir, "2.0.0", out)
        doc = fleet.json("swarm", "update", "--host", "h1", "--release", v1)
        assert doc["ok"] is True, doc
        agent_port, updater_port = fleet.ports["h1"]
        bundle = fleet.bundle("h1")
        # 160 silent connections each: more than the handshake budget of both
        # (2 * max_conns: 64 on the updater, 128 on the agent).
        sources = ["127.0.0.%d" % i for i in range(1, 11)]
        floods = [SilentFlood(agent_port, sources, 16, rate=30),
                  SilentFlood(updater_port, sources, 16, rate=30)]
        pollers = Pollers(os.path.join(bundle, "ca.crt"), updater_port,
                          (os.path.join(bundle, "agent.crt"), os.path.join(bundle, "agent.key")))
        # Every handshake slot taken: the servers evict the flood's own connections.
        wait_until(lambda: all(f.closed_by_server >= 20 for f in floods) and
                   sum(pollers.answers.values()) >= 50, 30, "the flood to be in place")

        doc = fleet.json("swarm", "update", "--host", "h1", "--release", v2)
        assert doc["ok"] is True, doc
        (h,) = doc["hosts"]
        assert h["agent"]["result"] == "updated" and h["agent"]["version"] == "2.0.0", h
        # The flood really held slots and kept coming back.
        assert all(f.closed_by_server > 0 for f in floods)
        assert pollers.answers.get("200", 0) > 0, pollers.answers
    finally:
        if pollers is not None:
            pollers.stop()
        for f in floods:
            f.stop()
        st = None
        if fleet.procs:
            st = fleet.json("swarm", "status", "--host", "h1", check=None)
        fleet.stop_all()
    (host,) = st["hosts"]
    assert host["active"]["version"] == "2.0.0", host
    failed = os.path.join(fleet.install_dir("h1"), "releases", "failed")
    assert not os.path.isdir(failed) or os.listdir(failed) == []
    # The refusals were logged, but summed up rather than one line each.
    log = fleet.procs["h1"].stderr()
    assert re.search(r"connections? refused from 127\.0\.0\.\d in the last \d+ s", log), log[-3000:]
    assert log.count("refused") < 400
