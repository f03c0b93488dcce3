"""Every fenced code block in README.md and docs/*.md runs, or is marked as an excerpt.

Convention (docs/architecture.md, "Code blocks in the docs"): a block whose fence line is directly
preceded by ``<!-- excerpt -->`` is not run. Every other block is ``python`` (run in a fresh
interpreter), ``bash`` (only ``fedpia`` commands: each runs in-process with tiny overrides) or
``toml`` (parsed; an experiment config is also built). Python blocks share one subprocess (each
in its own namespace, so torch is imported once). Blocks run in a temporary folder whose
``../shared/data`` is the real test data, so relative paths in the docs work as written.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
EXCERPT = "<!-- excerpt -->"
RUNNABLE = ("python", "bash", "toml")
FENCE = re.compile(r"^(\s*)(```+)(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    excerpt: bool

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line} ({self.lang or 'no language'})"


def extract_blocks(path: Path) -> list[Block]:
    """Fenced blocks of a Markdown file; a fence must be closed (else ValueError naming the line)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == m[2]), None)
            if end is None:
                raise ValueError(f"{path}:{i + 1}: unclosed code fence")
            excerpt = i > 0 and lines[i - 1].strip() == EXCERPT
            # a block inside a list item is indented with its fence: run it as written at column 0
            code = textwrap.dedent("\n".join(lines[i + 1:end]))
            blocks.append(Block(path, i + 1, m[3].lower(), code, excerpt))
            i = end
        i += 1
    return blocks


BLOCKS = [b for p in DOCS for b in extract_blocks(p)]
RUN = [b for b in BLOCKS if not b.excerpt]


def test_extraction_finds_fences_and_excerpt_markers(tmp_path):
    md = tmp_path / "x.md"
    md.write_text(f"text\n```python\nprint(1)\n```\n{EXCERPT}\n```bash\nmake all\n```\n```\nopen")
    with pytest.raises(ValueError, match="x.md:9: unclosed"):
        extract_blocks(md)
    md.write_text(f"text\n```python\nprint(1)\n```\n{EXCERPT}\n```bash\nmake all\n```\n")
    got = [(b.line, b.lang, b.code, b.excerpt) for b in extract_blocks(md)]
    assert got == [(2, "python", "print(1)", False), (6, "bash", "make all", True)]
    md.write_text("- item\n\n  ```python\n  if True:\n      print(1)\n  ```\n")  # inside a list item
    assert [b.code for b in extract_blocks(md)] == ["if True:\n    print(1)"]


def test_every_block_runs_or_is_marked_as_an_excerpt():
    assert len(BLOCKS) > 10 and RUN, "no code blocks found: is the docs folder there?"
    bad = [str(b) for b in RUN if b.lang not in RUNNABLE]
    assert not bad, f"mark these {EXCERPT} (line before the fence) or tag them {RUNNABLE}: {bad}"


def _doc_folder(tmp: Path, shared_data: Path) -> Path:
    """``tmp/repo`` with ``tmp/shared`` -> the real shared folder (so ``../shared/data`` works)."""
    (tmp / "shared").symlink_to(shared_data.parent, target_is_directory=True)
    (tmp / "repo").mkdir()
    return tmp / "repo"


@pytest.fixture
def doc_cwd(tmp_path, shared_data, monkeypatch):
    work = _doc_folder(tmp_path, shared_data)
    monkeypatch.chdir(work)
    return work


# one fresh interpreter runs every python block, each in its own namespace (one torch import)
_RUNNER = """
import json, sys, traceback
blocks, results = json.load(open(sys.argv[1])), {}
for key, code in blocks.items():
    try:
        exec(compile(code, key, "exec"), {"__name__": "__main__"})
        results[key] = None
    except BaseException:
        results[key] = traceback.format_exc()
json.dump(results, open(sys.argv[2], "w"))
"""
PYTHON_BLOCKS = [b for b in RUN if b.lang == "python"]


@pytest.fixture(scope="module")
def python_results(tmp_path_factory, shared_data) -> dict[str, str | None]:
    """``{str(block): None or the traceback}`` for every python block."""
    tmp = tmp_path_factory.mktemp("pyblocks")
    work = _doc_folder(tmp, shared_data)
    (tmp / "blocks.json").write_text(json.dumps({str(b): b.code for b in PYTHON_BLOCKS}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "-c", _RUNNER, str(tmp / "blocks.json"), str(tmp / "out.json")],
                         cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"block runner failed:\n{res.stderr[-4000:]}"
    return json.loads((tmp / "out.json").read_text())


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=str)
def test_python_block_runs(block, python_results):
    assert python_results[str(block)] is None, f"{block} failed:\n{python_results[str(block)]}"


def shell_commands(code: str) -> list[list[str]]:
    """Commands of a bash block: continuation lines joined, comments and blank lines dropped."""
    return [argv for line in code.replace("\\\n", " ").splitlines()
            if (argv := shlex.split(line, comments=True))]


def tiny_overrides(argv: list[str]) -> list[str]:
    """``--set`` options that shrink a run/compare to seconds (few samples per client, 1 round
    unless the command itself sets ``sim.rounds`` to at most 4, e.g. to show an extension)."""
    from fedpia.data import SETTINGS
    from fedpia.experiments import get_preset

    preset = argv[argv.index("--preset") + 1] if "--preset" in argv else "demo"
    setting = get_preset(preset).setting
    params = inspect.signature(SETTINGS[setting]).parameters
    rounds = [a.split("=", 1)[1] for a in argv if a.startswith("sim.rounds=")]
    few = bool(rounds) and rounds[-1].isdigit() and int(rounds[-1]) <= 4
    sets = ([] if few else ["sim.rounds=1"]) + ["train.local_steps=1", "train.batch_size=4"]
    if "max_train" in params:
        sets += ["setting_options.max_train=8", "setting_options.max_test=4"]
    if "max_val" in params:
        sets.append("setting_options.max_val=4")
    if "modalities" in params:
        sets.append('setting_options.modalities=["x-ray", "ct"]')
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        sets += ["setting_options.n_train=12", "setting_options.n_val=4", "setting_options.n_test=6"]
    return [x for s in sets for x in ("--set", s)]


def test_shell_commands_parse_with_continuations_and_comments():
    code = "fedpia run --preset demo \\\n    --out runs/x   # note\n\n# only a comment\nfedpia presets"
    assert shell_commands(code) == [["fedpia", "run", "--preset", "demo", "--out", "runs/x"],
                                    ["fedpia", "presets"]]


@pytest.mark.parametrize("block", [b for b in RUN if b.lang == "bash"], ids=str)
def test_bash_block_runs(block, doc_cwd):
    from fedpia.cli import app

    runner = CliRunner()
    for argv in shell_commands(block.code):
        assert argv[0] == "fedpia", f"{block}: {argv[0]!r} is not a fedpia command; mark the block {EXCERPT}"
        args = argv[1:]
        if args and args[0] in ("run", "compare"):
            args = args + tiny_overrides(args)
            if "--seeds" in args:  # one seed: the command's other options are kept as written
                args[args.index("--seeds") + 1] = "0"
        res = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert res.exit_code == 0, f"{block}: {shlex.join(argv)} exited {res.exit_code}:\n{res.output[-3000:]}"


@pytest.mark.parametrize("block", [b for b in RUN if b.lang == "toml"], ids=str)
def test_toml_block_parses(block):
    data = tomllib.loads(block.code)
    if "setting" in data and "strategy" in data:  # an experiment config: every key must be known
        from fedpia.experiments import ExperimentConfig

        cfg = ExperimentConfig.from_dict(data)
        assert cfg.to_dict()["setting"] == data["setting"]
