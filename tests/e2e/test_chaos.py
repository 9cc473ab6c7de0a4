"""Chaos test: a real tandem-updater and its agent on 127.0.0.1 driven by a
seeded random sequence of good pushes, bad pushes (the release fails its
probe), manual rollbacks, kill -9 of the updater at a random moment of an
operation (or the instant a new agent process appears), kill -9 of the
agent (idle, or the new one of a push the instant it appears), and restarts
of the updater. After every step, once the updater is
back, the host must be whole: exactly one agent process of this install
runs (found in /proc by its executable under the install dir or its
TANDEM_AGENT_OF entry, as an operator would find it), it serves the release
in releases/active, no staging or journal remains, releases/prev (when
present) is a good release, /health is ok, and after every kill the next
good push succeeds. The time from each kill to /health ok with the right
release served is measured.

CHAOS_SEED=N replays a sequence of steps (the kill moments depend on timing,
so a replay takes the same decisions, not necessarily the same outcomes);
CHAOS_SECONDS bounds the campaign (60 s in make check; make chaos runs it
longer and prints the summary); CHAOS_REPORT=FILE also writes the summary as
JSON. A failure prints the seed, every step taken and the state found."""

import json
import os
import random
import signal
import statistics
import subprocess
import time

import pytest

from conftest import wait_until
from release_util import sha256_file
from test_updater import Host, pid_alive, releases  # noqa: F401 (releases is a fixture)
from worker_util import curl_run

SEED = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(1 << 32))
SECONDS = float(os.environ.get("CHAOS_SECONDS") or 60)
# How long a recovery or an operation may take before the test calls it
# stuck: generous, the machine is shared and may run sanitizer builds.
SETTLE_S = 60
OP_S = 90

GOOD = ["1.0.0", "2.0.0", "3.0.0"]
BAD = [("9.0.0", "exit-at-once"), ("9.1.0", "wrong-version")]

# Steps and their weights. A kill is always followed by a good push.
STEPS = [
    ("push_good", 3),
    ("push_bad", 2),
    ("rollback", 2),
    ("kill_updater_in_op", 4),
    ("kill_updater_idle", 1),
    ("kill_agent", 1),
    ("kill_agent_in_op", 1),
    ("restart_updater", 1),
]


def install_procs(root):
    """Live processes of this install's agent: an executable under ROOT's
    releases (any slot, a removed one included) or TANDEM_AGENT_OF=ROOT in
    the environment the kernel keeps for them."""
    prefix = os.path.join(root, "releases") + "/"
    tag = ("TANDEM_AGENT_OF=" + root).encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        try:
            exe = os.readlink("/proc/%d/exe" % pid)
        except OSError:
            exe = ""
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            env = []
        if (exe.startswith(prefix) or tag in env) and pid_alive(pid):
            out.append(pid)
    return sorted(out)


def release_json(root, slot):
    p = os.path.join(root, "releases", slot, "release.json")
    try:
        with open(p) as f:
            return json.load(f)
    except OSError:
        return None


class Chaos:
    def __init__(self, host, rels, seed, seconds):
        self.h = host
        self.rng = random.Random(seed)
        self.seed = seed
        self.seconds = seconds
        self.good = {sha256_file(p): (v, p) for v, p in rels["good"]}
        self.bad = {sha256_file(p): (v, p) for v, p in rels["bad"]}
        self.steps = []          # one line per step: what was done, what came of it
        self.counts = {}
        self.recoveries = []     # (step kind, seconds from the kill to a whole host)
        self.starts = 0
        self.force_push = False

    # ------------------------------------------------------------ reporting

    def note(self, line):
        self.steps.append("%4d %s" % (len(self.steps), line))

    def state(self):
        """Everything a reader needs to see what the host looked like."""
        root = self.h.root
        lines = []
        for slot in ("active", "prev"):
            lines.append("releases/%s: %s" % (slot, release_json(root, slot)))
        for d in ("releases", "releases/failed", "state"):
            try:
                lines.append("%s/: %s" % (d, sorted(os.listdir(os.path.join(root, d)))))
            except OSError as e:
                lines.append("%s/: %s" % (d, e))
        j = os.path.join(root, "state", "journal.json")
        if os.path.exists(j):
            with open(j) as f:
                lines.append("journal: " + f.read())
        lines.append("agent processes: %s" % [
            (p, self._exe(p)) for p in install_procs(root)])
        lines.append("updater alive: %s" % self.h.proc.alive())
        h = self.health()
        lines.append("/health: %s" % (json.dumps(h) if h else "no answer"))
        a = self.agent_health()
        lines.append("agent /health: %s" % (json.dumps(a) if a else "no answer"))
        lines.append("updater stderr (last lines):\n" + "\n".join(
            self.h.proc.stderr().splitlines()[-40:]))
        try:
            with open(os.path.join(root, "state", "agent.log"), errors="replace") as f:
                lines.append("agent.log (last lines):\n" + "\n".join(f.read().splitlines()[-15:]))
        except OSError:
            pass
        return "\n".join(lines)

    @staticmethod
    def _exe(pid):
        try:
            return os.readlink("/proc/%d/exe" % pid)
        except OSError:
            return "?"

    @staticmethod
    def _cmdline(pid):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                data = f.read()
        except OSError:
            return []
        # Empty while the process is between fork and exec or already exiting:
        # not yet known to be the agent rather than its preflight.
        return data.split(b"\0") if data else []

    def fail(self, why):
        pytest.fail("chaos: %s\nseed %d (CHAOS_SEED=%d to replay)\nsteps:\n%s\nstate found:\n%s"
                    % (why, self.seed, self.seed, "\n".join(self.steps), self.state()),
                    pytrace=False)

    def check(self, cond, why):
        if not cond:
            self.fail(why)

    # ------------------------------------------------------------ talking to the host

    def health(self):
        if self.h.port is None:
            return None
        r = curl_run(self.h.url("/health"), self.h.pki.ca_crt, self.h.pki.master, max_time=5,
                     real_curl=True)
        if r.rc != 0 or r.status != 200:
            return None
        return r.json()

    def agent_health(self):
        r = curl_run("https://127.0.0.1:%d/health" % self.h.agent_port, self.h.pki.ca_crt,
                     self.h.pki.updater, max_time=5, real_curl=True)
        if r.rc != 0 or r.status != 200:
            return None
        return r.json()

    def slots(self):
        return {s: (release_json(self.h.root, s) or {}).get("sha256") for s in ("active", "prev")}

    def name(self, sha):
        if sha is None:
            return "-"
        v = self.good.get(sha) or self.bad.get(sha)
        return v[0] if v else sha[:12]

    def start_updater(self):
        self.starts += 1
        self.h.name = "updater-%d" % self.starts
        self.h.start()

    def kill_updater(self):
        self.h.proc.p.kill()
        self.h.proc.p.wait()

    # ------------------------------------------------------------ the invariants

    def whole(self):
        """The host is whole: returns None, or what is still wrong."""
        h = self.health()
        if h is None:
            return "the updater does not answer /health"
        if h["status"] != "ok" or h["operation"] is not None:
            return "/health status %s, operation %s" % (h["status"], h["operation"])
        pid = h["agent"]["pid"]
        found = install_procs(self.h.root)
        if pid is None or found != [pid]:
            return "agent pid %s recorded, agent processes %s" % (pid, found)
        active = self.slots()["active"]
        a = self.agent_health()
        if a is None or a.get("release", {}).get("sha256") != active:
            return "the agent serves %s, releases/active is %s" % (
                None if a is None else self.name(a.get("release", {}).get("sha256")),
                self.name(active))
        return None

    def settle(self, what, t0=None, kind=None):
        """Wait (deadline SETTLE_S) until the host is whole, then check the
        disk; T0: the kill's time, for the recovery measurement, counted
        under KIND (default WHAT) in the summary."""
        last = [None]

        def ok():
            last[0] = self.whole()
            return last[0] is None
        try:
            wait_until(ok, SETTLE_S, "the host to be whole", interval=0.01)
        except pytest.fail.Exception:
            self.fail("after %s the host is not whole within %d s: %s" % (what, SETTLE_S, last[0]))
        if t0 is not None:
            t = time.monotonic() - t0
            self.recoveries.append((kind or what, t))
            self.steps[-1] += " [whole again %.0f ms after the kill]" % (1000 * t)
        rel = os.path.join(self.h.root, "releases")
        for left in ("active.new", "prev.old", "prev.replaced"):
            self.check(not os.path.lexists(os.path.join(rel, left)),
                       "after %s releases/%s remains" % (what, left))
        self.check(not os.path.exists(os.path.join(self.h.root, "state", "journal.json")),
                   "after %s state/journal.json remains" % what)
        s = self.slots()
        self.check(s["active"] in self.good, "after %s releases/active is %s, not a good release"
                   % (what, self.name(s["active"])))
        self.check(s["prev"] is None or s["prev"] in self.good,
                   "after %s releases/prev is %s, not a good release" % (what, self.name(s["prev"])))
        cur = os.path.realpath(os.path.join(self.h.root, "current"))
        self.check(cur == os.path.realpath(os.path.join(rel, "active")),
                   "after %s current resolves to %s" % (what, cur))
        return s

    # ------------------------------------------------------------ the steps

    def pick_good(self, active):
        return self.rng.choice(sorted(sha for sha in self.good if sha != active))

    def push_good(self):
        before = self.slots()
        sha = self.pick_good(before["active"])
        st, _, body = self.h.push(self.good[sha][1], label="chaos")
        self.note("push good %s: %s %s" % (self.good[sha][0], st, body.get("status", body)))
        self.check(st == 200 and body.get("status") == "updated",
                   "a good push answered %s %s" % (st, body))
        s = self.settle("a good push")
        self.check(s == {"active": sha, "prev": before["active"]},
                   "after a good push of %s the slots are %s" % (self.good[sha][0], s))

    def push_bad(self):
        before = self.slots()
        sha = self.rng.choice(sorted(self.bad))
        st, _, body = self.h.push(self.bad[sha][1], label="chaos")
        d = body.get("detail", {})
        self.note("push bad %s: %s %s" % (self.bad[sha][0], st, d.get("kind", body)))
        self.check(st == 409 and d.get("kind") == "probe_failed" and d.get("rolled_back") is True,
                   "a bad push answered %s %s" % (st, body))
        s = self.settle("a bad push")
        self.check(s == before, "after a bad push the slots are %s, were %s" % (s, before))

    def rollback(self):
        before = self.slots()
        st, body = self.h.rollback()
        self.note("rollback: %s %s" % (st, body.get("status", body)))
        if before["prev"] is None:
            self.check(st == 404, "a rollback without prev answered %s %s" % (st, body))
            self.settle("a refused rollback")
            return
        self.check(st == 200, "a rollback answered %s %s" % (st, body))
        s = self.settle("a rollback")
        self.check(s == {"active": before["prev"], "prev": before["active"]},
                   "after a rollback the slots are %s, were %s" % (s, before))

    def kill_updater_in_op(self):
        """Start an operation with curl, kill -9 the updater the instant a
        new agent process appears or at a random deadline (whichever comes
        first), restart it, and check the operation either never happened or
        completed."""
        before = self.slots()
        ops = ["good", "bad"] + (["rollback"] if before["prev"] else [])
        op = self.rng.choice(ops)
        if op == "rollback":
            argv, what = ["-X", "POST"], "rollback"
            path = "/rollback"
            done = {"active": before["prev"], "prev": before["active"]}
        else:
            pool = self.good if op == "good" else self.bad
            sha = self.pick_good(before["active"]) if op == "good" else \
                self.rng.choice(sorted(self.bad))
            argv = ["-F", "sha256=" + sha, "-F", "tarball=@" + pool[sha][1]]
            what, path = "push %s %s" % (op, pool[sha][0]), "/update"
            done = {"active": sha, "prev": before["active"]} if op == "good" else None
        # An operation takes about a second here: a deadline within 1.2 s
        # lands in every phase, and sometimes just after the answer.
        on_agent = self.rng.random() < 0.5
        delay = self.rng.uniform(0.0, 1.2)
        agents = set(install_procs(self.h.root))
        client = subprocess.Popen(
            ["curl", "-sS", "--max-time", str(OP_S), "--cacert", self.h.pki.ca_crt,
             "--cert", self.h.pki.master[0], "--key", self.h.pki.master[1], "-o", "/dev/null",
             "-w", "%{http_code}"] + argv + [self.h.url(path)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        t_start = time.monotonic()
        deadline = t_start + (OP_S if on_agent else delay)
        moment = None
        while moment is None:
            if on_agent and set(install_procs(self.h.root)) - agents:
                moment = "a new agent appeared"
            elif time.monotonic() >= deadline:
                moment = "%.0f ms into it" % (1000 * delay)
            elif client.poll() is not None:
                moment = "after its answer"
            else:
                # The pause between looks: 1 ms while watching /proc for the
                # agent, else until the deadline or the client's exit.
                try:
                    client.wait(0.001 if on_agent else max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        t0 = time.monotonic()
        self.kill_updater()
        client.wait(OP_S + 30)
        # What the client was told, if anything got out before the kill
        # ("000": the connection was cut).
        answer = client.stdout.read().decode().strip()
        self.note("kill -9 updater during %s, %s (%.0f ms after the request; answer %s)"
                  % (what, moment, 1000 * (t0 - t_start), answer))
        self.start_updater()
        s = self.settle("kill -9 of the updater during " + what, t0,
                        "kill -9 of the updater during an operation")
        self.check(s == before or s == done,
                   "after kill -9 during %s the slots are %s; before %s, done would be %s"
                   % (what, s, before, done))
        # An operation its client saw succeed is never undone by a crash.
        self.check(answer != "200" or s == done,
                   "the client got 200 for %s, yet after the kill the slots are %s, not %s"
                   % (what, s, done))
        self.steps[-1] += ": %s" % ("completed" if s == done and s != before else "undone")
        self.force_push = True

    def kill_updater_idle(self):
        before = self.slots()
        t0 = time.monotonic()
        self.kill_updater()
        self.note("kill -9 idle updater")
        self.start_updater()
        s = self.settle("kill -9 of the idle updater", t0)
        self.check(s == before, "after kill -9 of the idle updater the slots are %s, were %s"
                   % (s, before))
        self.force_push = True

    def kill_agent(self):
        before = self.slots()
        found = install_procs(self.h.root)
        self.check(len(found) == 1, "one agent expected before killing it")
        t0 = time.monotonic()
        os.kill(found[0], signal.SIGKILL)
        self.note("kill -9 agent %d" % found[0])
        s = self.settle("kill -9 of the agent", t0)
        self.check(s == before, "after kill -9 of the agent the slots are %s, were %s"
                   % (s, before))
        self.force_push = True

    def kill_agent_in_op(self):
        """kill -9 the new agent of a good push the instant it appears (not
        its preflight, whose kill is a plain refusal): the start
        (before READY) or the probe sees it exit, so the push is rolled back (409) to the release
        before it, or, had the kill come after the commit, it stands (200)."""
        before = self.slots()
        sha = self.pick_good(before["active"])
        agents = set(install_procs(self.h.root))
        client = subprocess.Popen(
            ["curl", "-sS", "--max-time", str(OP_S), "--cacert", self.h.pki.ca_crt,
             "--cert", self.h.pki.master[0], "--key", self.h.pki.master[1], "-o", "/dev/null",
             "-w", "%{http_code}", "-F", "sha256=" + sha, "-F", "tarball=@" + self.good[sha][1],
             self.h.url("/update")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        new = set()
        t0 = None
        while not new and client.poll() is None:
            # Not the preflight (ENTRYPOINT --self-test): the agent itself. A
            # process gone before the kill (a preflight's exit) does not count.
            for p in set(install_procs(self.h.root)) - agents:
                argv = self._cmdline(p)
                if argv and b"--self-test" not in argv:
                    t = time.monotonic()
                    try:
                        os.kill(p, signal.SIGKILL)
                        new.add(p)
                        t0 = t0 or t
                    except ProcessLookupError:
                        pass
            try:
                client.wait(0.001)
            except subprocess.TimeoutExpired:
                pass
        client.wait(OP_S + 30)
        answer = client.stdout.read().decode().strip()
        self.note("kill -9 the new agent %s of a push of %s: answer %s"
                  % (sorted(new), self.good[sha][0], answer))
        self.check(new, "the push answered %s before a new agent was seen" % answer)
        s = self.settle("kill -9 of the agent during a push", t0)
        if answer == "200":
            self.check(s == {"active": sha, "prev": before["active"]},
                       "the push answered 200, the slots are %s" % s)
        else:
            self.check(answer == "409" and s == before,
                       "the push answered %s, the slots are %s, were %s" % (answer, s, before))
        self.force_push = True

    def restart_updater(self):
        before = self.slots()
        rc = self.h.proc.stop(timeout=30)
        self.note("restart updater (SIGTERM: exit %s)" % rc)
        self.check(rc == 0, "the updater exited with %s on SIGTERM" % rc)
        self.start_updater()
        s = self.settle("a restart of the updater")
        self.check(s == before, "after a restart the slots are %s, were %s" % (s, before))

    # ------------------------------------------------------------ the campaign

    def run(self):
        print("chaos: seed %d (CHAOS_SEED=%d to replay), %.0f s" % (self.seed, self.seed,
                                                                  self.seconds))
        self.push_good()
        end = time.monotonic() + self.seconds
        kinds, weights = zip(*STEPS)
        while time.monotonic() < end or self.force_push:
            kind = "push_good" if self.force_push else self.rng.choices(kinds, weights)[0]
            self.force_push = False
            self.counts[kind] = self.counts.get(kind, 0) + 1
            getattr(self, kind)()
        return self.summary()

    def summary(self):
        times = sorted(t for _, t in self.recoveries)
        out = {
            "seed": self.seed,
            "seconds": self.seconds,
            "steps": len(self.steps),
            "counts": self.counts,
            "kills": len(times),
            "recovery_median_s": round(statistics.median(times), 3) if times else None,
            "recovery_max_s": round(times[-1], 3) if times else None,
            "recovery_by_kind": {},
        }
        for what, t in self.recoveries:
            out["recovery_by_kind"].setdefault(what, []).append(round(t, 3))
        return out


@pytest.fixture
def chaos_host(procs, tmp_path, pki):
    h = Host(procs, tmp_path, pki, name="updater-0")
    yield h
    if h.proc.alive():
        h.proc.stop(timeout=30)


def test_chaos(chaos_host, releases):
    rels = {"good": [(v, releases.get(v)) for v in GOOD],
            "bad": [(v, releases.get(v, k)) for v, k in BAD]}
    c = Chaos(chaos_host, rels, SEED, SECONDS)
    out = c.run()
    print("chaos: " + json.dumps(out, sort_keys=True))
    print("chaos: steps:\n" + "\n".join(c.steps))
    if os.environ.get("CHAOS_REPORT"):
        with open(os.environ["CHAOS_REPORT"], "w") as f:
            json.dump(dict(out, step_list=c.steps), f, indent=1, sort_keys=True)
    # A campaign that killed nothing checked nothing about recovery.
    assert out["kills"] > 0, out
    logs = [p.stderr() for p in chaos_host.procs]
    try:
        with open(os.path.join(chaos_host.root, "state", "agent.log"), errors="replace") as f:
            logs.append(f.read())
    except OSError:
        pass
    for err in logs:
        assert "Sanitizer" not in err and "runtime error" not in err, err[-5000:]
