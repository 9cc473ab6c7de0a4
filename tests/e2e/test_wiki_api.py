"""wiki/API.md is executable: every ```sh example on the page runs, in page
order, against a real tandem-updater supervising a real tandem-agent on
127.0.0.1, and must answer the status the page promises next to it.

Page conventions (checked here):
  - the first ```sh block only defines the placeholder variables (NAME=value);
    the test does not run it but sets every one of those names itself, and the
    page may not use a placeholder the test does not know;
  - every later ```sh block is one example: each `curl` in it is preceded by a
    comment line `# → NNN` giving the HTTP status that call answers; it runs
    under `set -eu -o pipefail`, so an unknown variable fails it too;
  - a ```json block right after an example is its documented answer: it must
    have the same keys (recursively) as the live answer;
  - every (method, path) in the agent's and the updater's route tables has a
    section, and every status code the sources can answer has a row in the
    page's table of status codes.

The test wraps `curl` in a shell function that adds `-sS -D FILE` (the
response headers go to FILE, the status is read from there), so the examples
stay plain curl commands an operator can paste.
"""

import json
import os
import re
import subprocess


from conftest import ROOT, Proc, bin_path, free_port, wait_until
from release_util import run_make_release

PAGE = os.path.join(ROOT, "wiki", "API.md")
ARROW = re.compile(r"^\s*#\s*→\s*(\d{3})\b")


def page_fences():
    """Every fenced block of the page, in order, as (language, lines)."""
    with open(PAGE, encoding="utf-8") as f:
        text = f.read()
    return [(lang, body.split("\n"))
            for lang, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.M | re.S)]


def page_blocks():
    """The ```sh blocks of the page, in order, as lists of lines."""
    return [lines for lang, lines in page_fences() if lang == "sh"]


def documented_answers():
    """For each ```sh block: the ```json block right after it (its answer), or None."""
    fences = page_fences()
    out = []
    for i, (lang, _) in enumerate(fences):
        if lang != "sh":
            continue
        nxt = fences[i + 1] if i + 1 < len(fences) else None
        out.append(json.loads("\n".join(nxt[1])) if nxt and nxt[0] == "json" else None)
    return out


def shape(v):
    """The keys of V, recursively (lists by their first element); scalars are None."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return None


def definitions(block):
    names = []
    for ln in block:
        s = ln.strip()
        if not s or s.startswith("#"):
            continue
        m = re.match(r"^([A-Z][A-Z0-9_]*)=", s)
        assert m, "the first ```sh block may only define variables, not: %r" % ln
        names.append(m.group(1))
    return names


def expectations(block):
    """Expected statuses, one per curl command of BLOCK, in order."""
    want, pending = [], None
    for ln in block:
        m = ARROW.match(ln)
        if m:
            assert pending is None, "two `# → NNN` lines in a row: %r" % block
            pending = int(m.group(1))
            continue
        if re.match(r"^\s*(\S+=\S+\s+)*curl\b", ln) or re.search(r"\$\(\s*curl\b|\|\s*curl\b", ln):
            assert pending is not None, "curl without a `# → NNN` line before it: %r" % ln
            want.append(pending)
            pending = None
    assert pending is None, "a `# → NNN` line without a curl after it: %r" % block
    return want


def test_page_is_well_formed():
    blocks = page_blocks()
    assert len(blocks) >= 10
    definitions(blocks[0])
    for b in blocks[1:]:
        assert expectations(b), "an example without a curl: %r" % b
    answers = documented_answers()
    assert answers[0] is None and sum(a is not None for a in answers) >= 10


def _sources():
    out = {}
    for p in ("agent/api.c", "updater/api.c", "updater/install.c", "common/httpd.c",
              "common/err.c"):
        with open(os.path.join(ROOT, p)) as f:
            out[p] = f.read()
    return out


def _kind_statuses(src):
    """HTTP status of every error kind (common/err.c's table)."""
    return {k: s for k, s in re.findall(r'\{ (ERR_[A-Z_]+), "\w+", (\d{3}), \d+ \}',
                                        src["common/err.c"])}


def test_every_route_and_status_is_documented():
    src = _sources()
    with open(PAGE, encoding="utf-8") as f:
        page = f.read()
    routes = {("agent", m, p) for m, p in
              re.findall(r'\.method = "(\w+)", \.path = "(/[\w-]*)"', src["agent/api.c"])}
    routes |= {("updater", m, p) for m, p in
               re.findall(r'\.method = "(\w+)", \.path = "(/[\w/-]*)"', src["updater/api.c"])}
    assert len(routes) == 14, routes
    for daemon, method, path in sorted(routes):
        assert re.search(r"^#+ %s: `%s %s`" % (daemon, method, re.escape(path)), page, re.M), \
            "wiki/API.md has no section `%s: %s %s`" % (daemon, method, path)
    codes = set()
    for name, text in src.items():
        if name == "common/err.c":
            continue
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        for ln in text.split("\n"):
            if re.search(r"respond|refuse|reject_status|return [45]\d\d;|status = [45]\d\d;", ln):
                codes |= set(re.findall(r"\b([45]\d\d)\b", ln))
    # The updater's errors answer with the status of their kind (common/err.c's table).
    statuses = _kind_statuses(src)
    for name in ("updater/api.c", "updater/install.c"):
        text = re.sub(r"/\*.*?\*/", "", src[name], flags=re.S)
        codes |= {statuses[k] for k in re.findall(r"\b(ERR_[A-Z_]+)\b", text)
                  if k in statuses and statuses[k] != "200"}
    assert {"400", "403", "404", "405", "409", "413", "422", "500", "503", "507"} <= codes, codes
    for code in sorted(codes):
        assert re.search(r"^\| %s \|" % code, page, re.M), \
            "status %s is not in the table of status codes on wiki/API.md" % code


# ---------------------------------------------------------------- running the page

def make_release(build_dir, out, version, kind="good"):
    run_make_release(build_dir, version, out, kind, timeout=300)
    return out


CURL_WRAPPER = r'''
set -eu -o pipefail
__n=0
curl() {
    __n=$((__n + 1))
    command curl -sS --max-time 60 -D "$TANDEM_HDRS/$__n" "$@"
}
'''


def statuses(hdr_dir):
    """The final HTTP status of each curl call, in call order."""
    out = []
    for name in sorted(os.listdir(hdr_dir), key=int):
        with open(os.path.join(hdr_dir, name), encoding="latin-1") as f:
            codes = [int(m) for m in re.findall(r"^HTTP/\S+ (\d{3})", f.read(), re.M)]
        final = [c for c in codes if c >= 200]
        out.append(final[-1] if final else None)
    return out


def test_examples_run(procs, tmp_path, pki, build_dir):
    blocks = page_blocks()
    answers = documented_answers()
    names = definitions(blocks[0])

    rel = tmp_path / "rel"
    rel.mkdir()
    tarballs = {
        "OLD": make_release(build_dir, str(rel / "tandem-agent-1.0.0.tar.gz"), "1.0.0"),
        "NEW": make_release(build_dir, str(rel / "tandem-agent-1.1.0.tar.gz"), "1.1.0"),
        "BROKEN": make_release(build_dir, str(rel / "tandem-agent-1.2.0-never-ready.tar.gz"),
                               "1.2.0", "never-ready"),
    }

    # The pair, as tests/e2e/test_updater.py starts it; stop_agent_on_exit so
    # stopping the updater leaves nothing running.
    root = str(tmp_path / "install")
    agent_port = free_port()
    agent_conf = str(tmp_path / "agent.conf")
    with open(agent_conf, "w") as f:
        f.write("ca = %s\ncert = %s\nkey = %s\nlisten = 127.0.0.1:%d\n"
                % (pki.ca_crt, pki.agent[0], pki.agent[1], agent_port))
    conf = {
        "listen": "127.0.0.1:0",
        "install_dir": root,
        "ca": pki.ca_crt,
        "cert": pki.updater[0],
        "key": pki.updater[1],
        "agent_config": agent_conf,
        "agent_probe": "127.0.0.1:%d" % agent_port,
        "stop_agent_on_exit": "true",
        "probe_deadline": "3s",
        "probe_stable": "300ms",
        "stop_grace": "2s",
        "max_upload": "8M",
        "max_unpacked": "32M",
        "max_entries": "200",
        "min_free": "1M",
    }
    conf_path = str(tmp_path / "updater.conf")
    with open(conf_path, "w") as f:
        for k, v in conf.items():
            f.write("%s = %s\n" % (k, v))
    upd = Proc([bin_path("tandem-updater"), "--config", conf_path], str(tmp_path / "logs"),
               name="updater")
    procs.append(upd)
    port = int(upd.wait_line(r"^LISTENING port=(\d+)$", timeout=30).group(1))

    values = {
        "CA": pki.ca_crt,
        "CERT": pki.master[0],
        "KEY": pki.master[1],
        "HOST_CERT": pki.agent[0],
        "HOST_KEY": pki.agent[1],
        "UPDATER": "https://127.0.0.1:%d" % port,
        "AGENT": "https://127.0.0.1:%d" % agent_port,
    }
    values.update(tarballs)
    assert sorted(names) == sorted(values), \
        "the page's placeholders %s are not the ones this test sets %s" % (sorted(names),
                                                                        sorted(values))
    env = {k: v for k, v in os.environ.items() if k not in values}
    env.update(values)

    transcript = []
    try:
        for i, block in enumerate(blocks[1:], 1):
            want = expectations(block)
            hdrs = tmp_path / ("hdrs%d" % i)
            hdrs.mkdir()
            env["TANDEM_HDRS"] = str(hdrs)
            script = CURL_WRAPPER + "\n".join(block)
            r = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                               env=env, cwd=str(tmp_path), timeout=60)
            got = statuses(str(hdrs))
            transcript.append("### example %d\n%s\n--- got %s, exit %d\n%s%s"
                              % (i, "\n".join(block), got, r.returncode, r.stdout, r.stderr))
            assert r.returncode == 0, "example %d failed (exit %d):\n%s\n%s\n%s" % (
                i, r.returncode, "\n".join(block), r.stdout, r.stderr)
            assert got == want, "example %d answered %s, the page says %s:\n%s\n%s" % (
                i, got, want, "\n".join(block), r.stdout)
            doc = answers[i]
            if doc is not None:
                live = json.loads(r.stdout)
                if "history" in doc:  # the page shows the newest entries only
                    live["history"] = live["history"][-len(doc["history"]):]
                assert shape(doc) == shape(live), \
                    "example %d: the page's answer has other keys than the live one:\n%s\n%s" % (
                        i, json.dumps(doc), r.stdout)
    finally:
        out = os.environ.get("TANDEM_API_TRANSCRIPT")
        if out:
            with open(out, "w") as f:
                f.write("\n".join(transcript))
        status = upd.stop(timeout=20)
        assert status == 0, upd.stderr()[-3000:]
    # stop_agent_on_exit: the agent went with the updater.
    with open(os.path.join(root, "state", "agent.json")) as f:
        apid = json.load(f)["pid"]
    wait_until(lambda: not os.path.exists("/proc/%d" % apid) or
               open("/proc/%d/stat" % apid).read().split()[2] == "Z", 10, "the agent to stop")

