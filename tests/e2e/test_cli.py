"""End-to-end tests of the `tandem` command line itself, run as a person would:
errors in words (and as JSON under --json) with the documented exit codes, a
master home that is never created by accident, global options anywhere on the
line, help that lists every command and option the parser accepts (checked
against the parser and wiki/Remote-Updates.md), and bash completion. No daemon
is needed: every case is decided before any host is contacted."""

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, bin_path

WIKI = os.path.join(ROOT, "wiki", "Remote-Updates.md")
COMPLETION = os.path.join(ROOT, "packaging", "bash-completion", "tandem")


def tandem(*args, env=None, check=None, cwd=None):
    """Run tandem ARGS exactly as given (no --home added)."""
    full_env = dict(os.environ)
    full_env.pop("TANDEM_HOME", None)
    if env:
        full_env.update(env)
    r = subprocess.run([bin_path("tandem")] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=60, env=full_env, cwd=cwd)
    if check is not None and r.returncode != check:
        pytest.fail("tandem %s: exit %d, expected %d\nstdout:\n%s\nstderr:\n%s"
                    % (" ".join(map(str, args)), r.returncode, check, r.stdout, r.stderr))
    return r


def wire_kinds():
    """The wire names of common/err.c's one table."""
    with open(os.path.join(ROOT, "common", "err.c")) as f:
        return set(re.findall(r'\{ ERR_[A-Z_]+, "([a-z_]+)", \d+, \d+ \}', f.read()))


def json_error(r):
    """The {"error":{...}} object that is all of R's stdout."""
    doc = json.loads(r.stdout)
    assert list(doc) == ["error"], r.stdout
    assert sorted(doc["error"]) == ["kind", "message"], r.stdout
    assert doc["error"]["kind"] in wire_kinds(), r.stdout
    return doc["error"]


def assert_plain_error(r):
    """Errors are 'tandem: error: ...' lines, never timestamped log lines."""
    assert r.stderr.startswith("tandem: error: "), r.stderr
    assert not re.search(r"^\d{4}-\d\d-\d\dT", r.stderr, re.M), r.stderr
    assert "warn:" not in r.stderr, r.stderr


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    h = str(tmp_path_factory.mktemp("cli") / "home")
    tandem("--home", h, "pki", "init", check=0)
    return h


# ---------------------------------------------------------------- help and the parser

def commands_of(text):
    """The first column of the Commands section of a help TEXT, as tuples of words."""
    section = text.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    return [tuple(re.split(r"\s{2,}", line.strip())[0].split()) for line in section.splitlines()]


def main_commands():
    """Every command that runs, as the words after "tandem": ("swarm", "update"),
    ("release", "keyring", "init")."""
    return commands_of(tandem("--help", check=0).stdout)


def table_commands():
    return main_commands()


def help_options(*path):
    """{"--name": takes_value} from the Options section of a command's help."""
    text = tandem(*path, "--help", check=0).stdout
    section = text.split("\nOptions:\n", 1)[1].split("\n\n", 1)[0]
    opts = {}
    for line in section.splitlines():
        m = re.match(r"^  (?:-[A-Za-z], )?(--[a-z][a-z-]*)( \S+)?", line)
        if m:
            opts[m.group(1)] = m.group(2) is not None
    return opts


def wiki_reference():
    """{(words...): {"--name", ...}} from the wiki's command reference table."""
    with open(WIKI) as f:
        text = f.read()
    section = text.split("\n## Command reference\n", 1)[1].split("\n## ", 1)[0]
    ref = {}
    for line in section.splitlines():
        m = re.match(r"^\| `tandem ([a-z]+(?: [a-z-]+){1,2})` \|", line)
        if m:
            opts_cell = re.split(r"(?<!\\)\|", line)[3]
            ref[tuple(m.group(1).split())] = set(re.findall(r"`(?:-[A-Za-z]/)?(--[a-z-]+)",
                                                            opts_cell))
    return ref


def test_help_lists_every_command_and_option_the_parser_accepts(home, tmp_path):
    every = main_commands()
    # The commands once missing from the help are there, and each group lists the same ones.
    for c in (("swarm", "show"), ("swarm", "decommission"), ("swarm", "releases"),
              ("swarm", "history"), ("swarm", "update"), ("pki", "init"), ("release", "pack"),
              ("release", "keyring", "init"), ("swarm", "keyring", "push"), ("pki", "revoke"),
              ("backup", "restore")):
        assert c in every, every
    cmds = table_commands()
    for group in sorted({c[0] for c in every}):
        listed = [w[0] for w in commands_of(tandem(group, "--help", check=0).stdout)]
        assert listed == sorted(set(listed), key=listed.index)
        assert set(listed) == {c[1] for c in every if c[0] == group}, group
    for parent in sorted({c[:2] for c in cmds if len(c) == 3}):
        listed = [w[0] for w in commands_of(tandem(*parent, "--help", check=0).stdout)]
        assert listed == [c[2] for c in cmds if c[:2] == parent], parent
    ref = wiki_reference()
    assert sorted(ref) == sorted(cmds), "wiki/Remote-Updates.md command reference"
    for cmd in cmds:
        words = " ".join(cmd)
        text = tandem(*cmd, "--help", check=0).stdout
        assert text.startswith("usage: tandem %s" % words), text
        # What it does, its options, its exit status (0, 1, 2) and one example.
        assert text.split("\n\n")[1].strip(), text
        for part in ("\nOptions:\n", "\nExit status:\n  0  ", "\n  1  ", "\n  2  ",
                     "\nExample:\n  "):
            assert part in text, (cmd, part)
        example = text.split("\nExample:\n", 1)[1]
        assert "tandem" in example and words in example, example
        opts = help_options(*cmd)
        assert "--json" in opts and "--help" in opts
        own = set(opts) - {"--json", "--help"}
        assert own == ref[cmd], (cmd, own, ref[cmd])
        # Every option the help lists is one the parser accepts (with a value if it
        # says so); a name it does not list is refused.
        for opt, takes_value in opts.items():
            if opt in ("--help",):
                continue
            args = list(cmd) + [opt] + (["1"] if takes_value else [])
            r = tandem("--home", home, *args, cwd=str(tmp_path))
            assert "unknown option" not in r.stderr and "needs a value" not in r.stderr, \
                (args, r.stderr)
        r = tandem("--home", home, *cmd, "--no-such-option", check=2)
        assert "unknown option '--no-such-option'" in r.stderr
        assert "Try 'tandem %s --help'." % words in r.stderr


def test_main_help_and_exit_codes_documented():
    text = tandem("--help", check=0).stdout
    for opt in ("--home DIR", "--json", "-v, --verbose", "-h, --help", "-V, --version"):
        assert opt in text
    status = text.split("\nExit status:\n", 1)[1]
    assert status.startswith("  0  ") and "\n  1  " in status and "\n  2  usage error" in status
    with open(WIKI) as f:
        wiki = f.read()
    for code in ("| `0` |", "| `1` |", "| `2` | usage error"):
        assert code in wiki
    # Usage errors are 2, with or without a group.
    assert tandem(check=2).stderr.startswith("usage: tandem")
    assert "GROUP is missing" in tandem(check=2).stderr
    assert "COMMAND is missing" in tandem("swarm", check=2).stderr
    r = tandem("nope", check=2)
    assert "unknown command group 'nope'" in r.stderr and "Try 'tandem --help'." in r.stderr
    r = tandem("swarm", "nope", check=2)
    assert "unknown command 'nope'" in r.stderr and "Try 'tandem swarm --help'." in r.stderr


# ---------------------------------------------------------------- errors

def test_errors_in_words_with_json_and_exit_codes(home, tmp_path):
    # A missing certificate file: the file and what is wrong, no library code.
    r = tandem("--home", home, "pki", "show", "/nonexistent/x.crt", check=1)
    assert_plain_error(r)
    assert "cannot read /nonexistent/x.crt: No such file or directory" in r.stderr, r.stderr
    assert "PK -" not in r.stderr and "0x" not in r.stderr
    assert r.stdout == ""
    r = tandem("--home", home, "pki", "show", "/nonexistent/x.crt", "--json", check=1)
    e = json_error(r)
    assert e["kind"] == "not_found" and "cannot read /nonexistent/x.crt" in e["message"]
    junk = tmp_path / "junk.crt"
    junk.write_text("not a certificate\n")
    r = tandem("--home", home, "--json", "pki", "show", str(junk), check=1)
    assert json_error(r)["kind"] == "bad_format"
    assert "%s does not hold a PEM or DER certificate" % junk in r.stderr
    # Usage errors exit 2, in words, with the hint to the command's help.
    r = tandem("--home", home, "pki", "issue", "x", "--out", "d", check=2)
    assert_plain_error(r)
    assert "pki issue: --role is required" in r.stderr
    assert "Try 'tandem pki issue --help'." in r.stderr
    e = json_error(tandem("--home", home, "pki", "issue", "x", "--out", "d", "--json", check=2))
    assert e["kind"] == "usage" and "--role" in e["message"]
    for args in (["pki", "show"], ["pki", "status", "extra"],
                 ["pki", "issue", "h", "--role", "boss", "--out", "d"],
                 ["pki", "revoke"], ["pki", "crl", "--next-update", "soon"],
                 ["backup", "create", str(tmp_path / "b")],
                 ["release", "pack"]):
        r = tandem("--home", home, *args, "--json", check=2)
        assert json_error(r)["kind"] == "usage", args
        assert_plain_error(r)
    # Failures exit 1 with their kind.
    e = json_error(tandem("--home", home, "pki", "revoke", "--host", "nosuch", "--json",
                          check=1))
    assert "no certificate of host" in e["message"]
    e = json_error(tandem("--home", home, "release", "pack", str(tmp_path / "missing"),
                          "--json", check=1))
    assert "missing" in e["message"], e
    # Main-level errors too, wherever --json stands.
    assert json_error(tandem("nope", "--json", check=2))["kind"] == "usage"
    assert json_error(tandem("--json", "pki", "status", "--frobnicate", check=2))["kind"] == \
        "usage"
    # With --json, a success is one object and nothing else.
    doc = json.loads(tandem("--home", home, "pki", "status", "--json", check=0).stdout)
    assert doc["ca"]["state"] == "ok"
    # Notes are plain lines too, not daemon log lines.
    r = tandem("--home", home, "pki", "crl", check=0)
    assert re.match(r"tandem: CRL number \d+ written to ", r.stderr), r.stderr


# ---------------------------------------------------------------- the home

# Commands that never read a home (pki init creates one).
HOMELESS = [("pki", "init"), ("release", "pack"), ("release", "keygen"), ("release", "sign"),
            ("release", "keyring", "sign"), ("backup", "restore")]


def test_home_is_never_created_by_accident(home, tmp_path):
    crt = os.path.join(home, "ca", "ca.crt")
    keys = tmp_path / "keys"
    tandem("release", "keygen", "--out", keys, "--name", "root", check=0)
    tandem("release", "keygen", "--out", keys, "--name", "rel", check=0)
    root, rel = str(keys / "root.key"), str(keys / "rel.pub")
    lines = {
        ("pki", "issue"): ["pki", "issue", "web1", "--role", "agent", "--out", tmp_path / "o"],
        ("pki", "show"): ["pki", "show", crt],
        ("swarm", "rollout", "list"): ["swarm", "rollout", "list"],
        ("swarm", "rollout", "status"): ["swarm", "rollout", "status", "3f9c"],
        ("swarm", "rollout", "watch"): ["swarm", "rollout", "watch", "3f9c"],
        ("swarm", "rollout", "pause"): ["swarm", "rollout", "pause", "3f9c"],
        ("swarm", "rollout", "resume"): ["swarm", "rollout", "resume", "3f9c"],
        ("swarm", "rollout", "abort"): ["swarm", "rollout", "abort", "3f9c", "--revert"],
        ("swarm", "rollout", "events"): ["swarm", "rollout", "events", "3f9c"],
        ("swarm", "label"): ["swarm", "label", "web1", "a=b"],
        ("swarm", "target", "set"): ["swarm", "target", "set", "--hosts", "web1",
                                     "--release", crt],
        ("swarm", "target", "list"): ["swarm", "target", "list"],
        ("swarm", "target", "clear"): ["swarm", "target", "clear", "--hosts", "all"],
        ("swarm", "converge"): ["swarm", "converge", "--all"],
        ("swarm", "renew"): ["swarm", "renew", "--all"],
        ("swarm", "crl", "push"): ["swarm", "crl", "push", "--all"],
        ("pki", "status"): ["pki", "status"],
        ("pki", "revoke"): ["pki", "revoke", "--host", "web1"],
        ("pki", "crl"): ["pki", "crl"],
        ("pki", "renew-master"): ["pki", "renew-master"],
        ("pki", "ca-rotate"): ["pki", "ca-rotate", "begin"],
        ("backup", "create"): ["backup", "create", tmp_path / "b", "--no-encrypt"],
        ("release", "verify"): ["release", "verify", crt],
        ("release", "keyring", "init"): ["release", "keyring", "init", "--root-key", root,
                                         "--add", rel],
        ("release", "keyring", "rotate"): ["release", "keyring", "rotate", "--root-key", root],
        ("release", "keyring", "show"): ["release", "keyring", "show"],
        ("release", "keyring", "install"): ["release", "keyring", "install", crt],
        ("swarm", "enroll"): ["swarm", "enroll", "web1", "--address", "127.0.0.1"],
        ("swarm", "list"): ["swarm", "list"],
        ("swarm", "show"): ["swarm", "show", "web1"],
        ("swarm", "decommission"): ["swarm", "decommission", "web1"],
        ("swarm", "update"): ["swarm", "update", "--all", "--dry-run"],
        ("swarm", "rollback"): ["swarm", "rollback", "--host", "web1"],
        ("swarm", "status"): ["swarm", "status"],
        ("swarm", "keyring", "push"): ["swarm", "keyring", "push", "--all"],
        ("swarm", "releases"): ["swarm", "releases", "--host", "web1"],
        ("swarm", "history"): ["swarm", "history", "--host", "web1"],
    }
    # Every command is covered: all but those that never read a home refuse a missing one.
    assert sorted(list(lines) + HOMELESS) == sorted(main_commands())
    typo = tmp_path / "flet"
    for key, args in lines.items():
        for how, env, where in (
                ("--home", None, str(typo)),
                ("TANDEM_HOME", {"TANDEM_HOME": str(typo)}, str(typo)),
                ("the default", {"HOME": str(tmp_path / "user")},
                 str(tmp_path / "user" / ".tandem"))):
            argv = (["--home", str(typo)] if how == "--home" else []) + args
            r = tandem(*argv, env=env, check=1)
            assert_plain_error(r)
            assert "no master home at %s" % where in r.stderr, (key, how, r.stderr)
            assert how in r.stderr, (key, how, r.stderr)
            assert not os.path.exists(where), (key, how)
            e = json_error(tandem(*argv, "--json", env=env, check=1))
            assert e["kind"] == "not_found" and where in e["message"]
    # A wrong command line is said first (exit 2), before the home is looked at.
    for args in (["pki", "status", "--frobnicate"], ["pki", "show"], ["pki", "crl", "x"],
                 ["backup", "create"], ["pki", "issue", "-z", "n"]):
        r = tandem("--home", typo, *args, check=2)
        assert "no master home" not in r.stderr, r.stderr
    # A directory that is not a home (no CA) is refused as well, and left untouched.
    plain = tmp_path / "plain"
    plain.mkdir()
    r = tandem("--home", plain, "swarm", "list", check=1)
    assert "is not a master home: it has no ca/ca.crt" in r.stderr, r.stderr
    assert os.listdir(plain) == []
    # pki show names no home when told the master CN; release pack needs none.
    r = tandem("--home", typo, "pki", "show", crt, "--master-cn", "tandem-master", check=0)
    assert "role: ca" in r.stdout
    assert not typo.exists()
    # Only pki init creates one.
    tandem("--home", typo, "pki", "init", check=0)
    assert (typo / "ca" / "ca.crt").exists()
    tandem("--home", typo, "swarm", "list", check=0)


# ---------------------------------------------------------------- global options anywhere

def test_global_options_before_or_after_the_command(tmp_path):
    h = tmp_path / "h"
    # The case: --home after the command.
    r = tandem("pki", "init", "--home", h, "--json", check=0)
    assert json.loads(r.stdout)["ca_cert"] == str(h / "ca" / "ca.crt")
    want = json.loads(tandem("--home", h, "pki", "status", "--json", check=0).stdout)
    for argv in (["pki", "status", "--home", h, "--json"],
                 ["pki", "--home", h, "status", "--json"],
                 ["--json", "pki", "status", "--home=%s" % h],
                 ["pki", "status", "--json", "-v", "--home", h],
                 ["-v", "pki", "--json", "status", "--hom", h]):
        r = tandem(*argv, check=0)
        assert json.loads(r.stdout)["ca"] == want["ca"], argv
    # Before a swarm command (those still read their own options) they work too.
    assert json.loads(tandem("--home", h, "--json", "swarm", "list", check=0).stdout) == \
        {"hosts": []}
    # --help anywhere is the command's help; -V the version.
    assert tandem("pki", "issue", "--role", "agent", "--help", check=0).stdout.startswith(
        "usage: tandem pki issue")
    assert tandem("swarm", "--help", check=0).stdout.startswith("usage: tandem [global options] "
                                                                  "swarm COMMAND")
    assert tandem("pki", "status", "-V", check=0).stdout.startswith("tandem ")
    # A command's own option with a global option's name is the command's.
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    agent = tree / "bin" / "tandem-agent"
    agent.write_text("#!/bin/sh\nexit 0\n")
    agent.chmod(0o755)
    out = tmp_path / "r.tar.gz"
    r = tandem("release", "pack", tree, "--version", "1.2.3", "-o", out, "--json", check=0)
    assert json.loads(r.stdout)["version"] == "1.2.3"
    # An option's value is never taken for a global option, and "--" ends the options.
    r = tandem("--home", h, "pki", "issue", "web1", "--role", "agent", "--out", "--home",
               "--json", cwd=str(tmp_path), check=0)
    assert json.loads(r.stdout)["cert"] == "--home/web1.crt"
    r = tandem("--home", h, "pki", "issue", "--role", "agent", "--out", tmp_path / "o", "--",
               "--json", check=2)
    assert "host name" in r.stderr and r.stdout == ""
    # Global option errors are usage errors.
    assert "option '--home' needs a value" in tandem("pki", "status", "--home", check=2).stderr
    assert "--home needs a non-empty directory" in tandem("--home=", "swarm", "list",
                                                            check=2).stderr
    assert "takes no value" in tandem("--json=yes", "swarm", "list", check=2).stderr


# ---------------------------------------------------------------- bash completion

def complete(words, env=None):
    """COMPREPLY of the tandem completion for the command line WORDS (last one being typed)."""
    script = ('source %s; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _tandem; '
              'printf "%%s\\n" "${COMPREPLY[@]}"' % COMPLETION)
    full_env = dict(os.environ)
    full_env["PATH"] = os.path.dirname(bin_path("tandem")) + ":" + full_env["PATH"]
    full_env.pop("TANDEM_HOME", None)
    if env:
        full_env.update(env)
    r = subprocess.run(["bash", "-c", script, "tandem"] + [str(w) for w in words],
                       capture_output=True, text=True, timeout=60, env=full_env, check=True)
    return sorted(w for w in r.stdout.splitlines() if w)


def test_bash_completion(tmp_path):
    h = tmp_path / "user" / ".tandem"
    tandem("--home", h, "pki", "init", check=0)
    for name in ("web1", "web2", "db1"):
        tandem("--home", h, "swarm", "enroll", name, "--address", "127.0.0.1", check=0)
    cmds = main_commands()
    assert complete(["tandem", ""]) == sorted({c[0] for c in cmds})
    for group in {c[0] for c in cmds}:
        assert complete(["tandem", group, ""]) == sorted({c[1] for c in cmds if c[0] == group})
    assert complete(["tandem", "release", "keyring", ""]) == \
        sorted(c[2] for c in cmds if c[:2] == ("release", "keyring"))
    assert complete(["tandem", "sw"]) == ["swarm"]
    assert complete(["tandem", "swarm", "up"]) == ["update"]
    # Options: exactly the command's (as its help and parser have them) and the globals
    # (a command of each group and depth; the help test covers every command's list).
    for cmd in (("pki", "revoke"), ("pki", "issue"), ("release", "pack"),
                ("release", "keyring", "rotate"), ("backup", "create")):
        want = sorted(set(help_options(*cmd)) | {"--home", "--verbose"})
        assert complete(["tandem"] + list(cmd) + ["--"]) == want, cmd
    # An option's value that looks like a command word is a value.
    assert complete(["tandem", "--home", "status", "pki", "status", "--"]) == \
        ["--help", "--home", "--json", "--verbose", "--warn-days"]
    assert complete(["tandem", "pki", "revoke", "--ne"]) == ["--next-update"]
    assert complete(["tandem", "--"]) == ["--help", "--home", "--json", "--verbose", "--version"]
    # Host names from the registry of the home on the line (or $HOME's default).
    assert complete(["tandem", "--home", h, "swarm", "update", "--host", ""]) == \
        ["db1", "web1", "web2"]
    assert complete(["tandem", "swarm", "status", "--home", h, "--host", "w"]) == \
        ["web1", "web2"]
    assert complete(["tandem", "--home=%s" % h, "swarm", "show", ""]) == ["db1", "web1", "web2"]
    assert complete(["tandem", "swarm", "decommission", "d"],
                    env={"HOME": str(tmp_path / "user")}) == ["db1"]
    # Values with a fixed set, files where a file is expected.
    assert complete(["tandem", "pki", "issue", "--role", ""]) == ["agent", "master", "updater"]
    (tmp_path / "rel-1.tar.gz").write_text("x")
    assert complete(["tandem", "swarm", "update", "--release", tmp_path / "rel-"]) == \
        [str(tmp_path / "rel-1.tar.gz")]
    # A missing home completes nothing and creates nothing.
    assert complete(["tandem", "--home", tmp_path / "none", "swarm", "show", ""]) == []
    assert not (tmp_path / "none").exists()


# ---------------------------------------------------------------- the release, checked first

def tarball(path, files, gzip=True):
    """A tarball at PATH of FILES {name: (mode, bytes)}."""
    import io
    import tarfile
    with tarfile.open(str(path), "w:gz" if gzip else "w") as tf:
        for name, (mode, data) in files.items():
            info = tarfile.TarInfo(name)
            info.mode = mode
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return str(path)


class Listener:
    """A TCP socket on 127.0.0.1 that counts the connections made to it."""

    def __init__(self):
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            c.close()

    def close(self):
        self.sock.close()


def test_release_checked_before_anything_is_sent(tmp_path):
    h = str(tmp_path / "home")
    tandem("--home", h, "pki", "init", check=0)
    updater = Listener()
    try:
        tandem("--home", h, "swarm", "enroll", "web1", "--address", "127.0.0.1", "--updater",
               "--updater-port", updater.port, check=0)
        manifest = b'{"name":"a","version":"1.0","entrypoint":"bin/agent"}'
        good = tarball(tmp_path / "good.tar.gz", {"manifest.json": (0o644, manifest),
                                                  "bin/agent": (0o755, b"#!/bin/sh\n")})
        cases = {
            "not a gzip tar archive": (tmp_path / "notes.txt").as_posix(),
            "not a gzip-compressed archive": tarball(tmp_path / "plain.tar", {
                "manifest.json": (0o644, manifest), "bin/agent": (0o755, b"x")}, gzip=False),
            "release has no readable manifest.json": tarball(tmp_path / "nomf.tar.gz", {
                "bin/agent": (0o755, b"x")}),
            "entrypoint: 'bin/agent' is not an executable file": tarball(
                tmp_path / "noexec.tar.gz", {"manifest.json": (0o644, manifest),
                                             "bin/agent": (0o644, b"x")}),
            "entrypoint: 'bin/agent' is missing from the release": tarball(
                tmp_path / "noentry.tar.gz", {"manifest.json": (0o644, manifest)}),
            "'..' in path": tarball(tmp_path / "evil.tar.gz", {
                "manifest.json": (0o644, manifest), "bin/agent": (0o755, b"x"),
                "../escape": (0o644, b"x")}),
        }
        with open(cases["not a gzip tar archive"], "w") as f:
            f.write("these are my notes, not a release\n")
        for words, rel in cases.items():
            for extra in ([], ["--dry-run"]):
                r = tandem("--home", h, "swarm", "update", "--all", "--release", rel, *extra,
                           check=1)
                assert_plain_error(r)
                assert words in r.stderr, (rel, extra, r.stderr)
                assert "nothing was sent" in r.stderr and "would go to" not in r.stdout
                e = json_error(tandem("--home", h, "swarm", "update", "--all", "--release",
                                      rel, *extra, "--json", check=1))
                assert words in e["message"] and e["kind"] in ("bad_format", "unsafe_archive")
        # target set checks it the same way, and records nothing.
        r = tandem("--home", h, "swarm", "target", "set", "--hosts", "all", "--release",
                   cases["not a gzip tar archive"], check=1)
        assert "not a gzip tar archive" in r.stderr
        targets = json.loads(tandem("--home", h, "--json", "swarm", "target", "list",
                                    check=0).stdout)["targets"]
        assert [t["host"] for t in targets] == ["web1"] and targets[0]["sha256"] is None, targets
        # Not one connection reached the host; no rollout was recorded.
        assert updater.accepted == 0
        assert json.loads(tandem("--home", h, "--json", "swarm", "rollout", "list",
                                 check=0).stdout)["rollouts"] == []
        # --include-self wants an updater release; the agent release is refused for it.
        r = tandem("--home", h, "swarm", "update", "--all", "--release", good,
                   "--include-self", check=1)
        assert "updater_entrypoint" in r.stderr and updater.accepted == 0
        # A signature file that describes other bytes is refused the same way (which keys a
        # host trusts is its keyring's to say; what the statement says is checked here).
        keys = tmp_path / "keys"
        tandem("release", "keygen", "--out", keys, "--name", "rel", check=0)
        tandem("release", "sign", good, "--key", keys / "rel.key", "--security-version", "1",
               check=0)
        other = tarball(tmp_path / "other.tar.gz", {"manifest.json": (0o644, manifest),
                                                    "bin/agent": (0o755, b"#!/bin/sh\n# 2\n")})
        shutil.copy(good + ".tsig", other + ".tsig")
        e = json_error(tandem("--home", h, "swarm", "update", "--all", "--release", other,
                              "--json", check=1))
        assert e["kind"] == "statement_mismatch" and "signature of other" in e["message"], e
        assert updater.accepted == 0
        # A good release passes the check: the dry run asks the host (and finds no updater).
        r = tandem("--home", h, "swarm", "update", "--all", "--release", good, "--dry-run")
        assert "would go to 1 host(s)" in r.stdout, r.stdout + r.stderr
        assert updater.accepted >= 1
    finally:
        updater.close()
