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


def test_sequences_nan_numpy_and_nested_dataclasses():
    from collections.abc import Sequence

    import numpy as np

    from fedpia.typecheck import check_value

    assert check_value(["ct"], Sequence[str], "s") == ("ct",)
    with pytest.raises(ValueError, match="s must be a list"):
        check_value("ct", Sequence[str], "s")  # a string would be iterated letter by letter
    with pytest.raises(ValueError, match="got nan"):
        check_value(float("nan"), float, "lr")
    assert check_value(np.int64(3), int, "n") == 3 and type(check_value(np.int64(3), int, "n")) is int
    assert check_value(np.float32(0.5), float, "x") == 0.5
    assert check_value({"n": 2}, _Knobs, "k") == {"n": 2}
    with pytest.raises(ValueError, match="k must be a table/mapping of _Knobs fields"):
        check_value(5, _Knobs, "k")


def test_config_overrides_keep_text_and_flower_run_config_is_checked():
    from fedpia.experiments import get_preset
    from fedpia.rounds import from_run_config

    cfg = get_preset("demo")
    assert cfg.with_overrides(["name=42"]).name == "42"
    assert cfg.with_overrides(["data_root=none"]).data_root is None
    assert cfg.with_overrides(["data_root=7"]).data_root == "7"
    for bad, needle in ((["sim=5"], "sim must be a table/mapping"), (["train.lr=nan"], "train.lr")):
        with pytest.raises(ValueError, match=needle):
            cfg.with_overrides(bad)
    with pytest.raises(ValueError, match="flower.timeout must be a number"):
        from_run_config({"flower.timeout": True})
    assert from_run_config({"train.lr": 1}).train.lr == 1.0
