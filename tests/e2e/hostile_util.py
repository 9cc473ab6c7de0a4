"""Attack tools for tests/e2e/test_hostile*.py: connection floods that need no
certificate, and pollers with a certificate. Each runs in a thread, is bounded
(a fixed number of sockets, stop() ends it) and only uses loopback addresses."""

import selectors
import socket
import ssl
import threading
import time


class SilentFlood:
    """Hold COUNT TCP connections to PORT from each source address in SOURCES
    (127.0.0.x) without sending a byte (or sending HELLO once), and open new
    ones whenever the server closes some or the port comes back after a
    restart: an attacker that keeps every slot it can get. New connections are
    paced to RATE per second: the test is about slots, not about how much CPU
    an endless connect loop can burn (an ASan build under it would only
    measure that)."""

    def __init__(self, port, sources=("127.0.0.1",), count=16, hello=b"", rate=100):
        self.port = port
        self.rate = rate
        self._budget = float(count * len(sources))
        self._last = time.monotonic()
        self.count = count
        self.hello = hello
        self.opened = 0
        self.closed_by_server = 0
        self.live = {src: 0 for src in sources}
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._top_up()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self, src):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2,
                                         source_address=(src, 0))
        except OSError:
            return False
        if self.hello:
            try:
                s.sendall(self.hello)
            except OSError:
                s.close()
                return False
        s.setblocking(False)
        self._sel.register(s, selectors.EVENT_READ, src)
        with self._lock:
            self.opened += 1
            self.live[src] += 1
        return True

    def _top_up(self):
        now = time.monotonic()
        self._budget = min(self._budget + (now - self._last) * self.rate,
                           float(self.count * len(self.live)))
        self._last = now
        for src in self.live:
            while self.live[src] < self.count and not self._stop.is_set() \
                    and self._budget >= 1:
                if not self._open(src):
                    break
                self._budget -= 1

    def _run(self):
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.05):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    continue
                self._sel.unregister(s)
                s.close()
                with self._lock:
                    self.closed_by_server += 1
                    self.live[key.data] -= 1
            self._top_up()

    def held(self):
        with self._lock:
            return sum(self.live.values())

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        for key in list(self._sel.get_map().values()):
            key.fileobj.close()
        self._sel.close()


class Pollers:
    """COUNT clients with certificate WHO asking GET PATH over and over on
    fresh connections: ordinary monitoring load."""

    def __init__(self, ca, port, who, count=50, path="/health"):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.load_verify_locations(ca)
        self.ctx.check_hostname = False
        self.ctx.load_cert_chain(who[0], who[1])
        self.port = port
        self.req = ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode()
        self.answers = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(count)]
        for t in self._threads:
            t.start()

    def _run(self):
        while not self._stop.is_set():
            status = "error"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    with self.ctx.wrap_socket(s) as t:
                        t.sendall(self.req)
                        head = t.recv(64)
                        status = head.split(b" ")[1].decode() if head else "closed"
            except (OSError, ssl.SSLError, IndexError):
                pass
            with self._lock:
                self.answers[status] = self.answers.get(status, 0) + 1

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
