#!/usr/bin/python3
"""Fleet push benchmark (not a test): wall time of `tandem swarm update --all`
for 1, 10 and 50 hosts on 127.0.0.1, against the single-host time. Each host
is a real tandem-updater + tandem-agent pair started from its enrollment
bundle; every host already runs release A, and each run pushes the other
release (A/B alternate), so every run is a full install + restart + probe.
Results go to wiki/Performance.md ("Fleet push").

    BUILD=/abs/build bench/swarm_update.sh        (make bench sets BUILD)
    SIZES=1,10,50 RUNS=3 PARALLEL=8 bench/swarm_update.sh
    ROLLOUT_ARGS="--canary 0 --waves 100%" bench/swarm_update.sh   (one wave, no canary)

Every `swarm update` is a rollout: without ROLLOUT_ARGS it runs the default plan (a canary
host, then waves of 10 %, 50 %, 100 %, a gate after each).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
os.environ.setdefault("TANDEM_BUILD", os.environ.get("BUILD") or os.path.join(ROOT, "build"))
from release_util import run_make_release  # noqa: E402
from swarm_util import Fleet  # noqa: E402

BUILD = os.environ["TANDEM_BUILD"]
SIZES = [int(x) for x in os.environ.get("SIZES", "1,10,50").split(",")]
RUNS = int(os.environ.get("RUNS", "3"))
PARALLEL = os.environ.get("PARALLEL", "8")
ROLLOUT_ARGS = os.environ.get("ROLLOUT_ARGS", "").split()
# The probe's stability window dominates a small push; use the shipped default.
KEYS = {"probe_stable": os.environ.get("PROBE_STABLE", "1s"), "log_level": "info"}


def push(fleet, release):
    t0 = time.monotonic()
    r = fleet.tandem("swarm", "update", "--all", "--release", release, "--parallel", PARALLEL,
                     *ROLLOUT_ARGS, "--json", check=None)
    dt = time.monotonic() - t0
    doc = json.loads(r.stdout)
    bad = [h for h in doc["hosts"] if (h.get("agent") or {}).get("result") != "updated"]
    if r.returncode != 0 or bad:
        sys.exit("swarm update failed (%d): %s\n%s" % (
            r.returncode, doc["rollout"]["summary"],
            "\n".join("%s: %s: %s %s" % (h["host"], h["state"], h["agent"]["reason"],
                                         h["agent"]["detail"][:300]) for h in bad)))
    return dt


def bench(size, rel_a, rel_b, work):
    fleet = Fleet(os.path.join(work, "fleet-%d" % size))
    try:
        for i in range(size):
            fleet.enroll("host%d" % i)
            fleet.start("host%d" % i, keys=KEYS)
        push(fleet, rel_a)  # every host runs A
        times = [push(fleet, rel_b if i % 2 == 0 else rel_a) for i in range(RUNS)]
    finally:
        fleet.stop_all()
    return times


def main():
    nproc = os.cpu_count()
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f
                      if line.startswith("model name")), "?")
    print("== machine: %d CPUs, %s; load average %s" % (nproc, model,
                                                        open("/proc/loadavg").read().split()[:3]))
    with tempfile.TemporaryDirectory(prefix="tandem-bench-swarm.") as work:
        rel_a = os.path.join(work, "a.tar.gz")
        rel_b = os.path.join(work, "b.tar.gz")
        run_make_release(BUILD, "1.0.0", rel_a)
        run_make_release(BUILD, "1.0.1", rel_b)
        base = None
        for size in SIZES:
            times = bench(size, rel_a, rel_b, work)
            med = statistics.median(times)
            if base is None:
                base = med
            rounds = -(-size // int(PARALLEL))
            print("swarm update --all %s, %d host(s), --parallel %s: median %.2f s "
                  "(runs: %s), %.1fx the first size, %.2fx ceil(N/P) x the first size" % (
                      " ".join(ROLLOUT_ARGS), size, PARALLEL, med,
                      " ".join("%.2f" % t for t in times), med / base, med / (rounds * base)))
    print("== load average at end: %s" % open("/proc/loadavg").read().split()[:3])


if __name__ == "__main__":
    try:
        main()
    except subprocess.TimeoutExpired as e:
        sys.exit("timed out: %s" % e)
