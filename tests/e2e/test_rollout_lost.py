"""End-to-end tests of pushes whose connection breaks: one real tandem-updater + tandem-agent
pair reached through a TCP proxy in the test that cuts the connection of the next upload
(after the updater answered, in the middle of the upload, or by swallowing the answer until
the client times out). The master chose the request id and recorded it before sending; it
asks the updater's history (GET /history?request_id=) and reports what really happened:
updated when the updater did the work, "not installed" (and a re-send with the same id when
retries allow) when the updater never took the request."""

import select
import socket
import threading

import pytest

from conftest import free_port
from swarm_util import Fleet, hosts_by_name, make_release

# An upload is the only request larger than this (releases are ~170 KB; /health and
# /history requests are a few hundred bytes).
UPLOAD_BYTES = 64 * 1024


class TlsRecords:
    """Follows the TLS record layer of one direction (its 5-byte headers are in clear text):
    feed() says whether an application data record (type 23: the request) began."""

    def __init__(self):
        self.header = b""
        self.skip = 0

    def feed(self, data):
        app = False
        i = 0
        while i < len(data):
            if self.skip > 0:
                n = min(self.skip, len(data) - i)
                self.skip -= n
                i += n
                continue
            need = 5 - len(self.header)
            self.header += data[i:i + need]
            i += need
            if len(self.header) == 5:
                app = app or self.header[0] == 23
                self.skip = int.from_bytes(self.header[3:5], "big")
                self.header = b""
        return app


class CutProxy:
    """127.0.0.1:PORT -> 127.0.0.1:TARGET. arm(MODE) picks the next connection that carries
    more than UPLOAD_BYTES to the updater:
      "answer"  the request goes through whole; the connection is closed (both sides) when
                the updater starts answering: it did the work, the client never hears of it
      "upload"  both sides are closed as soon as UPLOAD_BYTES have passed: the updater sees
                half an upload
      "hold"    the request goes through; the answer is swallowed and the client is kept
                waiting until it gives up
      "answer-then-dead"  as "answer", and every later connection is closed at once until
                the test sets DEAD back to False
    Every other connection is forwarded untouched."""

    def __init__(self, target):
        self.target = target
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.mode = None
        self.cuts = []          # modes of the connections cut so far
        self.uploads = 0        # connections that carried an upload
        self.closing = False
        self.dead = False       # every connection closed at once (an unreachable updater)
        self.nth = None         # arm_nth: (mode, connections to let through first)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def arm(self, mode):
        with self.lock:
            self.mode = mode

    def arm_nth(self, mode, n):
        """Cut (MODE) the N-th connection from now whatever it carries (a request too
        small to be told by its size, e.g. POST /rollback)."""
        with self.lock:
            self.nth = (mode, n)

    def close(self):
        self.closing = True
        self.lsock.close()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(c,), daemon=True).start()

    def _pipe(self, c):
        if self.dead:
            c.close()
            return
        try:
            s = socket.create_connection(("127.0.0.1", self.target), timeout=10)
        except OSError:
            c.close()
            return
        up, cut, sent_request, tls = 0, None, False, TlsRecords()
        with self.lock:
            if self.nth is not None:
                mode, n = self.nth
                self.nth = (mode, n - 1) if n > 1 else None
                if n == 1:
                    cut = mode
                    self.cuts.append(mode)
        try:
            while not self.closing:
                r, _, _ = select.select([c, s], [], [], 0.5)
                if c in r:
                    data = c.recv(65536)
                    if not data:
                        return
                    sent_request = tls.feed(data) or sent_request
                    if up <= UPLOAD_BYTES < up + len(data):
                        with self.lock:
                            self.uploads += 1
                            if self.mode is not None:
                                cut, self.mode = self.mode, None
                                self.cuts.append(cut)
                    up += len(data)
                    if cut == "upload":
                        return
                    s.sendall(data)
                if s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    # The server's handshake messages pass; its answer to the request does not.
                    if cut in ("answer", "answer-then-dead") and sent_request:
                        self.dead = cut == "answer-then-dead"
                        return
                    if cut != "hold":
                        c.sendall(data)
        except OSError:
            return
        finally:
            c.close()
            s.close()


@pytest.fixture(scope="module")
def rel(build_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("releases"))
    return {
        "v1": make_release(build_dir, "1.0.0", out),
        "v2": make_release(build_dir, "2.0.0", out),
    }


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, rel):
    """h1 enrolled at the proxy's port; its updater listens on another one."""
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    real = free_port()
    proxy = CutProxy(real)
    try:
        f.enroll("h1", updater_port=proxy.port)
        conf = f.bundle("h1") + "/updater.conf"
        with open(conf) as fh:
            text = fh.read()
        old = "listen = 127.0.0.1:%d\n" % proxy.port
        assert old in text
        with open(conf, "w") as fh:
            fh.write(text.replace(old, "listen = 127.0.0.1:%d\n" % real))
        f.ports["h1"] = (f.ports["h1"][0], real)
        f.start("h1")
        f.proxy = proxy
        doc = f.json("swarm", "update", "--hosts", "h1", "--release", rel["v1"])
        assert doc["ok"] is True, doc
        yield f
    finally:
        proxy.close()
        f.stop_all()


def active(fleet):
    return fleet.json("swarm", "status", "--host", "h1")["hosts"][0]["active"]["version"]


def row_of(fleet, doc):
    return fleet.json("swarm", "rollout", "status", doc["rollout"]["id"])["host_rows"][0]


def history_of(fleet, rid):
    return [h for h in fleet.json("swarm", "history", "--host", "h1")["updater"]
            if h.get("request_id") == rid]


def update(fleet, release, *extra, check=0):
    # --full: the proxy knows an upload by its size, and a planned push's delta of
    # these releases is a few hundred bytes (test_delta_push.py covers planned pushes).
    return fleet.json("swarm", "update", "--hosts", "h1", "--release", release, "--full",
                      *extra, check=check)


def test_answer_lost_outcome_from_history(fleet, rel):
    """The updater installed 2.0.0 but its answer never arrived: updated, not failed."""
    assert active(fleet) == "1.0.0"
    fleet.proxy.arm("answer")
    n = fleet.proxy.uploads
    doc = update(fleet, rel["v2"])
    assert fleet.proxy.cuts[-1:] == ["answer"] and fleet.proxy.uploads == n + 1
    agent = hosts_by_name(doc)["h1"]["agent"]
    assert doc["ok"] is True and agent["result"] == "updated", doc
    assert agent["version"] == "2.0.0"
    assert "connection broke" in agent["detail"], agent
    row = row_of(fleet, doc)
    assert row["state"] == "updated" and row["attempts"] == 1, row
    # Exactly one operation with that id on the host, and it is what the master reports.
    assert [(h["result"], h["version"]) for h in history_of(fleet, row["request_id"])] == \
        [("updated", "2.0.0")]
    assert active(fleet) == "2.0.0"


def test_upload_cut_not_installed(fleet, rel):
    """Half an upload: the updater never took the request; said so, nothing installed."""
    assert active(fleet) == "2.0.0"
    fleet.proxy.arm("upload")
    n = fleet.proxy.uploads
    doc = update(fleet, rel["v1"], "--retries", "1", check=1)
    assert fleet.proxy.cuts[-1:] == ["upload"] and fleet.proxy.uploads == n + 1
    agent = hosts_by_name(doc)["h1"]["agent"]
    assert doc["ok"] is False and agent["result"] == "failed", doc
    assert agent["reason"].startswith("not installed: the connection broke before the "
                                      "updater took the request"), agent
    row = row_of(fleet, doc)
    assert "has no record of request %s" % row["request_id"] in agent["detail"], agent
    assert history_of(fleet, row["request_id"]) == []
    assert active(fleet) == "2.0.0"


def test_upload_cut_sent_again_with_the_same_id(fleet, rel):
    """With retries, a request the updater never took is sent again under the same id."""
    fleet.proxy.arm("upload")
    n = fleet.proxy.uploads
    doc = update(fleet, rel["v1"])
    assert fleet.proxy.cuts[-1:] == ["upload"]
    assert doc["ok"] is True and hosts_by_name(doc)["h1"]["agent"]["result"] == "updated", doc
    assert fleet.proxy.uploads == n + 2  # the cut one, and the one sent again
    row = row_of(fleet, doc)
    assert row["attempts"] == 1, row  # one dispatch of the rollout
    assert [h["result"] for h in history_of(fleet, row["request_id"])] == ["updated"]
    assert active(fleet) == "1.0.0"


def test_answer_held_client_times_out(fleet, rel):
    """The answer never comes and the client times out: the history tells it was updated."""
    fleet.proxy.arm("hold")
    n = fleet.proxy.uploads
    doc = update(fleet, rel["v2"], "--timeout", "8")
    assert fleet.proxy.cuts[-1:] == ["hold"] and fleet.proxy.uploads == n + 1
    agent = hosts_by_name(doc)["h1"]["agent"]
    assert doc["ok"] is True and agent["result"] == "updated", doc
    row = row_of(fleet, doc)
    assert row["attempts"] == 1, row
    assert [h["result"] for h in history_of(fleet, row["request_id"])] == ["updated"]
    assert active(fleet) == "2.0.0"


def test_outcome_unknown_is_not_a_guess(fleet, rel):
    """The answer is lost and the updater cannot be asked before the deadline: the push is
    reported as of unknown outcome (a failure), never sent again; the history tells later."""
    assert active(fleet) == "2.0.0"
    fleet.proxy.arm("answer-then-dead")
    n = fleet.proxy.uploads
    try:
        doc = update(fleet, rel["v1"], "--timeout", "5", check=1)
    finally:
        fleet.proxy.dead = False
    assert fleet.proxy.cuts[-1:] == ["answer-then-dead"] and fleet.proxy.uploads == n + 1
    agent = hosts_by_name(doc)["h1"]["agent"]
    assert doc["ok"] is False and agent["result"] == "failed", doc
    assert agent["reason"].startswith("outcome unknown"), agent
    assert "the connection broke" in agent["detail"], agent
    row = row_of(fleet, doc)
    # It did run: the updater's own record says so once it can be asked again.
    assert [h["result"] for h in history_of(fleet, row["request_id"])] == ["updated"]
    assert active(fleet) == "1.0.0"


def test_rollback_answer_lost_outcome_from_history(fleet, rel):
    """`swarm rollback --host`: the updater rolled back but its answer was lost; the request
    id it carried lets the master report the rollback, not a failure."""
    assert active(fleet) == "1.0.0"
    before = [h for h in fleet.json("swarm", "history", "--host", "h1")["updater"]
              if h["kind"] == "rollback"]
    # The command's first connection asks /health, the second carries the rollback.
    fleet.proxy.arm_nth("answer", 2)
    doc = fleet.json("swarm", "rollback", "--host", "h1")
    assert fleet.proxy.cuts[-1:] == ["answer"]
    assert doc["result"] == "rolled_back" and doc["version"] == "2.0.0", doc
    after = [h for h in fleet.json("swarm", "history", "--host", "h1")["updater"]
             if h["kind"] == "rollback"]
    assert len(after) == len(before) + 1
    assert after[-1]["request_id"] and after[-1]["result"] == "rolled_back", after[-1]
    assert active(fleet) == "2.0.0"
