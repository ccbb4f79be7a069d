"""The house's rules, checked on the code itself: no import circle in the package (every
import counted, function-level ones too), a command line that stays thin, and every module,
file and Python name the README and docs/ speak of exists."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fervid"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in it (a parent package that a
    module imports only to reach itself is not counted)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [f"{target}.{a.name}" for a in node.names]
                found = [n if n in mods else target for n in names]
            elif isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            else:
                continue
            graph[mod] |= {t for t in found if t in mods and not mod.startswith(t + ".")}
            graph[mod].discard(mod)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_in_the_package():
    graph = import_graph()
    assert len(graph) > 40 and "fervid.video_outputs" in graph["fervid.annotation"]
    assert circles(graph) == []


def test_circles_are_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_command_line_stays_thin():
    assert len((PACKAGE / "cli.py").read_text().splitlines()) <= 450


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
if (ROOT / "train").is_dir():
    DOCS += sorted((ROOT / "train").rglob("*.md"))
CODE = re.compile(r"`([^`\n]+)`")
PATH = re.compile(r"^(?:fervid|bench|docs|tests|samples|train)/[\w./-]*\w$")
DOTTED = re.compile(r"^fervid(?:\.\w+)+$")


def _named(text: str) -> tuple[set[str], set[str]]:
    """The paths and the dotted ``fervid.`` names a page's code spans name."""
    paths, names = set(), set()
    for span in CODE.findall(text):
        for word in re.split(r"[\s(),:=\[\]]+", span):
            word = word.strip("'\".")
            made = ".fervid." in word  # an output the commands write
            if PATH.match(word) and not made and "*" not in word and "<" not in word:
                paths.add(word)
            elif DOTTED.match(word):
                names.add(word)
    return paths, names


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        try:
            for attr in parts[k:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_name_the_docs_give_exists(page):
    paths, names = _named(page.read_text(encoding="utf-8"))
    missing = sorted(p for p in paths if not (ROOT / p.split(":")[0]).exists())
    missing += sorted(n for n in names if not _resolves(n))
    assert missing == []


def test_the_docs_check_sees_a_missing_name():
    paths, names = _named("see `fervid/nothing.py` and `fervid.video_outputs.nothing`, `x`")
    assert paths == {"fervid/nothing.py"} and names == {"fervid.video_outputs.nothing"}
    assert not _resolves("fervid.video_outputs.nothing") and _resolves("fervid.api.scan_folder")
