#!/usr/bin/python3
"""Planned (delta) push benchmark (not a test): a ~200 MB release of real
ELF binaries is pushed to two real updaters on 127.0.0.1, one whole (POST
/update with the full tarball) and one planned (POST /update/plan with the
release's files.json, then POST /update mode=delta with a tar.gz of the
files the plan names), side by side, for a version with ~7 changed files
(~1.5 % of the bytes) and a version where every file changed. Prints the
medians of request-body bytes on the wire and push wall time, and ratios.
Results go to wiki/Performance.md ("Planned pushes").

    BUILD=/abs/build bench/delta.sh        (make bench-delta sets BUILD)
    RUNS=3 BIG_MB=200 CHANGED=7 STATUS_HOSTS=4 PARTS=push,status bench/delta.sh

It also prints the master's CPU per host of `tandem swarm status --all`.
"""

import hashlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
from conftest import OpensslPKI  # noqa: E402
from updater_push import Updater, make_release, sh, sha256_file  # noqa: E402

BUILD = os.environ.get("BUILD") or os.path.join(ROOT, "build")
RUNS = int(os.environ.get("RUNS", "3"))
BIG_MB = int(os.environ.get("BIG_MB", "200"))
CHANGED = int(os.environ.get("CHANGED", "7"))
STATUS_HOSTS = int(os.environ.get("STATUS_HOSTS", "4"))
PARTS = os.environ.get("PARTS", "push,status").split(",")
FILE_MAX = 8 << 20


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


def member_name(m):
    n = m.name
    while n.startswith("./"):
        n = n[2:]
    return n


def delta_tarball(full, missing, out):
    """files.json + the regular files whose digest is in MISSING, as the master sends them."""
    missing = set(missing)
    with tarfile.open(full, "r:gz") as src, tarfile.open(out, "w:gz", compresslevel=6) as dst:
        for m in src:
            if not m.isfile():
                continue
            data = src.extractfile(m).read()
            name = member_name(m)
            if name != "files.json" and hashlib.sha256(data).hexdigest() not in missing:
                continue
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), m.mode, 0
            dst.addfile(ti, io.BytesIO(data))
    return out


def files_json(full):
    with tarfile.open(full, "r:gz") as t:
        for m in t:
            if member_name(m) == "files.json":
                return t.extractfile(m).read()
    sys.exit("%s has no files.json" % full)


class Host(Updater):
    def curl(self, args):
        return sh(["curl", "-sS", "--max-time", "600", "--cacert", self.pki.ca_crt,
                   "--cert", self.pki.master[0], "--key", self.pki.master[1],
                   "-w", "\n%{size_upload}"] + args)

    def post_update(self, tarball, sha, mode):
        fields = ["-F", "sha256=" + sha]
        if mode:
            fields += ["-F", "mode=" + mode]  # before the file: the updater reads as it streams
        fields += ["-F", "tarball=@" + tarball]
        r = self.curl(fields + ["https://127.0.0.1:%d/update" % self.port])
        body, sent = r.stdout.rsplit("\n", 1)
        if json.loads(body).get("status") != "updated":
            sys.exit("push failed: %s" % body)
        return int(sent)

    def push_full(self, full):
        t0 = time.monotonic()
        sent = self.post_update(full, sha256_file(full), None)
        return time.monotonic() - t0, sent

    def push_planned(self, full, work):
        """What the master does: plan, then a delta (or full if the delta is not worth it)."""
        t0 = time.monotonic()
        fj = os.path.join(work, "files.json")
        with open(fj, "wb") as f:
            f.write(files_json(full))
        r = self.curl(["-H", "Content-Type: application/json", "--data-binary", "@" + fj,
                       "https://127.0.0.1:%d/update/plan" % self.port])
        body, sent = r.stdout.rsplit("\n", 1)
        plan = json.loads(body)
        sent = int(sent)
        if plan["missing_bytes"] * 2 >= os.path.getsize(full):
            sent += self.post_update(full, sha256_file(full), None)
            return time.monotonic() - t0, sent, "full", plan
        t1 = time.monotonic()
        d = delta_tarball(full, plan["missing"], os.path.join(work, "delta.tar.gz"))
        plan["build_s"] = time.monotonic() - t1  # this script's Python tar.gz writer
        sent += self.post_update(d, sha256_file(full), "delta")
        return time.monotonic() - t0, sent, "planned", plan


def status_cpu(work):
    """Master CPU per host of `tandem swarm status --all` (user + system time of the
    child from getrusage), STATUS_HOSTS real updaters, RUNS runs: what TLS session
    resumption in the master's client changes (the build decides whether it resumes)."""
    os.environ.setdefault("TANDEM_BUILD", BUILD)
    from swarm_util import Fleet  # noqa: E402 (needs TANDEM_BUILD)
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
    work = tempfile.mkdtemp(prefix="tandem-bench-delta.", dir=os.environ.get("TMPDIR", "/tmp"))
    hosts = []
    try:
        if "status" in PARTS:
            status_cpu(work)
        if "push" not in PARTS:
            return
        pki = OpensslPKI(os.path.join(work, "pki"))
        pki.master = pki.issue("master", "tandem-master", ou="master", eku=("clientAuth",))
        pki.agent = pki.issue("host1", "host1", ou="agent")
        pki.updater = pki.issue("updater-host1", "updater@host1", ou="updater")
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
        hosts = [Host(work, pki, "full"), Host(work, pki, "planned")]
        for h in hosts:
            h.push_full(base)
        res = {"few": [], "all": []}
        for i in range(RUNS):
            for kind, rels in (("few", few), ("all", names)):
                tag = "%s-%d" % (kind, i)
                touch(tree, rels, tag)
                full = pack(work, tree, "delta-" + tag.replace("-", "."),
                            os.path.join(work, tag + ".tar.gz"))
                ft, fs = hosts[0].push_full(full)
                pt, ps, mode, plan = hosts[1].push_planned(full, work)
                fu = hosts[0].last_timings()["upload_ms"]
                plan["upload_ms"] = hosts[1].last_timings()["upload_ms"]
                plan["full_upload_ms"] = fu
                res[kind].append((ft, fs, pt, ps, mode, plan, os.path.getsize(full)))
                print("round %d %-3s full %.2f s %d B | planned(%s) %.2f s (delta built in %.2f s)"
                      " %d B, missing %d files %d B"
                      % (i, kind, ft, fs, mode, pt, plan.get("build_s", 0), ps,
                         plan["missing_files"], plan["missing_bytes"]), flush=True)
                os.unlink(full)

        med = statistics.median
        print()
        print("release: %d ELF files, %.1f MiB unpacked; changed set %d files, %.2f MiB (%.2f %%)"
              % (len(names), total / 2**20, len(few), few_bytes / 2**20, 100.0 * few_bytes / total))
        print("%-22s %12s %12s %10s %10s %8s %8s" % ("case (medians of %d)" % RUNS, "full B",
                                                   "planned B", "full s", "planned s", "bytes",
                                                   "time"))
        for kind, label in (("few", "%d files changed" % len(few)), ("all", "every file changed")):
            r = res[kind]
            fs, ps = med([x[1] for x in r]), med([x[3] for x in r])
            ft, pt = med([x[0] for x in r]), med([x[2] for x in r])
            bt = med([x[5].get("build_s", 0) for x in r])
            fu = med([x[5]["full_upload_ms"] for x in r])
            pu = med([x[5]["upload_ms"] for x in r])
            print("%-22s %12d %12d %10.2f %10.2f %7.2f%% %7.2fx  (%s; delta built in %.2f s)"
                  % (label, fs, ps, ft, pt, 100.0 * ps / fs, pt / ft,
                     ",".join(sorted(set(x[4] for x in r))), bt))
            print("%-22s updater receive+assemble (upload_ms): full %d ms, planned %d ms"
                  % ("", fu, pu))
    finally:
        for h in hosts:
            h.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
