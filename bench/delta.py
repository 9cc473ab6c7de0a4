#!/usr/bin/python3
"""Planned (delta) push benchmark (not a test): a ~200 MB release of real ELF
binaries pushed by the master's CLI to two real updater + agent pairs, one
with `tandem swarm update --full` and one planned (`tandem swarm update`:
POST /update/plan, then only the files the host lacks), side by side in
every round, for a version with ~7 changed files (~1.5 % of the bytes) and a
version where every file changed. Prints the medians of the bytes the CLI
reports sent (`--json` `bytes_sent`, checked against what the updater logs
it received) and of the command's wall time, and their ratios (each round also
prints the master's CPU: the CLI's user + system time), on loopback,
then on a rate-limited link (a network namespace of its own whose loopback
goes through a tbf qdisc) where the wire costs what it costs on a LAN.
Results go to wiki/Performance.md ("Planned pushes").

    BUILD=/abs/build bench/delta.sh        (make bench-delta sets BUILD)
    RUNS=3 BIG_MB=200 CHANGED=7 STATUS_HOSTS=4 PARTS=push,status LINKS=loopback,shaped \
        RATE=100mbit bench/delta.sh

The shaped link needs root (ip netns, tc); bench/delta.sh names the
namespace (NETNS) and deletes it on exit whatever happens.

It also prints the master's CPU per host of `tandem swarm status --all`.
"""

import ctypes
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD") or os.path.join(ROOT, "build")
os.environ.setdefault("TANDEM_BUILD", BUILD)
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from swarm_util import Fleet  # noqa: E402
from updater_push import make_release, sh  # noqa: E402

RUNS = int(os.environ.get("RUNS", "3"))
BIG_MB = int(os.environ.get("BIG_MB", "200"))
CHANGED = int(os.environ.get("CHANGED", "7"))
STATUS_HOSTS = int(os.environ.get("STATUS_HOSTS", "4"))
PARTS = os.environ.get("PARTS", "push,status").split(",")
LINKS = os.environ.get("LINKS", "loopback,shaped").split(",")
RATE = os.environ.get("RATE", "100mbit")
NETNS = os.environ.get("NETNS", "tandem-bench-delta-%d" % os.getpid())
FILE_MAX = 8 << 20
# What the shipped updater allows is 512M / 2G; the probe window as in the other benches.
KEYS = {"probe_stable": "1s", "probe_deadline": "30s", "log_level": "info", "min_free": "64M"}
CLONE_NEWNET = 0x40000000


def is_elf(path):
    """An ELF file the packer accepts (it refuses PEM private-key text, which
    some TLS libraries carry as a string)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[:4] == b"\x7fELF" and b"PRIVATE KEY" not in data


def pick_elves(limit):
    """A deterministic selection of regular ELF files (sorted walk)."""
    out, total, seen = [], 0, set()
    for top in ("/usr/lib/x86_64-linux-gnu", "/usr/bin"):
        for dp, dirs, files in os.walk(top):
            dirs.sort()
            for fn in sorted(files):
                src = os.path.join(dp, fn)
                if os.path.islink(src) or not os.path.isfile(src) or not is_elf(src):
                    continue
                st = os.stat(src)
                # Many binaries of ordinary size (no single 100 MB library).
                if st.st_ino in seen or st.st_size == 0 or st.st_size > FILE_MAX:
                    continue
                seen.add(st.st_ino)
                out.append(src)
                total += st.st_size
                if total >= limit:
                    return out, total
    return out, total


def build_tree(stage, elves, tree):
    shutil.copytree(stage, tree, symlinks=True)
    payload = os.path.join(tree, "payload")
    os.makedirs(payload)
    names = []
    for i, src in enumerate(elves):
        rel = "payload/%05d-%s" % (i, os.path.basename(src))
        shutil.copyfile(src, os.path.join(tree, rel))
        os.chmod(os.path.join(tree, rel), 0o644)
        names.append(rel)
    return names


def touch(tree, rels, tag):
    """Change RELS' content (a marker appended: a new digest, same ELF)."""
    for rel in rels:
        with open(os.path.join(tree, rel), "ab") as f:
            f.write(b"\0tandem-bench-delta " + tag.encode() + b"\0")


def set_bin(work, tree, version):
    """Our own binaries of VERSION (the agent reports its version to the probe)."""
    small = make_release(version, os.path.join(work, "small-%s.tar.gz" % version))
    stage = os.path.join(work, "stage-" + version)
    os.makedirs(stage)
    sh(["tar", "-xzf", small, "-C", stage])
    shutil.rmtree(os.path.join(tree, "bin"))
    shutil.copytree(os.path.join(stage, "bin"), os.path.join(tree, "bin"), symlinks=True)
    shutil.rmtree(stage)
    os.unlink(small)


def pack(work, tree, version, out):
    set_bin(work, tree, version)
    sh([os.path.join(BUILD, "tandem"), "release", "pack", tree, "--version", version,
        "--readiness", "ready-fd", "--output", out])
    return out


# ---- the shaped link: a network namespace of our own ----

_libc = ctypes.CDLL(None, use_errno=True)


def setns(path):
    """Move this process (its one thread, and so every child it starts) into the
    network namespace at PATH."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns %s: %s" % (path, os.strerror(err)))
    finally:
        os.close(fd)


class ShapedLink:
    """NETNS with its loopback up, MTU 1500 and a tbf qdisc of RATE; the
    process inside it while entered; deleted on exit (bench/delta.sh deletes
    it too, should this process be killed)."""

    def __enter__(self):
        self.home = "/proc/%d/ns/net" % os.getpid()
        self.home_fd = os.open(self.home, os.O_RDONLY | os.O_CLOEXEC)
        sh(["ip", "netns", "add", NETNS])
        try:
            sh(["ip", "-n", NETNS, "link", "set", "lo", "mtu", "1500", "up"])
            # burst >= rate/HZ and > the MTU; latency bounds the queue (tbf drops beyond it).
            sh(["ip", "netns", "exec", NETNS, "tc", "qdisc", "add", "dev", "lo", "root", "tbf",
                "rate", RATE, "burst", "64kb", "latency", "50ms"])
            setns("/run/netns/" + NETNS)
        except BaseException:
            subprocess.run(["ip", "netns", "del", NETNS], check=False)
            raise
        self.qdisc = sh(["tc", "qdisc", "show", "dev", "lo"]).stdout.strip()
        return self

    def __exit__(self, *exc):
        if _libc.setns(self.home_fd, CLONE_NEWNET) != 0:
            print("cannot leave %s: %s" % (NETNS, os.strerror(ctypes.get_errno())))
        os.close(self.home_fd)
        subprocess.run(["ip", "netns", "del", NETNS], check=False)
        return False


# ---- the pushes ----

def updater_log(fleet, name):
    return fleet.procs[name].stdout() + fleet.procs[name].stderr()


def push(fleet, host, release, full):
    """`tandem swarm update --host HOST --release RELEASE --json [--full]`: wall time,
    the host's JSON row."""
    args = ["swarm", "update", "--host", host, "--release", release, "--json"]
    if full:
        args.append("--full")
    t0 = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = fleet.tandem(*args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    dt = time.monotonic() - t0
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        sys.exit("swarm update %s: exit %d, not JSON: %s\n%s" % (host, r.returncode, r.stdout,
                                                                 r.stderr))
    row = next(h for h in doc["hosts"] if h["host"] == host)
    if r.returncode != 0 or (row.get("agent") or {}).get("result") != "updated":
        sys.exit("swarm update %s failed (%d): %s\n%s" % (host, r.returncode,
                                                          json.dumps(row), r.stderr))
    hist = fleet.json("swarm", "history", "--host", host)
    t = (hist.get("updater") or [{}])[-1].get("timings", {})  # the updater's, oldest first
    row["_cpu"] = cpu
    row["_timings"] = "upload %s extract %s preflight %s probe %s total %s ms" % tuple(
        t.get(k, "?") for k in ("upload_ms", "extract_ms", "preflight_ms", "probe_ms", "total_ms"))
    return dt, row


def forget_release(fleet, release):
    """Remove RELEASE from the master's store (the tarball, its check record and
    signature), so the next command takes it in and checks it as a new release:
    each command of a round pays the same import, whichever goes first (a release
    the store already holds checked is not checked again)."""
    h = hashlib.sha256()
    with open(release, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    stem = os.path.join(fleet.home, "store", h.hexdigest())
    for suffix in (".tar.gz", ".tar.gz.tsig", ".checked.json"):
        try:
            os.unlink(stem + suffix)
        except FileNotFoundError:
            pass


def check_bytes(fleet, host, row, release, seen):
    """BYTES_SENT is what the updater says it got: the plan's body (its log's
    "plan: N bytes") plus the tarball ("upload of N bytes" / "a delta of N bytes")."""
    log = updater_log(fleet, host)
    new = log[seen.get(host, 0):]
    seen[host] = len(log)
    plan = sum(int(x) for x in re.findall(r"plan: (\d+) bytes", new))
    got = re.findall(r"assembled from a delta of (\d+) bytes", new)
    if row["transfer"] == "planned":
        if len(got) != 1:
            sys.exit("%s: no single delta install in its log:\n%s" % (host, new[-3000:]))
        body = int(got[0])
    else:
        body = os.path.getsize(release)
    if row["bytes_sent"] != plan + body:
        sys.exit("%s: the CLI says %d bytes sent, the updater got %d (plan) + %d" % (
            host, row["bytes_sent"], plan, body))
    return plan


def run_link(work, link, base, versions):
    """Both hosts on LINK get BASE, then each version in turn, full and planned side
    by side (which goes first alternates). Returns {kind: [(full s, full B,
    planned s, planned B, transfer, plan B)]}."""
    fleet = Fleet(os.path.join(work, "fleet-" + link))
    res = {"few": [], "all": []}
    seen = {}
    try:
        for h in ("full", "planned"):
            fleet.enroll(h)
            fleet.start(h, keys=KEYS)
            push(fleet, h, base, True)
            updater_log(fleet, h)
        seen = {h: len(updater_log(fleet, h)) for h in ("full", "planned")}
        for i, (kind, path) in enumerate(versions):
            order = (True, False) if (i // 2) % 2 == 0 else (False, True)
            got = {}
            for full in order:
                h = "full" if full else "planned"
                forget_release(fleet, path)
                got[h] = push(fleet, h, path, full)
            ft, frow = got["full"]
            pt, prow = got["planned"]
            if frow["transfer"] != "full":
                sys.exit("--full went %s" % frow["transfer"])
            check_bytes(fleet, "full", frow, path, seen)
            plan = check_bytes(fleet, "planned", prow, path, seen)
            res[kind].append((ft, frow["bytes_sent"], pt, prow["bytes_sent"], prow["transfer"],
                              plan))
            print("%s round %d %-3s full %6.2f s %10d B | planned (%s) %6.2f s %10d B "
                  "(plan body %d B)" % (link, i // 2, kind, ft, frow["bytes_sent"],
                                        prow["transfer"], pt, prow["bytes_sent"], plan),
                  flush=True)
            print("    master CPU (the CLI's user + system): full %.2f s | planned %.2f s"
                  % (frow["_cpu"], prow["_cpu"]), flush=True)
            print("    updater: full: %s | planned: %s" % (frow["_timings"], prow["_timings"]),
                  flush=True)
    finally:
        fleet.stop_all()
    return res


def report(link, res, size):
    med = statistics.median
    print("\n%s: medians of %d rounds (full push = --full; time = the command's wall time)"
          % (link, RUNS))
    print("%-22s %12s %12s %8s %8s %8s %8s  %s" % ("case", "full B", "planned B", "full s",
                                                  "planned s", "bytes", "time", "transfer"))
    for kind, label in (("few", "%d files changed" % CHANGED), ("all", "every file changed")):
        r = res[kind]
        fs, ps = med([x[1] for x in r]), med([x[3] for x in r])
        ft, pt = med([x[0] for x in r]), med([x[2] for x in r])
        print("%-22s %12d %12d %8.2f %8.2f %7.2f%% %7.2fx  %s (plan body %d B; runs: %s)"
              % (label, fs, ps, ft, pt, 100.0 * ps / fs, pt / ft,
                 ",".join(sorted(set(x[4] for x in r))), med([x[5] for x in r]),
                 " ".join("%.2f/%.2f" % (x[0], x[2]) for x in r)), flush=True)


def status_cpu(work):
    """Master CPU per host of `tandem swarm status --all` (user + system time of the
    child from getrusage), STATUS_HOSTS real updaters, RUNS runs: what TLS session
    resumption in the master's client changes (the build decides whether it resumes)."""
    fleet = Fleet(os.path.join(work, "fleet"))
    cpu = []
    try:
        for i in range(STATUS_HOSTS):
            fleet.enroll("host%d" % i)
            fleet.start("host%d" % i)
        argv = [os.path.join(BUILD, "tandem"), "--home", fleet.home, "swarm", "status", "--all",
                "--json"]
        for _ in range(RUNS + 1):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if r.returncode not in (0, 1) or not r.stdout.startswith("{"):
                sys.exit("swarm status failed (%d): %s" % (r.returncode, r.stderr))
            cpu.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    finally:
        fleet.stop_all()
    cpu = cpu[1:]  # the first run warms the page cache
    print("tandem swarm status --all, %d hosts: master CPU median %.1f ms per host (%s ms per run)"
          % (STATUS_HOSTS, 1000.0 * statistics.median(cpu) / STATUS_HOSTS,
             ", ".join("%.1f" % (1000.0 * c) for c in cpu)), flush=True)


def main():
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f
                      if line.startswith("model name")), "?")
    print("== machine: %d CPUs, %s; load average %s" % (
        os.cpu_count(), model, " ".join(open("/proc/loadavg").read().split()[:3])), flush=True)
    work = tempfile.mkdtemp(prefix="tandem-bench-delta.", dir=os.environ.get("TMPDIR", "/tmp"))
    try:
        if "status" in PARTS:
            status_cpu(work)
        if "push" not in PARTS:
            return
        stage = os.path.join(work, "stage")
        os.makedirs(os.path.join(stage, "bin"))
        elves, total = pick_elves(BIG_MB << 20)
        tree = os.path.join(work, "tree")
        names = build_tree(stage, elves, tree)
        # The changed set: the CHANGED files nearest 1.5 % / CHANGED of the bytes each.
        want = total * 0.015 / CHANGED
        few = sorted(names, key=lambda n: (abs(os.path.getsize(os.path.join(tree, n)) - want), n))
        few = few[:CHANGED]
        few_bytes = sum(os.path.getsize(os.path.join(tree, n)) for n in few)
        base = pack(work, tree, "delta.base", os.path.join(work, "base.tar.gz"))
        versions = []
        for i in range(RUNS):
            for kind, rels in (("few", few), ("all", names)):
                tag = "%s-%d" % (kind, i)
                touch(tree, rels, tag)
                versions.append((kind, pack(work, tree, "delta-" + tag.replace("-", "."),
                                            os.path.join(work, tag + ".tar.gz"))))
        shutil.rmtree(tree)
        size = os.path.getsize(versions[0][1])
        print("release: %d ELF files, %.1f MiB unpacked, %d B tarball; changed set %d files, "
              "%.2f MiB (%.2f %%)" % (len(names), total / 2**20, size, len(few),
                                      few_bytes / 2**20, 100.0 * few_bytes / total), flush=True)
        results = []
        for link in LINKS:
            if link == "loopback":
                results.append((link, run_link(work, link, base, versions)))
            elif link == "shaped":
                if os.geteuid() != 0:
                    print("shaped link skipped: ip netns and tc need root", flush=True)
                    continue
                with ShapedLink() as s:
                    label = "shaped (%s: %s)" % (NETNS, s.qdisc)
                    print("== %s" % label, flush=True)
                    results.append(("shaped " + RATE, run_link(work, "shaped", base, versions)))
            else:
                sys.exit("LINKS: loopback or shaped, not %r" % link)
        for link, res in results:
            report(link, res, size)
        print("== load average at end: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
