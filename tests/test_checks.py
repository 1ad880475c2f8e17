"""The argument checks every public function, layer, optimizer and model of visarch runs."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from visarch.checks import (
    ArgumentTypeError,
    check_bool,
    check_floating,
    check_int,
    check_ints,
    check_real,
    ntuple,
    pair,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "visarch"


@pytest.mark.parametrize("call, expected", [
    (lambda: check_bool(False, "bias", where="conv_parameters"), False),
    (lambda: check_int(3, "depth", where="Net", ge=1), 3),
    (lambda: check_int(np.int64(4), "depth", where="Net", ge=1, le=4), 4),
    (lambda: check_real(0.5, "p", where="Net", ge=0, lt=1), 0.5),
    (lambda: check_real(2, "w_m", where="Net", gt=1), 2),
    (lambda: check_ints([6, 16, 120], "channels", where="Net", ge=1, length=3), (6, 16, 120)),
    (lambda: ntuple(2, 3, "stride S", where="conv3d", ge=1), (2, 2, 2)),
    (lambda: pair([1, 0], "padding P", where="conv2d", ge=0), (1, 0)),
])
def test_valid_values_come_back_normalised(call, expected):
    got = call()
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("call, message", [
    (lambda: check_int(0, "depth", where="ViTConfig", ge=1), "ViTConfig: depth must be >= 1, got 0"),
    (lambda: check_int(9, "digit", where="f", ge=0, le=8), r"f: digit must be in \[0, 8\], got 9"),
    (lambda: check_real(1.0, "dropout", where="Net", ge=0, lt=1), r"Net: dropout must be in \[0, 1\), got 1.0"),
    (lambda: check_real(-0.1, "lr", where="SGD", ge=0), "SGD: lr must be >= 0, got -0.1"),
    (lambda: check_real(0.5, "w_m", where="f", gt=1), "f: w_m must be > 1, got 0.5"),
    (lambda: check_real(3, "x", where="f", le=2), "f: x must be <= 2, got 3"),
    (lambda: check_real(math.nan, "eps", where="batch_norm", gt=0), "batch_norm: eps must be > 0, got nan"),
    (lambda: check_real(math.inf, "peak", where="psnr", gt=0, lt=math.inf), r"psnr: peak must be in \(0, inf\)"),
    (lambda: check_ints((), "widths", where="Net", ge=1), r"Net: widths must be a non-empty tuple of ints, each >= 1"),
    (lambda: check_ints((8, 0), "widths", where="Net", ge=1), r"each >= 1, got \(8, 0\)"),
    (lambda: check_ints((6, 16), "channels", where="Net", length=3), r"must be a tuple of 3 ints, got \(6, 16\)"),
    (lambda: ntuple((1, 0), 2, "stride S", where="conv2d", ge=1), r"conv2d: stride S must be >= 1, got \(1, 0\)"),
])
def test_a_value_out_of_range_is_a_value_error_naming_where_what_condition_and_value(call, message):
    with pytest.raises(ValueError, match=message) as caught:
        call()
    assert not isinstance(caught.value, TypeError)


@pytest.mark.parametrize("call, message", [
    (lambda: check_bool(1, "is_causal", where="scaled_dot_product_attention"),
     "scaled_dot_product_attention: is_causal must be a bool, got int 1"),
    (lambda: check_int(2.5, "depth", where="ViTConfig", ge=1), "ViTConfig: depth must be an int, got float 2.5"),
    (lambda: check_int(True, "depth", where="Net"), "depth must be an int, got bool True"),
    (lambda: check_int(None, "depth", where="Net"), "depth must be an int, got NoneType None"),
    (lambda: check_real("0.1", "lr", where="SGD", ge=0), "SGD: lr must be a real number, got str '0.1'"),
    (lambda: check_real(False, "p", where="Net"), "got bool"),
    (lambda: check_real(torch.tensor(0.5), "p", where="Net"), r"got a float32 tensor of shape \[\]"),
    (lambda: check_ints(3, "widths", where="Net"), "widths must be a non-empty tuple of ints, got int 3"),
    (lambda: check_ints((3, 2.0), "widths", where="Net"), "got tuple"),
    (lambda: ntuple((1, 1), 3, "stride S", where="conv3d", ge=1),
     r"conv3d: stride S must be an int or a triple of ints, got \(1, 1\)"),
    (lambda: pair("1", "padding P", where="conv2d", ge=0), "must be an int or a pair of ints, got '1'"),
    (lambda: check_floating(where="conv2d", input=[1.0]), "conv2d: input must be a torch.Tensor, got list"),
    (lambda: check_floating(where="conv2d", input=torch.zeros(2, dtype=torch.int64)),
     "conv2d: input must have a floating-point dtype, got torch.int64"),
    (lambda: check_floating(where="conv2d", input=torch.zeros(2), weight=None, bias=torch.zeros(2).double()),
     r"conv2d: dtypes must match \(input: torch.float32, bias: torch.float64\)"),
])
def test_a_value_of_the_wrong_kind_is_a_type_error_that_is_also_a_value_error(call, message):
    with pytest.raises(ArgumentTypeError, match=message) as caught:
        call()
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, ValueError)


def test_a_long_value_is_shortened_in_the_message():
    with pytest.raises(ArgumentTypeError) as caught:
        check_int("x" * 500, "name", where="f")
    assert len(str(caught.value)) < 120 and str(caught.value).endswith("...")


def test_two_bounds_on_one_side_are_a_programming_error():
    with pytest.raises(ValueError, match="at most one lower bound"):
        check_real(1.0, "x", where="f", gt=0, ge=0)


def hand_written_checks(path: Path, root: Path) -> list[str]:
    """The expressions of ``path`` that test a value's type the way only visarch.checks should: an isinstance
    test of bool (refusing True as an int) joined to an isinstance test of an int or a real number."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.BoolOp):
            text = ast.unparse(node)
            if ", bool)" in text and any(kind in text for kind in (", int)", "Integral", "Real", "(int, float)")):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {text[:80]}")
    return found


# Type tests that check data rather than arguments, each with its reason.
NOT_ARGUMENTS = {
    "checkpoint.py": "a loaded file's entries are checked as a corrupt file, not as a caller's argument",
}


def test_every_scalar_argument_check_of_the_package_is_one_of_these():
    """One home: no module re-implements an int or real-number check with a message of its own."""
    offenders = [line for path in sorted(SRC.rglob("*.py")) if path.name != "checks.py"
                 for line in hand_written_checks(path, SRC) if line.split(":")[0] not in NOT_ARGUMENTS]
    assert not offenders, "\n".join(offenders)


def test_the_search_for_hand_written_checks_finds_one(tmp_path):
    """The test above can fail: a hand-written int check is found."""
    module = tmp_path / "stray.py"
    module.write_text("def f(n):\n    if isinstance(n, bool) or not isinstance(n, int):\n        raise TypeError(n)\n")
    assert hand_written_checks(module, tmp_path) == ["stray.py:2: isinstance(n, bool) or not isinstance(n, int)"]
