"""Field-type checks shared by configs, strategy knobs and setting knobs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from fedpia.typecheck import check_field_types


@dataclass
class _Knobs:
    n: int = 1
    x: float = 0.5
    flag: bool = False
    name: str = "a"
    width: int | None = None
    mods: tuple[str, ...] = ()


def test_accepts_and_normalises_valid_values():
    out = check_field_types(_Knobs, {"n": 3, "x": 2, "flag": True, "name": Path("/d"), "width": None,
                                     "mods": ["ct", "x-ray"]}, "k")
    assert out == {"n": 3, "x": 2.0, "flag": True, "name": "/d", "width": None, "mods": ("ct", "x-ray")}
    assert isinstance(out["x"], float) and isinstance(out["mods"], tuple)


@pytest.mark.parametrize(("raw", "needle"), [
    ({"n": 1.5}, "k.n must be an integer, got 1.5"),
    ({"n": True}, "k.n must be an integer"),  # bool is not an int here
    ({"x": "fast"}, "k.x must be a number"),
    ({"flag": "maybe"}, "k.flag must be true or false"),
    ({"name": 3}, "k.name must be a string"),
    ({"width": "wide"}, "k.width must be an integer"),
    ({"mods": "ct"}, "k.mods must be a list"),
])
def test_wrong_types_name_the_field(raw, needle):
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        check_field_types(_Knobs, raw, "k")
