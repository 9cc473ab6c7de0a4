"""One worker (an updater and its agent) for end-to-end tests: its
configuration files (the agent on a free loopback port, the updater with the
`pki` fixture's updater certificate and test-sized limits and timings), the
one curl helper, and the Worker class the updater and self-update tests
build their hosts on."""

import json
import os
import subprocess

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


def curl_run(url, cacert, who=None, *extra, method=None, resolve=None, max_time=60,
             input=None):
    """The one curl of the e2e tests: URL verified against CACERT, presenting
    WHO=(crt, key) (None: no client certificate), EXTRA curl arguments, METHOD
    (HEAD: headers only), RESOLVE "name:port:addr", INPUT bytes or text on
    stdin (for "--data-binary @-"). Never fails the test itself: a refused or
    cut transfer is RC != 0, with STATUS whatever answer came before it."""
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
    if isinstance(input, str):
        input = input.encode()
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
