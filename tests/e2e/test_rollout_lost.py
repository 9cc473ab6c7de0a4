"""End-to-end tests of pushes whose connection breaks: one real tandem-updater + tandem-agent
pair reached through a proxy in the test that cuts the connection of the next upload
(after the updater answered, in the middle of the upload, or by swallowing the answer until
the client times out). The master chose the request id and recorded it before sending; it
asks the updater's history (GET /history?request_id=) and reports what really happened:
updated when the updater did the work, "not installed" (and a re-send with the same id when
retries allow) when the updater never took the request. Full and planned (delta) uploads
both: the proxy reads each request in clear text and tells them apart by their form."""

import hashlib
import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import threading

import pytest

from conftest import bin_path, free_port, wait_until
from release_util import sha256_file
from swarm_util import Fleet, hosts_by_name, make_release
from test_delta import repack

# A request's head and form fields (before the file part) are never longer than this.
HEAD_MAX = 256 * 1024


def upload_of(head):
    """What the start HEAD of a request is: None while it cannot be told yet, else
    {"path", "kind": "full" | "delta" | None (not an upload), "request_id"}."""
    end = head.find(b"\r\n\r\n")
    if end < 0 and len(head) < HEAD_MAX:
        return None
    line = head.split(b"\r\n", 1)[0].split(b" ")
    path = line[1].decode(errors="replace").split("?")[0] if len(line) > 2 else ""
    if line[0] != b"POST" or path not in ("/update", "/update-self"):
        return {"path": path, "kind": None, "request_id": None}
    # The file part comes last; every field the updater reads precedes it.
    if b'name="tarball"' not in head and len(head) < HEAD_MAX:
        return None

    def field(name):
        m = re.search(b'name="%s"\r\n\r\n([^\r]*)\r\n' % name, head)
        return m.group(1).decode() if m else None
    return {"path": path, "kind": "delta" if field(b"mode") == "delta" else "full",
            "request_id": field(b"request_id")}


class CutProxy:
    """127.0.0.1:PORT -> 127.0.0.1:TARGET, with TLS at both ends: it presents the updater's
    own certificate to the master (whose pin holds) and the master's to the updater, so it
    reads every request in clear text. arm(MODE, KIND, PATH) picks the next upload (POST
    /update or /update-self; PATH: only that one) whose form is KIND ("full", "delta"; None:
    either):
      "answer"  the request goes through whole; the connection is closed (both sides) when
                the updater starts answering: it did the work, the client never hears of it
      "upload"  both sides are closed once the start of the file part has passed: the
                updater sees a part of the upload
      "hold"    the request goes through; the answer is swallowed and the client is kept
                waiting until it gives up
      "answer-then-dead"  as "answer", and every later connection is closed at once until
                the test sets DEAD back to False
      "swallow" nothing of the request reaches the updater, nothing comes back: the client
                waits (until it is killed)
    Every other connection is forwarded untouched. UPLOADS lists every upload seen:
    {"path", "kind", "request_id"}."""

    def __init__(self, target):
        self.target = target
        self.sctx = self.cctx = None
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.mode = None
        self.kind = None
        self.path = None
        self.cuts = []          # modes of the connections cut so far
        self.uploads = []       # every upload seen, cut or not
        self.closing = False
        self.dead = False       # every connection closed at once (an unreachable updater)
        self.nth = None         # arm_nth: (mode, connections to let through first)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def certs(self, server_pair, client_pair, ca):
        """Serve as SERVER_PAIR (cert, key), connect to the target as CLIENT_PAIR, trusting
        CA; until this is called every connection is closed at once."""
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(*server_pair)
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cctx.load_verify_locations(ca)
        cctx.check_hostname = False
        cctx.load_cert_chain(*client_pair)
        self.sctx, self.cctx = sctx, cctx

    def arm(self, mode, kind=None, path=None):
        with self.lock:
            self.mode, self.kind, self.path = mode, kind, path

    def arm_nth(self, mode, n):
        """Cut (MODE) the N-th connection from now whatever it carries (e.g. POST
        /rollback, which is no upload)."""
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

    def _pipe(self, raw):
        if self.dead or self.sctx is None:
            raw.close()
            return
        c = s = None
        try:
            raw.settimeout(30)
            c = self.sctx.wrap_socket(raw, server_side=True)
            s = self.cctx.wrap_socket(socket.create_connection(("127.0.0.1", self.target),
                                                               timeout=30))
        except (OSError, ssl.SSLError):
            for x in (c or raw, s):
                if x is not None:
                    x.close()
            return
        cut, head, told = None, b"", False
        with self.lock:
            if self.nth is not None:
                mode, n = self.nth
                self.nth = (mode, n - 1) if n > 1 else None
                if n == 1:
                    cut, told = mode, True
                    self.cuts.append(mode)
        try:
            while not self.closing:
                # Decrypted bytes already buffered count as readable: select cannot see them.
                ready = [x for x in (c, s) if x.pending()] or \
                    select.select([c, s], [], [], 0.5)[0]
                if c in ready:
                    data = c.recv(65536)
                    if not data:
                        return
                    if not told:
                        head += data
                        up = upload_of(head)
                        if up is None:
                            continue
                        told, data, head = True, head, b""
                        if up["kind"] is not None:
                            with self.lock:
                                self.uploads.append(up)
                                if self.mode is not None and self.kind in (None, up["kind"]) \
                                        and self.path in (None, up["path"]):
                                    cut, self.mode = self.mode, None
                                    self.cuts.append(cut)
                    if cut == "swallow":
                        continue
                    s.sendall(data)
                    if cut == "upload":
                        return
                if s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    # The updater answers: the request went through.
                    if cut in ("answer", "answer-then-dead"):
                        self.dead = cut == "answer-then-dead"
                        return
                    if cut != "hold":
                        c.sendall(data)
        except (OSError, ssl.SSLError):
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


def start_behind_proxy(f, proxy, launcher=None):
    """Enroll h1 in fleet F at PROXY's port and start its updater (under tandem-launcher
    with LAUNCHER's options when given) on another port, behind PROXY."""
    real = proxy.target
    f.enroll("h1", updater_port=proxy.port)
    conf = f.bundle("h1") + "/updater.conf"
    with open(conf) as fh:
        text = fh.read()
    old = "listen = 127.0.0.1:%d\n" % proxy.port
    assert old in text
    with open(conf, "w") as fh:
        fh.write(text.replace(old, "listen = 127.0.0.1:%d\n" % real))
    f.ports["h1"] = (f.ports["h1"][0], real)
    b, m = f.bundle("h1"), os.path.join(f.home, "master")
    proxy.certs((os.path.join(b, "updater.crt"), os.path.join(b, "updater.key")),
                (os.path.join(m, "master.crt"), os.path.join(m, "master.key")),
                os.path.join(f.home, "ca", "ca.crt"))
    f.start("h1", launcher=launcher)
    f.proxy = proxy


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, rel):
    """h1 enrolled at the proxy's port; its updater listens on another one."""
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    proxy = CutProxy(free_port())
    try:
        start_behind_proxy(f, proxy)
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
    # --full: these releases share nothing but small files, so a delta would not be
    # clearly smaller anyway; the planned pushes below use releases that share a library.
    return fleet.json("swarm", "update", "--hosts", "h1", "--release", release, "--full",
                      *extra, check=check)


def test_answer_lost_outcome_from_history(fleet, rel):
    """The updater installed 2.0.0 but its answer never arrived: updated, not failed."""
    assert active(fleet) == "1.0.0"
    fleet.proxy.arm("answer")
    n = len(fleet.proxy.uploads)
    doc = update(fleet, rel["v2"])
    assert fleet.proxy.cuts[-1:] == ["answer"] and len(fleet.proxy.uploads) == n + 1
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
    n = len(fleet.proxy.uploads)
    doc = update(fleet, rel["v1"], "--retries", "1", check=1)
    assert fleet.proxy.cuts[-1:] == ["upload"] and len(fleet.proxy.uploads) == n + 1
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
    n = len(fleet.proxy.uploads)
    doc = update(fleet, rel["v1"])
    assert fleet.proxy.cuts[-1:] == ["upload"]
    assert doc["ok"] is True and hosts_by_name(doc)["h1"]["agent"]["result"] == "updated", doc
    assert len(fleet.proxy.uploads) == n + 2  # the cut one, and the one sent again
    row = row_of(fleet, doc)
    assert row["attempts"] == 1, row  # one dispatch of the rollout
    assert [h["result"] for h in history_of(fleet, row["request_id"])] == ["updated"]
    assert active(fleet) == "1.0.0"


def test_answer_held_client_times_out(fleet, rel):
    """The answer never comes and the client times out: the history tells it was updated."""
    fleet.proxy.arm("hold")
    n = len(fleet.proxy.uploads)
    doc = update(fleet, rel["v2"], "--timeout", "8")
    assert fleet.proxy.cuts[-1:] == ["hold"] and len(fleet.proxy.uploads) == n + 1
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
    n = len(fleet.proxy.uploads)
    try:
        doc = update(fleet, rel["v1"], "--timeout", "5", check=1)
    finally:
        fleet.proxy.dead = False
    assert fleet.proxy.cuts[-1:] == ["answer-then-dead"] and len(fleet.proxy.uploads) == n + 1
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


# ---- planned (delta) pushes: the same request id settles a lost delta upload

@pytest.fixture(scope="module")
def drel(rel, tmp_path_factory):
    """D1, D2: 1.0.0 and 2.0.0 with a shared 1 MiB incompressible library, so a push of
    one to a host that has the other goes as a delta."""
    out = tmp_path_factory.mktemp("delta-rels")
    big = b"".join(hashlib.sha256(b"lost%d" % i).digest() for i in range(1 << 15))
    return {n: repack(rel[v], out / n, str(out / (n + ".tar.gz")), big, "note of %s\n" % n)[0]
            for n, v in (("d1", "v1"), ("d2", "v2"))}


def slot_sha(fleet, slot):
    with open(os.path.join(fleet.install_dir("h1"), "releases", slot, "release.json")) as f:
        return json.load(f)["sha256"]


def assembled(fleet):
    return (fleet.procs["h1"].stdout() + fleet.procs["h1"].stderr()).count(
        ": assembled from a delta of")


def planned(fleet, release, *extra, check=0):
    return fleet.json("swarm", "update", "--hosts", "h1", "--release", release, *extra,
                      check=check)


def tamper_library(fleet):
    """The shared library changes under the host's releases: a delta cannot use it."""
    for slot in ("active", "prev"):
        p = os.path.join(fleet.install_dir("h1"), "releases", slot, "lib", "libbig.so.1")
        if os.path.exists(p):
            os.chmod(p, 0o644)
            with open(p, "r+b") as f:
                f.write(b"X")


def test_delta_answer_lost_installed_once(fleet, drel):
    """The updater assembled and installed the delta; its answer was lost. The master
    finds the result under the request id: updated, one install, one rotation."""
    update(fleet, drel["d1"])
    assert slot_sha(fleet, "active") == sha256_file(drel["d1"])
    n, a = len(fleet.proxy.uploads), assembled(fleet)
    fleet.proxy.arm("answer", "delta")
    doc = planned(fleet, drel["d2"])
    ups = fleet.proxy.uploads[n:]
    assert fleet.proxy.cuts[-1:] == ["answer"] and [u["kind"] for u in ups] == ["delta"], ups
    h = hosts_by_name(doc)["h1"]
    assert doc["ok"] is True and h["agent"]["result"] == "updated", doc
    assert "connection broke" in h["agent"]["detail"], h
    # Not the shared library: the delta is the release but 1 MiB, give or take files.json.
    assert h["transfer"] == "planned", h
    assert h["bytes_sent"] < os.path.getsize(drel["d2"]) - (1 << 20) + (16 << 10), h
    row = row_of(fleet, doc)
    assert row["state"] == "updated" and row["attempts"] == 1, row
    assert row["transfer"] == "planned", row
    assert ups[0]["request_id"] == row["request_id"]
    assert [h["result"] for h in history_of(fleet, row["request_id"])] == ["updated"]
    assert assembled(fleet) == a + 1
    # One rotation: the rollback point is the release before, not the new one twice.
    assert slot_sha(fleet, "active") == sha256_file(drel["d2"])
    assert slot_sha(fleet, "prev") == sha256_file(drel["d1"])


def test_delta_upload_cut_sent_again_with_the_same_id(fleet, drel):
    """Half a delta: the updater never took it; the master sends it again, same id."""
    assert slot_sha(fleet, "active") == sha256_file(drel["d2"])
    n, a = len(fleet.proxy.uploads), assembled(fleet)
    fleet.proxy.arm("upload", "delta")
    doc = planned(fleet, drel["d1"])
    ups = fleet.proxy.uploads[n:]
    assert fleet.proxy.cuts[-1:] == ["upload"] and [u["kind"] for u in ups] == ["delta"] * 2
    assert doc["ok"] is True and hosts_by_name(doc)["h1"]["agent"]["result"] == "updated", doc
    row = row_of(fleet, doc)
    assert row["attempts"] == 1 and row["transfer"] == "planned", row
    assert {u["request_id"] for u in ups} == {row["request_id"]}
    assert [h["result"] for h in history_of(fleet, row["request_id"])] == ["updated"]
    assert assembled(fleet) == a + 1
    assert slot_sha(fleet, "active") == sha256_file(drel["d1"])
    assert slot_sha(fleet, "prev") == sha256_file(drel["d2"])


def test_refused_delta_answer_lost_still_falls_back(fleet, drel):
    """The host refused the delta (409 delta_mismatch: its copy of the library changed)
    and that answer was lost: the updater's record says so, and the master sends the
    full release under the same id, as it does when it hears the 409."""
    tamper_library(fleet)
    n = len(fleet.proxy.uploads)
    fleet.proxy.arm("answer", "delta")
    doc = planned(fleet, drel["d2"])
    ups = fleet.proxy.uploads[n:]
    assert fleet.proxy.cuts[-1:] == ["answer"], fleet.proxy.cuts
    assert [u["kind"] for u in ups] == ["delta", "full"], ups
    h = hosts_by_name(doc)["h1"]
    assert doc["ok"] is True and h["agent"]["result"] == "updated", doc
    assert h["transfer"] == "fallback", h
    row = row_of(fleet, doc)
    assert {u["request_id"] for u in ups} == {row["request_id"]}
    assert [(e["result"], e["error_kind"]) for e in history_of(fleet, row["request_id"])] == \
        [("refused", "delta_mismatch"), ("updated", None)]
    assert slot_sha(fleet, "active") == sha256_file(drel["d2"])


def test_fallback_upload_cut_sent_again(fleet, drel):
    """The delta is refused, and the full push that follows is cut before the updater took
    it: the refusal under the same id is not that push's outcome; it is sent again."""
    tamper_library(fleet)
    n = len(fleet.proxy.uploads)
    fleet.proxy.arm("upload", "full")
    doc = planned(fleet, drel["d1"])
    ups = fleet.proxy.uploads[n:]
    assert fleet.proxy.cuts[-1:] == ["upload"], fleet.proxy.cuts
    assert [u["kind"] for u in ups] == ["delta", "full", "full"], ups
    h = hosts_by_name(doc)["h1"]
    assert doc["ok"] is True and h["agent"]["result"] == "updated", doc
    assert h["transfer"] == "fallback", h
    row = row_of(fleet, doc)
    assert row["attempts"] == 1 and {u["request_id"] for u in ups} == {row["request_id"]}
    assert [(e["result"], e["error_kind"]) for e in history_of(fleet, row["request_id"])] == \
        [("refused", "delta_mismatch"), ("updated", None)]
    assert slot_sha(fleet, "active") == sha256_file(drel["d1"])


def test_master_killed_during_fallback_resume_sends_again(fleet, drel):
    """The master dies after the host refused the delta and before the full release reached
    it. `rollout resume` finds only that refusal under the request id: nothing was
    installed, so it sends the release again (planned, refused again, then whole)."""
    assert slot_sha(fleet, "active") == sha256_file(drel["d1"])
    tamper_library(fleet)
    n = len(fleet.proxy.uploads)
    fleet.proxy.arm("swallow", "full")
    p = subprocess.Popen([bin_path("tandem"), "--home", fleet.home, "swarm", "update", "--hosts",
                          "h1", "--release", drel["d2"], "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: [u["kind"] for u in fleet.proxy.uploads[n:]] == ["delta", "full"],
                   60, "the full push after the refused delta")
    finally:
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=30)
    assert fleet.proxy.cuts[-1:] == ["swallow"]
    rid = fleet.json("swarm", "rollout", "list")["rollouts"][0]["id"]
    row = fleet.json("swarm", "rollout", "status", rid)["host_rows"][0]
    assert row["state"] == "dispatched", row
    assert [(e["result"], e["error_kind"]) for e in history_of(fleet, row["request_id"])] == \
        [("refused", "delta_mismatch")]
    doc = fleet.json("swarm", "rollout", "resume", rid)
    assert doc["ok"] is True, doc
    assert [u["kind"] for u in fleet.proxy.uploads[n:]] == ["delta", "full", "delta", "full"]
    assert {u["request_id"] for u in fleet.proxy.uploads[n:]} == {row["request_id"]}
    row = fleet.json("swarm", "rollout", "status", rid)["host_rows"][0]
    assert row["state"] == "updated" and row["transfer"] == "fallback", row
    assert [(e["result"], e["error_kind"]) for e in history_of(fleet, row["request_id"])] == \
        [("refused", "delta_mismatch"), ("refused", "delta_mismatch"), ("updated", None)]
    assert slot_sha(fleet, "active") == sha256_file(drel["d2"])
