"""docs/architecture.md's layering table matches the imports in src/fedpia (lazy imports included)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "fedpia"
HEADER = "| package | owns | fedpia imports | third-party imports |"


def layer_table(text: str) -> dict[str, tuple[set[str], set[str]]]:
    """``{package: (fedpia imports, third-party imports)}`` in table order, from the Markdown table."""
    lines = text.splitlines()
    start = lines.index(HEADER) + 2  # skip the |---| row
    table = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = re.fullmatch(r"`fedpia\.(\w+)`", cells[0])
        assert name, f"first cell must be `fedpia.NAME`: {line}"
        table[name[1]] = (set(re.findall(r"`(\w+)`", cells[2])), set(re.findall(r"`(\w+)`", cells[3])))
    return table


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """``(fedpia packages, third-party top-level modules)`` imported anywhere in one module."""
    own, third = set(), set()
    pkg = _package_of(path)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside fedpia; level 1 stays in the package
                parts = path.relative_to(SRC).parts[:-node.level]
                names = ["fedpia." + ".".join([*parts, node.module or ""]).strip(".")]
            else:
                names = [node.module]
        else:
            continue
        for name in names:
            top, *rest = name.split(".")
            if top == "fedpia":
                if rest and rest[0] != pkg:
                    own.add(rest[0])
            elif top not in sys.stdlib_module_names:
                third.add(top)
    return own, third


def actual_imports() -> dict[str, tuple[set[str], set[str]]]:
    out: dict[str, tuple[set[str], set[str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "__init__.py":
            continue
        own, third = imports_of(path)
        acc = out.setdefault(_package_of(path), (set(), set()))
        acc[0].update(own)
        acc[1].update(third)
    return out


TABLE = layer_table((REPO / "docs" / "architecture.md").read_text(encoding="utf-8"))
ACTUAL = actual_imports()


def test_table_parser_and_import_scanner_on_known_input(tmp_path):
    md = f"x\n{HEADER}\n|---|---|---|---|\n| `fedpia.a` | o | — | `torch` (lazy), `numpy` |\n| `fedpia.b` | o | `a` | — |\n\nend"
    assert layer_table(md) == {"a": (set(), {"torch", "numpy"}), "b": ({"a"}, set())}
    own, third = imports_of(SRC / "cli.py")
    assert {"experiments", "data"} <= own and {"typer", "rich"} <= third and "os" not in third


def test_every_package_is_in_the_table():
    assert set(ACTUAL) == set(TABLE), f"add to / remove from the table: {set(ACTUAL) ^ set(TABLE)}"


def test_packages_import_only_what_the_table_allows():
    for pkg, (own, third) in ACTUAL.items():
        allowed_own, allowed_third = TABLE[pkg]
        assert own <= allowed_own, f"fedpia.{pkg} imports {sorted(own - allowed_own)} (not in its row)"
        assert third <= allowed_third, f"fedpia.{pkg} imports third-party {sorted(third - allowed_third)}"


def test_table_is_in_dependency_order_and_keeps_the_layering_rules():
    order = list(TABLE)
    for i, (pkg, (own, _)) in enumerate(TABLE.items()):
        assert own <= set(order[:i]), f"fedpia.{pkg} may import {sorted(own - set(order[:i]))}: not above it"
    assert [p for p, (_, third) in TABLE.items() if "flwr" in third] == ["flower"]
    for pkg, (own, _) in TABLE.items():
        if pkg not in ("experiments", "cli"):
            assert not own & {"experiments", "cli"}, pkg
    assert TABLE["align"][0] == set() and "transformers" not in TABLE["align"][1]


def test_align_never_touches_torch_nn():
    for path in (SRC / "align").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("torch.nn") and not (
                    node.module == "torch" and any(a.name == "nn" for a in node.names)), path
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("torch.nn") for a in node.names), path
            if isinstance(node, ast.Attribute) and node.attr == "nn":
                assert not (isinstance(node.value, ast.Name) and node.value.id == "torch"), path
