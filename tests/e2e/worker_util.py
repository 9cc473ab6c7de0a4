"""One worker (an updater and its agent) for end-to-end tests: its
configuration files (the agent on a free loopback port, the updater with the
`pki` fixture's updater certificate and test-sized limits and timings), the
one curl helper, and the Worker class the updater and self-update tests
build their hosts on."""

import http.client
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.parse

from conftest import free_port, wait_until
from release_util import sha256_file

TEST_UPDATER_KEYS = {
    "stop_agent_on_exit": "true",
    "probe_deadline": "8s",
    "probe_stable": "300ms",
    "stop_grace": "2s",
    "max_upload": "8M",
    "max_unpacked": "32M",
    "max_entries": "200",
    "min_free": "1M",
    "log_level": "debug",
}


def write_conf(path, keys, comment=None):
    """The one writer of our config files: "key = value" lines of KEYS (a
    dict, in its order), after "# COMMENT" when given. Returns PATH as str."""
    lines = (["# " + comment] if comment else []) + ["%s = %s" % kv for kv in keys.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


def write_worker_configs(tmp_path, pki, install_root, extra=None):
    """Write TMP_PATH/agent.conf and TMP_PATH/updater.conf (keys of EXTRA
    override the defaults); returns (agent_port, agent_conf, updater_conf)."""
    agent_port = free_port()
    agent_conf = write_conf(tmp_path / "agent.conf", {
        "ca": pki.ca_crt, "cert": pki.agent[0], "key": pki.agent[1],
        "listen": "127.0.0.1:%d" % agent_port})
    keys = {
        "listen": "127.0.0.1:0",
        "install_dir": install_root,
        "ca": pki.ca_crt,
        "cert": pki.updater[0],
        "key": pki.updater[1],
        "agent_config": agent_conf,
        "agent_probe": "127.0.0.1:%d" % agent_port,
    }
    keys.update(TEST_UPDATER_KEYS)
    keys.update(extra or {})
    conf = write_conf(tmp_path / "updater.conf", keys)
    return agent_port, agent_conf, conf


class CurlResult:
    """What one curl run gave: RC its exit code, STATUS the final HTTP status
    (None when no response came), HEADERS (lower-case names), BODY and STDERR
    as text."""

    def __init__(self, rc, status, headers, body, stderr):
        self.rc, self.status, self.headers = rc, status, headers
        self.body, self.stderr = body, stderr

    def json(self):
        return json.loads(self.body) if self.body.strip() else None


# curl's exit codes where a test reads them (curl(1) "EXIT CODES").
CURL_REFUSED, CURL_SEND, CURL_RECV, CURL_EMPTY, CURL_TIMEOUT = 7, 55, 56, 52, 28
CURL_TLS, CURL_VERIFY = 35, 60
# As curl, "Expect: 100-continue" before a body over 1 MB.
EXPECT_OVER = 1024 * 1024


class _CurlFailed(Exception):
    def __init__(self, rc, msg):
        super().__init__(msg)
        self.rc, self.status = rc, None


def _curl_args(extra, method, input):
    """EXTRA (curl's -F, -H, -X, --data-binary, --max-time, --resolve) as
    (method, [(name, value)], body bytes or None, max_time or None, resolve or
    None); ValueError for any other argument (those need real_curl=True)."""
    form, headers, data = [], [], None
    max_time = resolve = None
    args = list(extra)
    while args:
        a = args.pop(0)
        if a in ("-F", "--form", "-H", "--header", "-X", "--request", "--data-binary",
                 "--max-time", "--resolve") and not args:
            raise ValueError("curl_run: %s needs a value" % a)
        if a in ("-F", "--form"):
            form.append(args.pop(0))
        elif a in ("-H", "--header"):
            headers.append(args.pop(0))
        elif a in ("-X", "--request"):
            method = args.pop(0)
        elif a == "--data-binary":
            v = args.pop(0)
            if v == "@-":
                v = input if input is not None else b""
            elif v.startswith("@"):
                with open(v[1:], "rb") as f:
                    v = f.read()
            else:
                v = v.encode()
            data = (data + b"&" + v) if data is not None else v
        elif a == "--max-time":
            max_time = float(args.pop(0))
        elif a == "--resolve":
            resolve = args.pop(0)
        else:
            raise ValueError("curl_run: %r is not known to the in-process client "
                             "(pass real_curl=True)" % a)
    if form and data is not None:
        raise ValueError("curl_run: -F and --data-binary together")
    hdrs = []
    if form:
        boundary = "------------------------" + os.urandom(11).hex()
        data = _multipart(form, boundary)
        hdrs.append(("Content-Type", "multipart/form-data; boundary=" + boundary))
    elif data is not None:
        hdrs.append(("Content-Type", "application/x-www-form-urlencoded"))
    for h in headers:
        name, sep, value = h.partition(":")
        if not sep:
            raise ValueError("curl_run: header %r without a colon" % h)
        hdrs = [(k, v) for k, v in hdrs if k.lower() != name.strip().lower()]
        if value.strip():  # "Name:" removes a header, as with curl
            hdrs.append((name.strip(), value.strip()))
    if method is None:
        method = "POST" if data is not None else "GET"
    return method, hdrs, data, max_time, resolve


def _multipart(fields, boundary):
    """curl -F FIELDS as one multipart/form-data body: name=value, name=<file
    (the file's content as the value), name=@file[;type=T] (a file part named
    after the file, application/octet-stream unless T)."""
    out = []
    for f in fields:
        name, sep, value = f.partition("=")
        if not sep:
            raise ValueError("curl_run: -F %r without '='" % f)
        disp = 'form-data; name="%s"' % name
        ctype = None
        if value[:1] in ("@", "<"):
            path, *opts = value[1:].split(";")
            ctype = "application/octet-stream" if value[0] == "@" else None
            for o in opts:
                k, _, v = o.partition("=")
                if k == "type":
                    ctype = v
                else:
                    raise ValueError("curl_run: -F option %r not known" % o)
            with open(path, "rb") as fh:
                content = fh.read()
            if value[0] == "@":
                disp += '; filename="%s"' % os.path.basename(path)
        else:
            content = value.encode()
        part = "--%s\r\nContent-Disposition: %s\r\n" % (boundary, disp)
        if ctype:
            part += "Content-Type: %s\r\n" % ctype
        out += [part.encode(), b"\r\n", content, b"\r\n"]
    out.append(("--%s--\r\n" % boundary).encode())
    return b"".join(out)


class _Reader:
    """What http.client.HTTPResponse reads from: the one buffered reader of
    the connection (so bytes looked at for "100 Continue" are not lost)."""

    def __init__(self, f):
        self.f = f

    def makefile(self, mode):
        return self.f


def _https(url, cacert, who, method, hdrs, data, max_time, resolve):
    """One HTTPS request as curl makes it; (status, headers, body bytes), or
    _CurlFailed(rc, message) with the status that came before the failure
    in .status."""
    deadline = time.monotonic() + max_time

    def left():
        t = deadline - time.monotonic()
        if t <= 0:
            raise _CurlFailed(CURL_TIMEOUT, "Operation timed out after %d milliseconds"
                              % int(max_time * 1000))
        return t

    u = urllib.parse.urlsplit(url)
    if u.scheme != "https" or not u.hostname:
        raise ValueError("curl_run: %r is no https URL" % url)
    host, port = u.hostname, u.port or 443
    addr = host
    if resolve is not None:
        rname, rport, raddr = resolve.split(":", 2)
        if rname == host and int(rport) == port:
            addr = raddr.strip("[]")
    ctx = ssl.create_default_context(cafile=cacert)
    if who is not None:
        ctx.load_cert_chain(who[0], who[1])
    target = (u.path or "/") + ("?" + u.query if u.query else "")
    req = ["%s %s HTTP/1.1" % (method, target),
           "Host: %s" % (u.netloc.rpartition("@")[2]),
           "User-Agent: curl/tandem-e2e", "Accept: */*"]
    names = {k.lower() for k, _ in hdrs}
    if data is not None:
        req.append("Content-Length: %d" % len(data))
    expect = data is not None and len(data) > EXPECT_OVER and "expect" not in names
    if expect:
        req.append("Expect: 100-continue")
    req += ["%s: %s" % kv for kv in hdrs]
    head = ("\r\n".join(req) + "\r\n\r\n").encode()
    try:
        raw = socket.create_connection((addr, port), timeout=left())
    except ConnectionRefusedError as e:
        raise _CurlFailed(CURL_REFUSED, "Failed to connect to %s port %d: %s"
                          % (host, port, e.strerror))
    except socket.timeout:
        raise _CurlFailed(CURL_TIMEOUT, "Connection timed out to %s port %d" % (host, port))
    except OSError as e:
        raise _CurlFailed(CURL_REFUSED, "Failed to connect to %s port %d: %s" % (host, port, e))
    status = None
    try:
        with raw:
            try:
                raw.settimeout(left())
                s = ctx.wrap_socket(raw, server_hostname=host)
            except ssl.SSLCertVerificationError as e:
                raise _CurlFailed(CURL_VERIFY, "SSL certificate problem: %s" % e.verify_message)
            except (ssl.SSLError, ConnectionError) as e:
                raise _CurlFailed(CURL_TLS, "TLS handshake with %s failed: %s" % (host, e))
            with s:
                f = s.makefile("rb")
                try:
                    s.settimeout(left())
                    s.sendall(head if data is None or expect else head + data)
                except OSError as e:
                    raise _CurlFailed(CURL_SEND, "Failed sending data to the peer: %s" % e)
                if expect:
                    # The body after "100 Continue"; not at all when a final answer comes
                    # first (the server answers an Expect on the headers).
                    try:
                        s.settimeout(left())
                        first = f.peek(12)[:12]
                    except socket.timeout:
                        raise
                    except OSError as e:
                        raise _CurlFailed(CURL_RECV, "Failure when receiving data from the "
                                          "peer: %s" % e)
                    if first.startswith(b"HTTP/1.1 100"):
                        while f.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        try:
                            s.settimeout(left())
                            s.sendall(data)
                        except OSError as e:
                            raise _CurlFailed(CURL_SEND, "Failed sending data to the peer: %s"
                                              % e)
                s.settimeout(left())
                r = http.client.HTTPResponse(_Reader(f), method=method)
                try:
                    r.begin()
                except http.client.RemoteDisconnected:
                    raise _CurlFailed(CURL_EMPTY, "Empty reply from server")
                status = r.status
                headers = {k.lower(): v.strip() for k, v in r.getheaders()}
                body = r.read()
                return status, headers, body
    except _CurlFailed as e:
        e.status = status
        raise
    except socket.timeout:
        e = _CurlFailed(CURL_TIMEOUT, "Operation timed out after %d milliseconds"
                        % int(max_time * 1000))
    except (OSError, http.client.HTTPException) as x:
        e = _CurlFailed(CURL_RECV, "Failure when receiving data from the peer: %r" % x)
    e.status = status
    raise e


def curl_run(url, cacert, who=None, *extra, method=None, resolve=None, max_time=60,
             input=None, real_curl=False):
    """The one HTTPS client of the e2e tests: URL verified against CACERT,
    presenting WHO=(crt, key) (None: no client certificate), EXTRA curl
    arguments, METHOD (HEAD: headers only), RESOLVE "name:port:addr", INPUT
    bytes or text (for "--data-binary @-"). Never fails the test itself: a
    refused or cut transfer is RC != 0 (curl's exit codes: 7 refused, 28
    timed out, 35 TLS handshake, 52 empty reply, 55/56 send/receive failure,
    60 server not verified), with STATUS whatever answer came before it.

    In this process (Python's ssl, OpenSSL as in curl) for the arguments
    curl_args knows (-F, -H, -X, --data-binary, --max-time, --resolve): a
    curl process costs ~36 ms of CPU that tests nothing. Any other argument
    is a ValueError; REAL_CURL runs the curl binary, for tests where curl
    itself is the point."""
    if isinstance(input, str):
        input = input.encode()
    if real_curl:
        return _curl_process(url, cacert, who, extra, method, resolve, max_time, input)
    method, hdrs, data, mt, res = _curl_args(extra, method, input)
    if mt is not None:
        max_time = mt
    if res is not None:
        resolve = res
    try:
        status, headers, body = _https(url, cacert, who, method, hdrs, data, max_time, resolve)
    except _CurlFailed as e:
        return CurlResult(e.rc, e.status, {}, "", "curl_run: (%d) %s\n" % (e.rc, e))
    return CurlResult(0, status, headers, body.decode(errors="replace"), "")


def _curl_process(url, cacert, who, extra, method, resolve, max_time, input):
    """curl_run with the curl binary."""
    argv = ["curl", "-sS", "--max-time", str(max_time), "--cacert", cacert, "-o", "-",
            "-w", "\n@@CODE=%{http_code}"]
    if method == "HEAD":
        argv += ["-I"]  # the headers once, on stdout
    else:
        argv += ["-D", "-"]
        if method is not None:
            argv += ["-X", method]
    if who is not None:
        argv += ["--cert", who[0], "--key", who[1]]
    if resolve is not None:
        argv += ["--resolve", resolve]
    r = subprocess.run(argv + list(extra) + [url], capture_output=True, input=input,
                       timeout=max_time + 30)
    out = r.stdout.decode(errors="replace")
    out, _, code = out.rpartition("\n@@CODE=")
    status = int(code) if code.isdigit() and int(code) != 0 else None
    # Skip interim responses (100 Continue).
    while out.startswith("HTTP/1.1 1"):
        out = out.partition("\r\n\r\n")[2]
    head, _, body = out.partition("\r\n\r\n") if out.startswith("HTTP/") else ("", "", out)
    headers = {}
    for ln in head.split("\r\n")[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return CurlResult(r.returncode, status, headers, body, r.stderr.decode(errors="replace"))


def curl(pki, who, url, *extra, check=True):
    """curl over mutual TLS with client cert WHO=(crt, key) (None: none);
    returns (status, headers, body text). A failed transfer (refused, cut)
    fails the test, or returns None when CHECK is false."""
    r = curl_run(url, pki.ca_crt, who, *extra)
    if r.rc != 0:
        assert not check, r.stderr
        return None
    return r.status, r.headers, r.body


class Worker:
    """One worker's files and what the master asks its updater: an install
    dir, the agent's and the updater's configuration (write_worker_configs,
    CFG overriding keys). A subclass starts the updater (directly, or under
    tandem-launcher) and sets self.port."""

    def __init__(self, procs, tmp_path, pki, cfg=None):
        self.pki = pki
        self.tmp = tmp_path
        self.procs = procs
        self.root = str(tmp_path / "install")
        self.port = None
        self.agent_port, self.agent_conf, self.conf = write_worker_configs(
            tmp_path, pki, self.root, cfg)

    def url(self, path):
        return "https://127.0.0.1:%d%s" % (self.port, path)

    def get(self, path, who=None):
        st, _, body = curl(self.pki, who or self.pki.master, self.url(path))
        return st, json.loads(body)

    def health(self):
        st, h = self.get("/health")
        assert st == 200
        return h

    def history(self):
        st, h = self.get("/history")
        assert st == 200
        return h["history"]

    def push(self, tarball, sha256=None, label="label", who=None, fields=None):
        """POST /update with TARBALL (FIELDS: the curl -F arguments instead)."""
        if fields is not None:
            args = fields
        else:
            args = ["-F", "sha=%s" % label]
            if sha256 is not False:
                args += ["-F", "sha256=%s" % (sha256 or sha256_file(tarball))]
            args += ["-F", "tarball=@%s;type=application/gzip" % tarball]
        st, headers, body = curl(self.pki, who or self.pki.master, self.url("/update"), *args)
        return st, headers, json.loads(body)

    def rollback(self):
        st, _, body = curl(self.pki, self.pki.master, self.url("/rollback"), "-X", "POST")
        return st, json.loads(body)

    def agent_health(self):
        st, _, body = curl(self.pki, self.pki.updater,
                           "https://127.0.0.1:%d/health" % self.agent_port)
        assert st == 200, body
        return json.loads(body)

    def wait_agent(self, version, timeout=20):
        """Until the agent answers /health with VERSION (it may still be starting)."""
        def ok():
            r = curl(self.pki, self.pki.updater, "https://127.0.0.1:%d/health" % self.agent_port,
                     "--max-time", "5", check=False)
            return r is not None and r[0] == 200 and json.loads(r[2]).get("version") == version
        wait_until(ok, timeout, "the agent to serve %s" % version)

    def slots(self, tree=None):
        """{"active": id, "prev": id} of the agent's releases (TREE: another tree's)."""
        out = {}
        for slot in ("active", "prev"):
            p = os.path.join(tree or self.root, "releases", slot, "release.json")
            if os.path.exists(p):
                with open(p) as f:
                    out[slot] = json.load(f)["id"]
        return out
