"""`fedpia --version`, `fedpia list ...`, help text without reStructuredText, catalog descriptions."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

import fedpia
from fedpia.cli import app
from fedpia.experiments.catalog import FALLBACK, KINDS, MAX_WIDTH, catalog, describe
from fedpia.experiments.presets import PRESETS
from fedpia.experiments.variants import VARIANTS
from fedpia.models import BACKBONES, PEFT_METHODS
from fedpia.strategies import STRATEGIES

runner = CliRunner()
RST = re.compile(r"``|:(mod|func|class|meth|data|attr):`")


def _cells(output: str) -> dict[str, str]:
    """``{first cell: rest of the row}`` of a rich table (continuation rows are dropped)."""
    rows = {}
    for line in output.splitlines():
        parts = [p.strip() for p in line.strip("│ ").split("│")]
        if len(parts) == 2 and parts[0]:
            rows[parts[0]] = parts[1]
    return rows


def test_version_prints_the_package_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"fedpia {fedpia.__version__}"


@pytest.mark.parametrize("kind,registry", [("presets", PRESETS), ("backbones", BACKBONES),
                                           ("peft", PEFT_METHODS),
                                           ("strategies", {**STRATEGIES, **VARIANTS})])
def test_list_shows_every_registry_entry_with_a_description(kind, registry):
    res = runner.invoke(app, ["list", kind], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    rows = _cells(res.output)
    assert set(registry) <= set(rows), set(registry) - set(rows)
    assert all(rows[name] for name in registry), {n: rows[n] for n in registry if not rows[n]}


def test_list_prints_brackets_literally():
    res = runner.invoke(app, ["list", "backbones"], env={"COLUMNS": "200"})
    assert "pooled [CLS] features" in res.output  # not swallowed as rich markup


def test_list_rejects_an_unknown_kind():
    res = runner.invoke(app, ["list", "optimizers"])
    assert res.exit_code == 2 and "presets, strategies, backbones, peft" in res.output
    with pytest.raises(ValueError, match="unknown kind"):
        catalog("optimizers")


def test_help_texts_have_no_restructuredtext_markup():
    commands = [[], ["data"], *([name] for name in ("run", "compare", "demo", "presets", "list")),
                ["data", "summary"]]
    for cmd in commands:
        res = runner.invoke(app, [*cmd, "--help"])
        assert res.exit_code == 0, (cmd, res.output)
        assert not RST.search(res.output), (cmd, res.output)
    assert "fedpia list" in runner.invoke(app, ["--help"]).output


def test_describe_takes_the_first_sentence_of_the_own_docstring():
    class Documented:
        """FedX (Doe et al. 2020, arXiv:1): uses ``mix`` weights.

        More text."""

    class Child(Documented):
        pass

    @dataclass
    class Auto:  # dataclasses write the signature into __doc__
        a: int = 1

    def fn():
        """Two sentences. The second is dropped."""

    assert describe(Documented) == "FedX (Doe et al. 2020, arXiv:1): uses `mix` weights."
    assert describe(Child, fallback="fb") == "fb"  # an inherited docstring does not describe it
    assert describe(Auto, fallback="fb") == "fb"
    assert describe(fn) == "Two sentences."
    long = type("Long", (), {"__doc__": "word " * 60})
    out = describe(long)
    assert len(out) <= MAX_WIDTH + 4 and out.endswith(" ...")


def test_every_catalog_entry_has_a_description_and_fallbacks_are_not_stale():
    for kind in KINDS:
        assert all(desc for _, desc in catalog(kind)), kind
    assert set(FALLBACK["backbones"]) <= set(BACKBONES)
    assert set(FALLBACK["peft"]) <= set(PEFT_METHODS)
