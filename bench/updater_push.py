#!/usr/bin/python3
"""Updater benchmarks (not tests): push-to-healthy time of a small release,
push+install time of a ~200 MB release against `tar -xzf` of the same tarball
on the same disk (the floor), and the updater's RSS idle and at peak during
that push. Results go to wiki/Performance.md ("Updater").

    BUILD=/abs/build bench/updater_push.sh      (make bench sets BUILD)
    RUNS=5 BIG_MB=200 bench/updater_push.sh
"""

import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from conftest import OpensslPKI, free_port  # noqa: E402

BUILD = os.environ.get("BUILD") or os.path.join(ROOT, "build")
RUNS = int(os.environ.get("RUNS", "5"))
BIG_MB = int(os.environ.get("BIG_MB", "200"))


def sh(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit("%s failed:\n%s\n%s" % (" ".join(argv), r.stdout, r.stderr))
    return r


def make_release(version, out):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    sh(["make", "-s", "-j2", "-C", ROOT, "BUILD=" + BUILD, "VERSION=" + version,
        "RELEASE_OUT=" + out, "release"], env=env)
    return out


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


class Updater:
    def __init__(self, work, pki, name):
        self.work = os.path.join(work, name)
        os.makedirs(self.work)
        self.pki = pki
        agent_port = free_port()
        agent_conf = os.path.join(self.work, "agent.conf")
        with open(agent_conf, "w") as f:
            f.write("ca = %s\ncert = %s\nkey = %s\nlisten = 127.0.0.1:%d\nlog_level = warn\n"
                    % (pki.ca_crt, pki.agent[0], pki.agent[1], agent_port))
        conf = os.path.join(self.work, "updater.conf")
        with open(conf, "w") as f:
            f.write("listen = 127.0.0.1:0\ninstall_dir = %s\nca = %s\ncert = %s\nkey = %s\n"
                    "agent_config = %s\nagent_probe = 127.0.0.1:%d\nstop_agent_on_exit = true\n"
                    "max_upload = 1G\nmax_unpacked = 2G\nprobe_stable = 1s\nlog_level = warn\n"
                    % (os.path.join(self.work, "install"), pki.ca_crt, pki.updater[0],
                       pki.updater[1], agent_conf, agent_port))
        self.out = open(os.path.join(self.work, "out"), "w+")
        self.p = subprocess.Popen([os.path.join(BUILD, "tandem-updater"), "--config", conf],
                                  stdout=self.out, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            self.out.seek(0)
            m = re.search(r"LISTENING port=(\d+)", self.out.read())
            if m:
                self.port = int(m.group(1))
                break
            if time.monotonic() > deadline or self.p.poll() is not None:
                sys.exit("updater did not start")
            time.sleep(0.02)

    def push(self, tarball):
        t0 = time.monotonic()
        r = sh(["curl", "-sS", "--max-time", "600", "--cacert", self.pki.ca_crt, "--cert",
                self.pki.master[0], "--key", self.pki.master[1],
                "-F", "sha256=" + sha256_file(tarball), "-F", "tarball=@" + tarball,
                "https://127.0.0.1:%d/update" % self.port])
        elapsed = time.monotonic() - t0
        body = json.loads(r.stdout)
        if body.get("status") != "updated":
            sys.exit("push failed: %s" % r.stdout)
        return elapsed

    def last_timings(self):
        r = sh(["curl", "-sS", "--cacert", self.pki.ca_crt, "--cert", self.pki.master[0],
                "--key", self.pki.master[1], "https://127.0.0.1:%d/history" % self.port])
        return json.loads(r.stdout)["history"][-1]["timings"]

    def stop(self):
        self.p.terminate()
        self.p.wait(timeout=30)


def main():
    work = tempfile.mkdtemp(prefix="tandem-bench-updater.", dir=os.environ.get("TMPDIR", "/tmp"))
    try:
        pki = OpensslPKI(os.path.join(work, "pki"))
        pki.master = pki.issue("master", "tandem-master", ou="master", eku=("clientAuth",))
        pki.agent = pki.issue("host1", "host1", ou="agent")
        pki.updater = pki.issue("updater-host1", "updater@host1", ou="updater")
        small = [make_release("bench-%d" % i, os.path.join(work, "small-%d.tar.gz" % i))
                 for i in (1, 2)]

        # Idle RSS, then push-to-healthy of a small release.
        u = Updater(work, pki, "small")
        time.sleep(0.5)  # let the idle process settle before reading its RSS (bench only)
        idle_rss = status_kb(u.p.pid, "VmRSS")
        idle_anon = status_kb(u.p.pid, "RssAnon")
        idle_file = status_kb(u.p.pid, "RssFile")
        times, parts = [], []
        for i in range(RUNS):
            times.append(u.push(small[i % 2]))
            parts.append(u.last_timings())
        idle_after = status_kb(u.p.pid, "VmRSS")
        u.stop()

        # A big release: the small one plus real binaries from /usr/lib up to BIG_MB.
        tree = os.path.join(work, "bigtree")
        os.makedirs(tree)
        sh(["tar", "-xzf", small[0], "-C", tree])
        payload = os.path.join(tree, "payload")
        os.makedirs(payload)
        total = 0
        for dp, _, files in os.walk("/usr/lib/x86_64-linux-gnu"):
            for fn in sorted(files):
                src = os.path.join(dp, fn)
                if os.path.islink(src) or not os.path.isfile(src):
                    continue
                dst = os.path.join(payload, "%06d-%s" % (total % 999999, fn))
                shutil.copyfile(src, dst)
                total += os.path.getsize(src)
                if total >= BIG_MB << 20:
                    break
            if total >= BIG_MB << 20:
                break
        big = os.path.join(work, "big.tar.gz")
        sh(["tar", "-C", tree, "-czf", big, "."])
        shutil.rmtree(tree)
        big_size = os.path.getsize(big)

        floor = []
        for i in range(3):
            d = os.path.join(work, "floor-%d" % i)
            os.makedirs(d)
            t0 = time.monotonic()
            sh(["tar", "-xzf", big, "-C", d])
            floor.append(time.monotonic() - t0)
            shutil.rmtree(d)

        push_total, push_recv, hwm = [], [], []
        for i in range(3):
            u = Updater(work, pki, "big-%d" % i)
            push_total.append(u.push(big))
            t = u.last_timings()
            push_recv.append(t["upload_ms"] / 1000.0)
            hwm.append(status_kb(u.p.pid, "VmHWM"))
            u.stop()

        med = statistics.median
        print("small release push-to-healthy (probe_stable=1s): median %.2f s of %s"
              % (med(times), ["%.2f" % t for t in times]))
        for k in ("upload_ms", "preflight_ms", "switch_ms", "probe_ms", "total_ms"):
            print("  %-13s median %d ms" % (k, med([p[k] for p in parts])))
        print("updater idle RSS: %d kB at start (RssAnon %d kB, RssFile %d kB: shared libraries),"
              " %d kB after %d pushes" % (idle_rss, idle_anon, idle_file, idle_after, RUNS))
        print("big release: %d MiB unpacked, tarball %.1f MiB" % (total >> 20, big_size / 2**20))
        print("  tar -xzf (floor): median %.2f s of %s" % (med(floor),
                                                          ["%.2f" % t for t in floor]))
        print("  updater receive+hash+extract: median %.2f s of %s (%.2fx the floor)"
              % (med(push_recv), ["%.2f" % t for t in push_recv], med(push_recv) / med(floor)))
        print("  whole push to healthy: median %.2f s of %s" % (med(push_total),
                                                              ["%.2f" % t for t in push_total]))
        print("  updater peak RSS (VmHWM) during the push: median %d kB, max %d kB"
              % (med(hwm), max(hwm)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
