"""``visarch.display``: the layer table lists every module's output shape and parameters, and its
totals are torch's own count."""

from __future__ import annotations

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
