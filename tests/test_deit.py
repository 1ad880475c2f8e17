"""DeiT (its published counts: tests/test_cost_models.py): the distillation token and head, the
hard-distillation loss, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from visarch.cost import vit_parameters
from visarch.models import create, get_config
from visarch.models.deit import DeiTConfig, hard_distillation_loss


def test_the_distillation_token_costs_two_embeddings_and_a_head():
    for name in ("deit_tiny", "deit_small"):
        dim = get_config(name).dim
        extra = vit_parameters(get_config(f"{name}_distilled")) - vit_parameters(get_config(name))
        assert extra == dim + dim + dim * 1000 + 1000  # token, its position, a second D -> 1000 head


def test_distilled_forward_averages_the_two_heads():
    model = create("deit_tiny_distilled", image_size=32, depth=2).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        class_scores, distillation_scores = model.heads(x)
        assert model.pos_embedding.shape == (1, 2 + 4, 192)
        assert torch.allclose(model(x), (class_scores + distillation_scores) / 2)
        assert not torch.allclose(class_scores, distillation_scores)  # two different heads


def test_hard_distillation_loss_uses_the_teachers_argmax():
    g = torch.Generator().manual_seed(0)
    c, d, t = (torch.randn(5, 4, generator=g) for _ in range(3))
    y = torch.randint(0, 4, (5,), generator=g)
    expected = 0.5 * F.cross_entropy(c, y) + 0.5 * F.cross_entropy(d, t.argmax(1))
    assert torch.allclose(hard_distillation_loss(c, d, y, t), expected)
    assert torch.allclose(hard_distillation_loss(c, d, y, 10 * t), expected)  # only the teacher's decision counts
    with pytest.raises(ValueError, match="must have one shape"):
        hard_distillation_loss(c, d, y, t[:, :3])


def test_bad_configs_and_inputs():
    with pytest.raises(ValueError, match="needs learned position embeddings"):
        DeiTConfig(pos_embedding="sinusoidal")
    with pytest.raises(ValueError, match="not divisible by the number of heads K=5"):
        create("deit_tiny_distilled", heads=5)
    with pytest.raises(ValueError, match="image size 40 is not divisible by the patch size 16"):
        create("deit_small", image_size=40)
    with pytest.raises(ValueError, match=r"input must be \[B, 3, 32, 32\]"):
        create("deit_tiny_distilled", image_size=32, depth=1)(torch.randn(1, 3, 16, 16))
