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


def curl(pki, who, url, *extra, check=True):
    """curl over mutual TLS with client cert WHO=(crt, key) (None: none);
    returns (status, headers, body text). A failed transfer (refused, cut)
    fails the test, or returns None when CHECK is false."""
    argv = ["curl", "-sS", "--max-time", "60", "--cacert", pki.ca_crt, "-o", "-", "-D", "-"]
    if who is not None:
        argv += ["--cert", who[0], "--key", who[1]]
    argv += list(extra) + [url]
    r = subprocess.run(argv, capture_output=True, timeout=90)
    if r.returncode != 0:
        assert not check, r.stderr.decode(errors="replace")
        return None
    out = r.stdout.decode(errors="replace")
    # Skip interim responses (100 Continue).
    while out.startswith("HTTP/1.1 1"):
        out = out.partition("\r\n\r\n")[2]
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


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
