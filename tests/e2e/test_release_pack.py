"""End-to-end tests of `tandem release pack`: the real CLI, checked with
independent tools (GNU tar, gzip, hashlib, openssl-made keys)."""

import glob
import hashlib
import json
import os
import shutil
import stat
import subprocess
import time


from conftest import bin_path, run
from release_util import tree_listing


def tandem(*args, cwd=None, env_extra=None):
    env = dict(os.environ)
    env["TZ"] = "UTC"
    if env_extra:
        env.update(env_extra)
    return subprocess.run([bin_path("tandem")] + list(args), capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=env)


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(path, mode)


def make_tree(root):
    """A plausible release: the real agent binary, a shared library that holds
    PEM header strings (not a key), config, a symlink, an empty directory."""
    write(os.path.join(root, "bin", "tandem-agent"), open(bin_path("tandem-agent"), "rb").read(),
          0o700)
    libs = sorted(glob.glob("/usr/lib/*/libmbedcrypto.so.*"))
    if libs:
        write(os.path.join(root, "lib", "libmbedcrypto.so"), open(libs[0], "rb").read(), 0o755)
    write(os.path.join(root, "etc", "agent.conf"), "listen = :8765\n", 0o600)
    write(os.path.join(root, "share", "doc", "README"), "hello\n", 0o664)
    os.makedirs(os.path.join(root, "var", "empty"))
    os.symlink("../etc/agent.conf", os.path.join(root, "share", "agent.conf"))


def pack_ok(tree, out, *extra):
    r = tandem("release", "pack", tree, "-o", out, *extra)
    assert r.returncode == 0, r.stderr
    return r


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def test_pack_twice_gives_identical_bytes(tmp_path):
    tree = str(tmp_path / "tree")
    make_tree(tree)
    out1, out2 = str(tmp_path / "r1.tar.gz"), str(tmp_path / "r2.tar.gz")
    r1 = pack_ok(tree, out1, "--version", "1.4.0")
    sha, path = r1.stdout.split()
    assert path == out1
    assert sha == sha256_file(out1)

    # Touch every mtime (files, dirs, and the symlink itself) and pack again.
    for d, dirs, files in os.walk(tree):
        for n in dirs + files:
            os.utime(os.path.join(d, n), (1e9, 1.5e9), follow_symlinks=False)
    os.utime(tree, (2e9, 2e9))
    r2 = pack_ok(tree, out2, "--version", "1.4.0", "--json")
    info = json.loads(r2.stdout)
    assert info["sha256"] == sha
    assert info["path"] == out2
    assert info["version"] == "1.4.0"
    assert info["size"] == os.path.getsize(out2)
    assert open(out1, "rb").read() == open(out2, "rb").read()

    # A copy of the tree elsewhere (new inodes, new times) gives the same bytes too.
    copy = str(tmp_path / "copy")
    shutil.copytree(tree, copy, symlinks=True)
    out3 = str(tmp_path / "r3.tar.gz")
    r3 = pack_ok(copy, out3, "--version", "1.4.0")
    assert r3.stdout.split()[0] == sha

    # Independent tools accept it; the gzip header has no name and no time.
    run(["gzip", "-t", out1])
    head = open(out1, "rb").read(10)
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] & 0x08 == 0, "gzip FNAME flag set"
    assert head[4:8] == b"\0\0\0\0", "gzip MTIME set"


def test_tar_listing_sorted_root_owned_epoch(tmp_path):
    tree = str(tmp_path / "tree")
    make_tree(tree)
    out = str(tmp_path / "r.tar.gz")
    r = pack_ok(tree, out, "--json")
    info = json.loads(r.stdout)
    listing = run(["tar", "-tzvf", out], env=dict(os.environ, TZ="UTC")).stdout.splitlines()
    assert len(listing) == info["entries"]
    names = []
    for line in listing:
        f = line.split()
        perms, owner, date = f[0], f[1], f[3]
        assert owner == "0/0", line
        assert date == "1970-01-01", line
        name = f[5]
        names.append(name.rstrip("/"))
        if perms.startswith("d"):
            assert perms == "drwxr-xr-x", line
        elif perms.startswith("l"):
            assert perms == "lrwxrwxrwx", line
            assert f[6:] == ["->", "../etc/agent.conf"], line
    assert names == sorted(names, key=lambda s: s.encode())
    modes = {line.split()[5].rstrip("/"): line.split()[0] for line in listing}
    assert modes["bin/tandem-agent"] == "-rwxr-xr-x"
    assert modes["etc/agent.conf"] == "-rw-r--r--"
    assert modes["share/doc/README"] == "-rw-r--r--"
    assert modes["manifest.json"] == "-rw-r--r--"
    assert "var/empty" in modes
    if glob.glob("/usr/lib/*/libmbedcrypto.so.*"):
        # Holds "-----BEGIN EC PRIVATE KEY-----" as a C string, which is not a key.
        assert modes["lib/libmbedcrypto.so"] == "-rwxr-xr-x"

    # Extract with GNU tar: content and manifest are what we packed.
    dest = tmp_path / "x"
    dest.mkdir()
    run(["tar", "-xzf", out, "-C", str(dest)])
    assert (dest / "share" / "doc" / "README").read_text() == "hello\n"
    assert (dest / "bin" / "tandem-agent").read_bytes() == open(bin_path("tandem-agent"),
                                                                  "rb").read()
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest == {"name": "tandem-agent", "version": "unversioned",
                        "entrypoint": "bin/tandem-agent",
                        "preflight": ["bin/tandem-agent", "--self-test"]}
    assert info["version"] == "unversioned"


def test_existing_manifest_kept_and_updater_entrypoint(tmp_path):
    tree = str(tmp_path / "tree")
    make_tree(tree)
    write(os.path.join(tree, "bin", "tandem-updater"), "#!/bin/sh\n", 0o755)
    out = str(tmp_path / "u.tar.gz")
    pack_ok(tree, out, "--version", "5")
    m = json.loads(run(["tar", "-xOzf", out, "manifest.json"]).stdout)
    assert m["updater_entrypoint"] == "bin/tandem-updater"
    assert m["version"] == "5"

    write(os.path.join(tree, "manifest.json"),
          json.dumps({"name": "edge", "version": "0.1", "entrypoint": "bin/tandem-agent",
                      "labels": {"team": "ops"}}))
    pack_ok(tree, out)
    m = json.loads(run(["tar", "-xOzf", out, "manifest.json"]).stdout)
    assert m == {"name": "edge", "version": "0.1", "entrypoint": "bin/tandem-agent",
                 "labels": {"team": "ops"}}
    pack_ok(tree, out, "--version", "0.2")
    m = json.loads(run(["tar", "-xOzf", out, "manifest.json"]).stdout)
    assert m["version"] == "0.2" and m["labels"] == {"team": "ops"}


def test_readiness_declared(tmp_path):
    """--readiness writes the manifest's "readiness" (what make release does for
    tandem-agent); a source manifest keeps its own unless --readiness says
    otherwise; a bad value is a usage error."""
    tree = str(tmp_path / "tree")
    make_tree(tree)
    out = str(tmp_path / "r.tar.gz")
    pack_ok(tree, out, "--readiness", "ready-fd")
    m = json.loads(run(["tar", "-xOzf", out, "manifest.json"]).stdout)
    assert m["readiness"] == "ready-fd"
    write(os.path.join(tree, "manifest.json"),
          json.dumps({"name": "edge", "version": "0.1", "entrypoint": "bin/tandem-agent",
                      "readiness": "ready-fd"}))
    pack_ok(tree, out)
    assert json.loads(run(["tar", "-xOzf", out, "manifest.json"]).stdout)["readiness"] == \
        "ready-fd"
    pack_ok(tree, out, "--readiness", "sd-notify")
    assert json.loads(run(["tar", "-xOzf", out, "manifest.json"]).stdout)["readiness"] == \
        "sd-notify"
    r = tandem("release", "pack", tree, "-o", out, "--readiness", "Ready FD")
    assert r.returncode == 2 and "--readiness" in r.stderr, r.stderr


def test_private_key_refused_naming_the_file(tmp_path):
    tree = str(tmp_path / "tree")
    make_tree(tree)
    key = os.path.join(tree, "etc", "server.key")
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", key])
    # The same kind of key hidden under an innocent name.
    hidden = os.path.join(tree, "share", "doc", "notes.txt")
    run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024",
         "-out", hidden])
    write(os.path.join(tree, ".env"), "SECRET=1\n")
    out = str(tmp_path / "bad.tar.gz")
    r = tandem("release", "pack", tree, "-o", out)
    assert r.returncode == 1, r.stderr
    assert "etc/server.key" in r.stderr
    assert "share/doc/notes.txt" in r.stderr
    assert ".env" in r.stderr
    assert r.stdout == ""
    assert not os.path.exists(out)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".bad.tar.gz")]

    # --exclude leaves them out; the rest packs.
    r = tandem("release", "pack", tree, "-o", out, "--exclude", "*.key", "--exclude",
               "share/doc/notes.txt", "--exclude", ".env")
    assert r.returncode == 0, r.stderr
    names = run(["tar", "-tzf", out]).stdout.split()
    assert "etc/server.key" not in names
    assert "share/doc/notes.txt" not in names
    assert ".env" not in names
    assert "etc/agent.conf" in names
    assert "share/doc/README" in names


def test_special_files_and_escaping_symlinks_refused(tmp_path):
    tree = str(tmp_path / "tree")
    make_tree(tree)
    os.mkfifo(os.path.join(tree, "var", "pipe"))
    os.symlink("/etc/shadow", os.path.join(tree, "etc", "shadow"))
    os.symlink("../../outside", os.path.join(tree, "etc", "up"))
    out = str(tmp_path / "bad.tar.gz")
    r = tandem("release", "pack", tree, "-o", out)
    assert r.returncode == 1
    assert "var/pipe" in r.stderr and "FIFO" in r.stderr
    assert "etc/shadow" in r.stderr and "absolute" in r.stderr
    assert "etc/up" in r.stderr
    assert not os.path.exists(out)


def test_entrypoint_required_and_executable(tmp_path):
    tree = str(tmp_path / "tree")
    make_tree(tree)
    os.chmod(os.path.join(tree, "bin", "tandem-agent"), 0o644)
    r = tandem("release", "pack", tree, "-o", str(tmp_path / "x.tar.gz"))
    assert r.returncode == 1
    assert "bin/tandem-agent" in r.stderr and "executable" in r.stderr
    os.unlink(os.path.join(tree, "bin", "tandem-agent"))
    r = tandem("release", "pack", tree, "-o", str(tmp_path / "x.tar.gz"))
    assert r.returncode == 1
    assert "entrypoint is missing" in r.stderr


def test_usage_errors(tmp_path):
    tree = str(tmp_path / "tree")
    make_tree(tree)
    r = tandem("release", "pack")
    assert r.returncode == 2 and "DIR" in r.stderr
    r = tandem("release", "pack", tree, "--bogus")
    assert r.returncode == 2 and "--bogus" in r.stderr
    r = tandem("release", "pack", tree, tree)
    assert r.returncode == 2
    r = tandem("release", "pack", tree, "--version")
    assert r.returncode == 2
    r = tandem("release", "pack", "--help")
    assert r.returncode == 0 and "--exclude GLOB" in r.stdout
    # Runtime failures are 1: a missing directory, a bad version, output inside DIR.
    assert tandem("release", "pack", str(tmp_path / "nope"),
                  "-o", str(tmp_path / "x.tar.gz")).returncode == 1
    assert tandem("release", "pack", tree, "--version", "../1",
                  "-o", str(tmp_path / "x.tar.gz")).returncode == 1
    r = tandem("release", "pack", tree, "-o", os.path.join(tree, "x.tar.gz"))
    assert r.returncode == 1 and "inside" in r.stderr
    assert not os.path.exists(os.path.join(tree, "x.tar.gz"))
    # Default name in the working directory.
    r = tandem("release", "pack", tree, "--version", "9.9", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert os.path.exists(tmp_path / "tandem-agent-9.9.tar.gz")
    assert stat.S_IMODE(os.stat(tmp_path / "tandem-agent-9.9.tar.gz").st_mode) == 0o644


def pack_peak_rss(tree, out):
    """Run a pack; returns (stdout, peak RSS in KiB of the tandem process
    itself: VmHWM of its own address space, read until it exits)."""
    p = subprocess.Popen([bin_path("tandem"), "release", "pack", tree, "-o", out],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, TZ="UTC"))
    peak = 0
    status = "/proc/%d/status" % p.pid
    deadline = time.monotonic() + 120
    while p.poll() is None and time.monotonic() < deadline:
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except OSError:
            pass
        time.sleep(0.005)  # sampling interval of a running process, not a wait for a server
    stdout, stderr = p.communicate(timeout=10)
    assert p.returncode == 0, stderr
    return stdout.decode(), peak


def test_large_file_is_streamed(tmp_path):
    """A 64 MiB file packs with a peak RSS of well under half its size (about
    6 MiB, 15 MiB under ASan): content is streamed through libarchive, never
    held whole in memory."""
    tree = str(tmp_path / "tree")
    make_tree(tree)
    size = 64 << 20
    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB, compressible but not zeros
    with open(os.path.join(tree, "share", "big.dat"), "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
    out = str(tmp_path / "big.tar.gz")
    stdout, peak_kib = pack_peak_rss(tree, out)
    assert stdout.split()[0] == sha256_file(out)
    assert 0 < peak_kib < (size >> 10) // 2, "peak RSS %d KiB" % peak_kib
    listing = run(["tar", "-tzvf", out], env=dict(os.environ, TZ="UTC")).stdout
    assert (" %d 1970-01-01 " % size) in listing


def test_files_json_lists_the_tree(tmp_path):
    tree = str(tmp_path / "tree")
    make_tree(tree)
    # A tree's own files.json (an unpacked release re-packed) is not packed as is.
    write(os.path.join(tree, "files.json"), "stale")
    out = str(tmp_path / "r.tar.gz")
    pack_ok(tree, out, "--version", "2.0")
    raw = run(["tar", "-xOzf", out, "files.json"]).stdout.encode()
    doc = json.loads(raw)
    assert doc["v"] == 1
    # Canonical bytes: one entry per line, keys in a fixed order, final newline.
    lines = raw.decode().split("\n")
    assert lines[0] == '{"v":1,"files":[' and lines[-2] == "]}" and lines[-1] == ""
    assert len(lines) == len(doc["files"]) + 3

    dest = tmp_path / "x"
    dest.mkdir()
    run(["tar", "-xzf", out, "-C", str(dest)])
    # GNU tar as root keeps the packed modes; the packer's are 0755/0644.
    assert doc["files"] == tree_listing(str(dest))
    paths = [e["path"] for e in doc["files"]]
    assert "manifest.json" in paths and "files.json" not in paths
    assert {"path": "share/agent.conf", "type": "symlink", "target": "../etc/agent.conf"} in \
        doc["files"]
    assert {e["mode"] for e in doc["files"] if "mode" in e} <= {"0755", "0644"}

    # The same tree gives the same files.json whatever its times.
    for d, dirs, files in os.walk(tree):
        for n in dirs + files:
            os.utime(os.path.join(d, n), (1e9, 1e9), follow_symlinks=False)
    out2 = str(tmp_path / "r2.tar.gz")
    pack_ok(tree, out2, "--version", "2.0")
    assert run(["tar", "-xOzf", out2, "files.json"]).stdout.encode() == raw


def test_files_json_refuses_what_it_cannot_name(tmp_path):
    tree = str(tmp_path / "tree")
    make_tree(tree)
    write(os.path.join(tree.encode(), b"share", b"latin1-\xe9").decode("utf-8", "surrogateescape"),
          "x")
    os.symlink("doc/../../etc/agent.conf", os.path.join(tree, "share", "twisty"))
    r = subprocess.run([bin_path("tandem"), "release", "pack", tree, "-o",
                        str(tmp_path / "r.tar.gz")], capture_output=True, timeout=60)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 1
    assert "latin1-" in err and "UTF-8" in err, err
    assert "share/twisty" in err, err
    assert not os.path.exists(str(tmp_path / "r.tar.gz"))
