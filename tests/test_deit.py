"""DeiT against its published counts, the distillation token and head, the hard-distillation loss, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from visarch.cost import parameter_count
from visarch.models import create
from visarch.models.deit import DeiTConfig, hard_distillation_loss


def vit_count(dim, *, depth=12, patch=16, image=224, classes=1000, extra_tokens=0):
    """Patch conv, tokens, learned position embeddings, blocks (2 LN, qkv, proj, MLP 4D), final LN, heads."""
    tokens = 1 + extra_tokens + (image // patch) ** 2
    block = 4 * dim + (3 * dim * dim + 3 * dim) + (dim * dim + dim) + (8 * dim * dim + 5 * dim)
    head = dim * classes + classes
    return (3 * patch**2 * dim + dim) + (1 + extra_tokens) * dim + tokens * dim + depth * block + 2 * dim \
        + (1 + extra_tokens) * head


@pytest.mark.parametrize(("name", "dim", "distilled", "published"), [
    ("deit_tiny", 192, False, 5_717_416), ("deit_small", 384, False, 22_050_664),  # Touvron et al. (2021), table 1
    ("deit_tiny_distilled", 192, True, 5_910_800), ("deit_small_distilled", 384, True, 22_436_432),
])
def test_published_counts(name, dim, distilled, published):
    with torch.device("meta"):
        model = create(name)
    assert vit_count(dim, extra_tokens=int(distilled)) == published
    assert parameter_count(model) == published


def test_the_distillation_token_costs_two_embeddings_and_a_head():
    for dim in (192, 384):
        assert vit_count(dim, extra_tokens=1) - vit_count(dim) == dim + dim + dim * 1000 + 1000


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
