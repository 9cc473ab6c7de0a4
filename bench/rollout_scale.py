#!/usr/bin/python3
"""Rollout scale benchmark (not a test): what the master costs per host with registries of
1 000 and 10 000 enrolled hosts. Every number is a real `tandem` command on a real registry;
the hosts beyond the first are rows copied from one host enrolled through `swarm enroll`
(same certificate pin, their own names, labels and an updater port where nothing listens,
so every connection is refused at once: the master's own work is what is measured, not a
network). Results go to wiki/Performance.md ("Rollouts at scale").

Measured, each RUNS times (median wall, CPU user+system, peak RSS of the tandem process):
  plan      swarm update --all --paused      the rollout and its N host rows recorded
  selector  swarm update --hosts ring=a --paused   the same through a label selector (N/2)
  status    swarm rollout status ID --json   one rollout with N host rows read back
  list      swarm rollout list --json        the newest rollouts
  hosts     swarm list --json                every host of the registry
  abort     swarm rollout abort ID           N host rows closed
  dispatch  swarm update --all --canary 0 --waves 100% --unreachable skip --retries 1
            --parallel 64: the whole driver (precheck, per-host record, gate) for N hosts
  probe     swarm status --all --parallel 64 every host asked (refused at once)

    BUILD=/abs/build bench/rollout_scale.sh         SIZES=1000,10000 RUNS=3
"""

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
os.environ.setdefault("TANDEM_BUILD", os.environ.get("BUILD") or os.path.join(ROOT, "build"))
from conftest import free_port  # noqa: E402
from release_util import run_make_release  # noqa: E402

BUILD = os.environ["TANDEM_BUILD"]
SIZES = [int(x) for x in os.environ.get("SIZES", "1000,10000").split(",")]
RUNS = int(os.environ.get("RUNS", "3"))
TANDEM = os.path.join(BUILD, "tandem")


def measure(home, *args, ok=(0,)):
    """`tandem --home HOME ARGS` under /usr/bin/time: (stdout, wall s, CPU s, peak RSS KiB)."""
    fd, tf = tempfile.mkstemp()
    os.close(fd)
    argv = ["/usr/bin/time", "-f", "%e %U %S %M", "-o", tf, TANDEM, "--home", home] + \
        [str(a) for a in args]
    p = subprocess.run(argv, capture_output=True, text=True)
    with open(tf) as f:
        last = f.read().strip().splitlines()[-1].split()
    os.unlink(tf)
    if p.returncode not in ok:
        sys.exit("%s: exit %d\n%s\n%s" % (" ".join(argv), p.returncode, p.stdout[-2000:],
                                         p.stderr[-2000:]))
    return p.stdout, float(last[0]), float(last[1]) + float(last[2]), int(last[3])


def run(home, *args, ok=(0,)):
    return measure(home, *args, ok=ok)[0]


def fill(home, n):
    """N hosts: the enrolled seed's row copied under new names, half with ring=a."""
    db = sqlite3.connect(os.path.join(home, "registry.db"))
    seed = db.execute("SELECT agent_fp, updater_fp FROM hosts WHERE name = 'seed'").fetchone()
    port = free_port()  # nothing listens there
    now = int(time.time())
    db.execute("BEGIN")
    db.execute("UPDATE hosts SET decommissioned_at = ? WHERE name = 'seed'", (now,))
    for i in range(n):
        cur = db.execute(
            "INSERT INTO hosts (name, address, agent_port, updater_port, agent_fp, updater_fp,"
            " enrolled_at) VALUES (?, '127.0.0.1', ?, ?, ?, ?, ?)",
            ("h%05d" % i, port, port, seed[0], seed[1], now))
        db.execute("INSERT INTO host_labels (host_id, key, value) VALUES (?, 'ring', ?)",
                   (cur.lastrowid, "a" if i % 2 == 0 else "b"))
    db.execute("COMMIT")
    db.close()


def rollout_id(out):
    doc = json.loads(out)
    return doc["rollout"]["id"] if "rollout" in doc else doc["id"]


def bench(n, release, work):
    home = os.path.join(work, "home-%d" % n)
    run(home, "pki", "init")
    _, enroll, _, _ = measure(home, "swarm", "enroll", "seed", "--address", "127.0.0.1",
                              "--updater", "--json")
    fill(home, n)
    rows = {k: [] for k in ("plan", "selector", "status", "list", "hosts", "abort", "dispatch",
                            "probe")}
    for _ in range(RUNS):
        out, w, c, m = measure(home, "swarm", "update", "--all", "--release", release, "--paused",
                            "--json", ok=(3,))
        rows["plan"].append((w, c, m))
        rid = rollout_id(out)
        _, w, c, m = measure(home, "swarm", "rollout", "status", rid, "--json")
        rows["status"].append((w, c, m))
        _, w, c, m = measure(home, "swarm", "rollout", "list", "--json")
        rows["list"].append((w, c, m))
        _, w, c, m = measure(home, "swarm", "list", "--json")
        rows["hosts"].append((w, c, m))
        _, w, c, m = measure(home, "swarm", "rollout", "abort", rid, ok=(0, 1))
        rows["abort"].append((w, c, m))
        out, w, c, m = measure(home, "swarm", "update", "--hosts", "ring=a", "--release", release,
                            "--paused", "--json", ok=(3,))
        rows["selector"].append((w, c, m))
        run(home, "swarm", "rollout", "abort", rollout_id(out), ok=(0, 1))
        _, w, c, m = measure(home, "swarm", "update", "--all", "--release", release, "--canary",
                          "0", "--waves", "100%", "--unreachable", "skip", "--retries", "1",
                          "--parallel", "64", "--json", ok=(0, 1))
        rows["dispatch"].append((w, c, m))
        _, w, c, m = measure(home, "swarm", "status", "--all", "--parallel", "64", "--json",
                          ok=(0, 1))
        rows["probe"].append((w, c, m))
    return enroll, rows


def main():
    work = tempfile.mkdtemp(prefix="tandem-rollout-scale-")
    release = os.path.join(work, "r.tar.gz")
    run_make_release(BUILD, "9.9.9", release, "good")
    results = {}
    for n in SIZES:
        results[n] = bench(n, release, work)
        print("%d hosts done (seed enroll %.2f s)" % (n, results[n][0]), file=sys.stderr)
    first = SIZES[0]
    print("| step | " + " | ".join("%d hosts: wall / CPU / RSS" % n for n in SIZES) +
          " | CPU per host (%d) | wall %d vs %d |" % (SIZES[-1], SIZES[-1], first))
    print("|---|" + "---:|" * (len(SIZES) + 2))
    for step in results[first][1]:
        cells, med = [], {}
        for n in SIZES:
            w = statistics.median(x[0] for x in results[n][1][step])
            c = statistics.median(x[1] for x in results[n][1][step])
            m = max(x[2] for x in results[n][1][step])
            med[n] = (w, c)
            cells.append("%.2f s / %.2f s / %.1f MB" % (w, c, m / 1024))
        last = SIZES[-1]
        per = med[last][1] / last * 1000
        ratio = med[last][0] / med[first][0] if med[first][0] > 0 else 0
        print("| %s | %s | %.3f ms CPU | %.1f× |" % (step, " | ".join(cells), per, ratio))


if __name__ == "__main__":
    main()
