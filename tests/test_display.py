"""``visarch.display``: the layer table lists every module's output shape and parameters, and its
totals are torch's own count; shown source folds argument checks and nothing else."""

from __future__ import annotations

import inspect
import textwrap

import torch
from torch import nn

from visarch.display import layer_table


def test_layer_table_shapes_counts_and_units():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    table = layer_table(model, input_size=(2, 3, 4, 4), depth=1)
    total = sum(p.numel() for p in model.parameters())  # 224 + 645
    assert f"Total params: {total:,}" in table and "[2, 8, 4, 4]" in table and "[2, 5]" in table
    assert "Units." not in table and "Total mult-adds (M)" in table


def test_layer_table_takes_several_inputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 3)

        def forward(self, x, u):
            return self.linear(x) + u

    table = layer_table(Two(), input_data=(torch.zeros(1, 4), torch.zeros(1, 3)))
    assert "Total params: 15" in table and "[1, 3]" in table


SAMPLE = '''    def scale(self, x, factor, *, eps=1e-5):
        """Docstring stays."""
        if factor <= 0:
            raise ValueError(f"factor must be positive, got {factor}")
        check_int(x.dim(), "x.dim()", where="scale", ge=1)
        for name in ("factor", "eps"):
            check_real(locals()[name], name, where="scale", gt=0)
        y = x * factor  # the lesson
        if y.isnan().any():
            y = y.nan_to_num()
        else:
            y = y + eps
        if eps > 1:
            raise ValueError("eps too large")
        return y
'''


def test_without_checks_folds_each_run_of_checks_into_one_line():
    from visarch.display import without_checks

    folded = without_checks(SAMPLE)
    kept = folded.splitlines()
    assert kept[0] == SAMPLE.splitlines()[0] and '"""Docstring stays."""' in folded
    assert kept[2] == "        # ... argument checks (5 lines; full source in the API reference)"
    assert "        # ... argument checks (2 lines; full source in the API reference)" in kept
    assert "raise" not in folded and "check_" not in folded
    # an if with an else branch does something besides checking, so it stays
    assert "y = y.nan_to_num()" in folded and "y = y + eps" in folded and "# the lesson" in folded
    compile(textwrap.dedent(folded), "<folded>", "exec")  # still valid Python
    assert without_checks("def f(x):\n    return x\n") == "def f(x):\n    return x\n"


def test_show_source_folds_checks_unless_asked():
    from visarch.display import show_source
    from visarch.functional.normalization import group_norm

    folded, full = show_source(group_norm).data, show_source(group_norm, checks=True).data
    assert full == f"```python\n{inspect.getsource(group_norm)}```"
    assert "argument checks" in folded and "raise" not in folded and len(folded) < len(full)
