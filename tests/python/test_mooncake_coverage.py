"""How much of Mooncake's Python store API kvcached has.

data/mooncake_store_api.txt lists the public names of Mooncake's
`mooncake.store` (taken from Mooncake's bindings and API reference; its
header says which revisions). data/mooncake_store_api_missing.txt lists the
ones kvcached lacks today. A fresh interpreter imports `mooncake.store`
through the import shim, as users do, and reports which names exist; the
tests fail when a name is missing but not listed as missing, when a name
listed as missing exists (so the list only shrinks: delete its line), and
when the missing list names something the API list does not. docs/compat.md
shows the same tables to users and is checked against the two files.
No pool is needed: nothing calls setup()."""

import json
import os
import re
import subprocess
import sys

import pytest

import kvcached.shim  # conftest.py puts python/ on sys.path

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(TESTS_DIR))
API_FILE = os.path.join(TESTS_DIR, "data", "mooncake_store_api.txt")
MISSING_FILE = os.path.join(TESTS_DIR, "data", "mooncake_store_api_missing.txt")
COMPAT_DOC = os.path.join(REPO, "docs", "compat.md")

STORE_CLASS = "MooncakeDistributedStore"
KINDS = ("module", "method", "attr")
_IDENT = r"[A-Za-z][A-Za-z0-9_]*"
_NAME = {"module": re.compile(rf"^{_IDENT}$"),
         "method": re.compile(rf"^{STORE_CLASS}\.{_IDENT}$"),
         "attr": re.compile(rf"^{_IDENT}\.{_IDENT}$")}


def parse(path):
    """The entries of a data file, as "kind name" strings in file order.
    Fails on a malformed line, a duplicate, or a block of consecutive entry
    lines that is not sorted (comment and blank lines end a block)."""
    entries, blocks, block = [], [], []
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                if block:
                    blocks.append(block)
                    block = []
                continue
            parts = line.split()
            where = f"{os.path.relpath(path, REPO)}:{lineno}: {raw.rstrip()!r}"
            assert len(parts) == 2 and parts[0] in KINDS, \
                f"{where}: expected 'module NAME', 'method {STORE_CLASS}.NAME' or 'attr CLASS.NAME'"
            kind, name = parts
            assert _NAME[kind].match(name), f"{where}: not a public {kind} name"
            entry = f"{kind} {name}"
            assert entry not in entries, f"{where}: listed twice"
            entries.append(entry)
            block.append((name, where))
    if block:
        blocks.append(block)
    for block in blocks:
        for (a, _), (b, where) in zip(block, block[1:]):
            assert a < b, f"{where}: out of order (after {a}); keep each block sorted"
    return entries


# Runs in a fresh interpreter whose only PYTHONPATH entry is the shim's
# directory: reads the entries (JSON) on stdin, prints which ones exist.
PROBE = r"""
import json, sys
import mooncake.store
from mooncake.store import MooncakeDistributedStore

entries = json.load(sys.stdin)
holders = {}

def holder(class_name):
    # An enum's members are looked up on the class; another class's fields on
    # an instance made with no arguments when it can be made, else on the class.
    if class_name not in holders:
        cls = getattr(mooncake.store, class_name, None)
        if cls is None or hasattr(cls, "__members__"):
            holders[class_name] = cls
        else:
            try:
                holders[class_name] = cls()
            except Exception:
                holders[class_name] = cls
    return holders[class_name]

found = {}
for entry in entries:
    kind, name = entry.split(" ", 1)
    if kind == "module":
        found[entry] = hasattr(mooncake.store, name)
    elif kind == "method":
        found[entry] = hasattr(MooncakeDistributedStore, name.split(".", 1)[1])
    else:
        class_name, attr = name.split(".", 1)
        obj = holder(class_name)
        found[entry] = obj is not None and hasattr(obj, attr)
print("PROBE " + json.dumps({"shim": bool(getattr(mooncake.store, "KVCACHED_SHIM", False)),
                             "file": mooncake.store.__file__, "found": found}))
"""


@pytest.fixture(scope="module")
def api():
    return parse(API_FILE)


@pytest.fixture(scope="module")
def missing():
    return parse(MISSING_FILE)


@pytest.fixture(scope="module")
def found(api, tmp_path_factory):
    """{"kind name": exists} for every entry of the API file, as kvcached's
    `mooncake.store` answers in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = kvcached.shim.shim_dir()
    out = subprocess.run([sys.executable, "-c", PROBE], input=json.dumps(api),
                         capture_output=True, text=True, env=env, timeout=120,
                         cwd=str(tmp_path_factory.mktemp("probe")))
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [l for l in out.stdout.splitlines() if l.startswith("PROBE ")]
    assert lines, out.stdout + out.stderr
    report = json.loads(lines[-1][len("PROBE "):])
    assert report["shim"], f"mooncake.store is not kvcached's shim: {report['file']}"
    return report["found"]


def test_missing_list_names_only_mooncake_names(api, missing):
    unknown = [e for e in missing if e not in set(api)]
    assert not unknown, (
        f"{os.path.relpath(MISSING_FILE, REPO)} lists names that "
        f"{os.path.relpath(API_FILE, REPO)} does not have:\n  " + "\n  ".join(unknown))


def test_kvcached_has_every_name_not_listed_missing(api, missing, found):
    absent = [e for e in api if not found[e]]
    per_kind = ", ".join(
        f"{k}s {sum(1 for e in api if e.startswith(k + ' ') and found[e])} of "
        f"{sum(1 for e in api if e.startswith(k + ' '))}" for k in KINDS)
    print(f"kvcached has {len(api) - len(absent)} of {len(api)} Mooncake names ({per_kind})")
    unlisted = [e for e in absent if e not in set(missing)]
    assert not unlisted, (
        "kvcached's mooncake.store lacks these Mooncake names, which "
        f"{os.path.relpath(MISSING_FILE, REPO)} does not list (add them there, "
        "sorted, or provide them):\n  " + "\n  ".join(unlisted))


def test_names_listed_missing_are_missing(missing, found):
    present = [e for e in missing if found.get(e)]
    assert not present, (
        "kvcached's mooncake.store now has these names: delete their lines from "
        f"{os.path.relpath(MISSING_FILE, REPO)} (and mark them yes in docs/compat.md):\n  "
        + "\n  ".join(present))


def _doc_kind(heading):
    h = heading.lower()
    if "method" in h and STORE_CLASS.lower() in h:
        return "method"
    if "module" in h:
        return "module"
    if "field" in h or "enum" in h:
        return "attr"
    return None


def test_compat_doc_matches_the_lists(api, missing):
    """docs/compat.md: one table row per API entry, `yes` or `missing` as the
    missing list says, and the "N of M" count."""
    rows = {}
    kind = None
    with open(COMPAT_DOC, encoding="utf-8") as f:
        text = f.read()
    for line in text.splitlines():
        if line.startswith("## "):
            kind = _doc_kind(line[3:])
            continue
        m = re.match(r"^\|\s*`([^`]+)`\s*\|\s*([^|]*?)\s*\|\s*$", line)
        if not m or kind is None:
            continue
        name = f"{STORE_CLASS}.{m.group(1)}" if kind == "method" else m.group(1)
        entry = f"{kind} {name}"
        assert entry not in rows, f"docs/compat.md: {entry} appears twice"
        status = m.group(2).split(":")[0].split(";")[0].strip().lower()
        assert status in ("yes", "missing"), f"docs/compat.md: {entry}: status {m.group(2)!r}"
        rows[entry] = status == "yes"
    want = {e: e not in set(missing) for e in api}
    assert set(rows) == set(want), (
        "docs/compat.md and the data files list different names; only in the doc: "
        f"{sorted(set(rows) - set(want))}; only in the data files: {sorted(set(want) - set(rows))}")
    wrong = sorted(e for e in want if rows[e] != want[e])
    assert not wrong, f"docs/compat.md gives the wrong status for: {wrong}"
    have = sum(want.values())
    count = re.search(r"\b(\d+) of (\d+)\b", text)
    assert count and (int(count.group(1)), int(count.group(2))) == (have, len(api)), (
        f"docs/compat.md should say {have} of {len(api)} (its first \"N of M\")")
