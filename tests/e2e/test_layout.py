"""The repository describes itself: the source-layout table of
wiki/Architecture.md matches the tree both ways (every directory and module
it names exists, every directory and module of the tree has its row), and no
tracked file points at documents outside the repository or at the issues the
work came from."""

import fnmatch
import os
import re
import subprocess

from conftest import ROOT

ARCHITECTURE = os.path.join(ROOT, "wiki", "Architecture.md")

# A module is named in a row as `name` (or `prefix_*` for a family); other
# code spans (paths, files, flags) contain a character outside this set.
MODULE_RX = re.compile(r"`([A-Za-z][A-Za-z0-9_-]*\*?)`")
ROW_RX = re.compile(r"^\| `([^`]+)/` \| (.*) \|$")

# Built from parts so this file does not match itself.
OUTSIDE_REFS = re.compile("|".join([
    re.escape("../" + "shared"),
    r"\b" + "DESIGN" + r"\.md\b",
    r"\b" + "PITFALLS" + r"\b",
    r"\b" + "STYLE" + r"\.md\b",
    "NEXT" + "-CAPABILITIES",
    r"\b[Ii]ssue" + r" [0-9]+",
]))
# Files whose owners are still rewriting them (they may mention the outside
# documents until then); drop an entry once its file is clean.
OUTSIDE_REFS_PENDING = {
    "common/fs.h", "common/httpd.c", "common/tls.c",
    "tests/unit/test_tls.c",
}


def tracked_files():
    """Paths (relative to ROOT) of the files under version control, or of
    every file outside the build trees when ROOT is not a git checkout."""
    r = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True)
    if r.returncode == 0:
        return sorted(p for p in r.stdout.decode().split("\0") if p)
    out = []
    for d, dirs, files in os.walk(ROOT):
        rel = os.path.relpath(d, ROOT)
        dirs[:] = [x for x in dirs if not (rel == "." and (x.startswith("build") or x == ".git"))
                   and x != "__pycache__"]
        out += [os.path.normpath(os.path.join(rel, f)) for f in files]
    return sorted(out)


def layout_rows():
    """{directory: description} from the table under "## Source layout"."""
    with open(ARCHITECTURE) as f:
        text = f.read()
    assert "## Source layout" in text
    section = text.split("## Source layout", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = ROW_RX.match(line)
        if m:
            assert m.group(1) not in rows, "two rows for %s/" % m.group(1)
            rows[m.group(1)] = m.group(2)
    assert rows, "no table rows found in the Source layout section"
    return rows


def tree_dirs(files):
    """The directories the table must describe: each top-level directory,
    and each directory directly under tests/."""
    dirs = set()
    for p in files:
        parts = p.split("/")
        if len(parts) < 2:
            continue
        if parts[0] == "tests" and len(parts) >= 3:
            dirs.add("tests/" + parts[1])
        elif parts[0] != "tests":
            dirs.add(parts[0])
    return dirs


def modules(files, directory):
    """Stems of the C sources and headers directly in DIRECTORY."""
    out = set()
    for p in files:
        d, name = os.path.split(p)
        stem, ext = os.path.splitext(name)
        if d == directory and ext in (".c", ".h"):
            out.add(stem)
    return out


def test_every_directory_has_one_row():
    files = tracked_files()
    rows = layout_rows()
    want = tree_dirs(files)
    assert set(rows) - want == set(), "rows for directories that are not in the tree"
    assert want - set(rows) == set(), "directories without a row in wiki/Architecture.md"


def test_every_module_named_and_every_name_a_module():
    files = tracked_files()
    problems = []
    for directory, text in layout_rows().items():
        mods = modules(files, directory)
        if not mods:
            continue  # not a code directory: its row is prose
        named = MODULE_RX.findall(text)
        covered = set()
        for name in named:
            hits = fnmatch.filter(mods, name) if name.endswith("*") else \
                [name] if name in mods else []
            if not hits:
                problems.append("%s/: `%s` is named but no %s/%s.c or .h exists"
                                % (directory, name, directory, name))
            covered.update(hits)
        for m in sorted(mods - covered):
            problems.append("%s/: module %s is in the tree but not in its row" % (directory, m))
    assert problems == [], "\n".join(problems)


def test_no_reference_outside_the_repository():
    """No tracked file names the documents the project was planned from
    (outside the repository) or the issue a change came from; what they
    said that matters is in the wiki."""
    me = os.path.relpath(os.path.abspath(__file__), ROOT)
    found = []
    for p in tracked_files():
        if p == me:
            continue
        try:
            with open(os.path.join(ROOT, p), encoding="utf-8") as f:
                text = f.read()
        except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
            continue  # binary fixtures and corpora
        hits = ["%s:%d: %s" % (p, text.count("\n", 0, m.start()) + 1, m.group(0))
                for m in OUTSIDE_REFS.finditer(text)]
        if p not in OUTSIDE_REFS_PENDING:
            found += hits
    assert found == [], "\n".join(found)
