"""CLIP against the released ViT-B/32's count, its design (causal text encoder read at the end of text,
bias-free projections, the clipped logit scale), the symmetric contrastive loss, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from visarch.cost import clip_parameters, parameter_count
from visarch.models import create, get_config
from visarch.models.clip import QuickGELU, contrastive_loss
from visarch.tokenizer import digit_tokenizer
from visarch.tolerance import reduction_tolerance


def test_vit_b_32_has_the_released_count():
    vision, text, total = clip_parameters(get_config("clip_vit_b_32"))  # the closed form of visarch.cost
    assert total == 151_277_313  # the released ViT-B/32 checkpoint
    assert round(text / 1e6) == 63  # Radford et al. (2021), section 2.4: "a 63M-parameter" text transformer
    with torch.device("meta"):
        model = create("clip_vit_b_32")
    assert parameter_count(model) == total
    assert (parameter_count(model.visual), parameter_count(model.text)) == (vision, text)


def test_tiny_clip_is_a_few_tens_of_thousands_of_parameters():
    c = get_config("clip_tiny")
    assert c.vocab_size == len(digit_tokenizer())
    *_, total = clip_parameters(c)
    assert parameter_count(create("clip_tiny")) == total and 20_000 < total < 100_000


def test_the_image_encoder_departs_from_the_vit_where_clip_does():
    model = create("clip_tiny")
    visual = model.visual
    assert visual.patch_embedding.bias is None and visual.head.bias is None and model.text.projection.bias is None
    assert isinstance(visual.embed_norm, torch.nn.LayerNorm)  # CLIP's extra LayerNorm before the transformer
    assert all(isinstance(b.mlp[1], QuickGELU) for b in (*visual.blocks, *model.text.blocks))


def test_quick_gelu_is_within_0_021_of_gelu():
    x = torch.linspace(-8, 8, 20001)
    assert torch.equal(QuickGELU()(x), x * torch.sigmoid(1.702 * x))
    assert (QuickGELU()(x) - F.gelu(x)).abs().max() < 0.021


def tokens(rows, length, vocab, generator):
    """Random word ids with the end-of-text id (V - 1) at position ``rows[i]`` of row i, padding after it."""
    out = torch.randint(1, vocab - 2, (len(rows), length), generator=generator)
    for i, end in enumerate(rows):
        out[i, end], out[i, end + 1:] = vocab - 1, 0
    return out


def test_forward_is_the_scaled_cosine_similarity_of_the_two_embeddings():
    torch.manual_seed(0)
    model = create("clip_tiny").eval()
    g = torch.Generator().manual_seed(1)
    images, ids = torch.rand(3, 1, 8, 8, generator=g), tokens([4, 11, 2, 6, 1], 12, model.config.vocab_size, g)
    with torch.no_grad():
        logits = model(images, ids)  # 3 images against 5 captions
        u, v = model.encode_image(images), model.encode_text(ids)
        cosine = torch.tensor([[float(a @ b / (a.norm() * b.norm())) for b in v] for a in u])
    assert logits.shape == (3, 5)
    assert math.isclose(model.scale().item(), 1 / 0.07, rel_tol=1e-6)
    # a cosine sums E = 32 unit-scale products; the logit is it times 1 / 0.07
    torch.testing.assert_close(logits, cosine / 0.07, **reduction_tolerance(32, scale=1 / 0.07))
    assert logits.abs().max() <= model.scale() + 1e-5  # in [-s, s]


def test_logit_scale_is_clipped_at_100():
    model = create("clip_tiny")
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1000.0))
    assert model.scale().item() == 100.0


def test_text_feature_is_read_at_the_end_of_text_and_ignores_what_follows():
    torch.manual_seed(0)
    model = create("clip_tiny").eval()
    vocab, g = model.config.vocab_size, torch.Generator().manual_seed(2)
    ids = tokens([5, 8], 12, vocab, g)
    with torch.no_grad():
        base = model.encode_text(ids)
        after = ids.clone()
        after[:, 10] = 3  # a token after the end of text: causal attention never lets it reach the feature
        before = ids.clone()
        before[:, 1] = (ids[:, 1] % (vocab - 3)) + 1  # another word before the end of text
        torch.testing.assert_close(model.encode_text(after), base, rtol=0, atol=1e-6)
        assert (model.encode_text(before) - base).abs().max() > 1e-3
        # the feature is the final LayerNorm of the hidden state at the end of text, projected
        x = model.text.token_embedding(ids) + model.text.pos_embedding
        for block in model.text.blocks:
            x = block(x)
        expected = model.text.projection(model.text.norm(x)[torch.arange(2), torch.tensor([5, 8])])
        torch.testing.assert_close(base, expected)
        # shorter rows than the context read the first L positions
        # (attention then sums over 9 positions instead of 12, in another order)
        torch.testing.assert_close(model.encode_text(ids[:, :9]), base, **reduction_tolerance(32 + 12))


def test_causal_attention_maps_match_the_fast_path_and_never_look_ahead():
    block = create("clip_tiny").text.blocks[0]
    x = torch.randn(2, 7, 32)
    fast, _ = block.attention(x)
    slow, maps = block.attention(x, weights=True)
    torch.testing.assert_close(fast, slow, **reduction_tolerance(16 + 7))  # d_h = 16 and T = 7 terms
    assert maps.shape == (2, 2, 7, 7) and bool((maps.triu(1) == 0).all())
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 7))


def test_contrastive_loss_is_the_mean_of_the_two_cross_entropies():
    g = torch.Generator().manual_seed(3)
    for n in (1, 2, 5, 17):
        logits = 10 * torch.randn(n, n, generator=g, dtype=torch.float64)
        rows = -sum(logits[i, i] - torch.logsumexp(logits[i], 0) for i in range(n)) / n  # image -> caption
        cols = -sum(logits[j, j] - torch.logsumexp(logits[:, j], 0) for j in range(n)) / n  # caption -> image
        torch.testing.assert_close(contrastive_loss(logits), (rows + cols) / 2)
        torch.testing.assert_close(contrastive_loss(logits.T), contrastive_loss(logits))  # symmetric
    assert contrastive_loss(100 * torch.eye(4)).item() < 1e-30  # a perfect match costs nothing
    assert math.isclose(contrastive_loss(torch.zeros(8, 8)).item(), math.log(8), rel_tol=1e-6)  # chance: log N


def test_clip_tiny_trains_every_parameter_and_is_deterministic():
    g = torch.Generator().manual_seed(4)
    images, ids = torch.rand(4, 1, 8, 8, generator=g), tokens([3, 5, 9, 11], 12, 34, g)
    torch.manual_seed(0)
    model = create("clip_tiny")
    contrastive_loss(model(images, ids)).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead
    torch.manual_seed(0)
    again = create("clip_tiny")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(),
                                                  strict=True))


@pytest.mark.parametrize("overrides, match", [
    ({"image_size": 9}, r"image size 9 is not divisible by the patch size 2"),
    ({"vision_heads": 3}, r"image width 32 is not divisible by the number of heads 3"),
    ({"text_heads": 5}, r"text width 32 is not divisible by the number of heads 5"),
    ({"vocab_size": 2}, r"vocab_size must be >= 3"),
    ({"context_length": 1}, r"context_length must be >= 2"),
    ({"init_temperature": 0.0}, r"temperature tau must be > 0"),
    ({"max_logit_scale": 10.0}, r"max_logit_scale must be >= 1 / tau = 14.29"),
    ({"text_layers": 0}, r"text_layers must be >= 1, got 0"),
])
def test_bad_configs(overrides, match):
    with pytest.raises(ValueError, match=match):
        get_config("clip_tiny", **overrides)


def test_bad_input_names_the_condition():
    model = create("clip_tiny")
    images, g = torch.rand(2, 1, 8, 8), torch.Generator().manual_seed(5)
    good = tokens([3, 4], 12, 34, g)
    with pytest.raises(ValueError, match="captions of 13 tokens are longer than the context length 12"):
        model(images, torch.cat([good, good[:, :1]], 1))
    with pytest.raises(ValueError, match=r"exactly one end-of-text token \(id 33\)"):
        model(images, good.clamp(max=32))
    with pytest.raises(ValueError, match=r"token ids must be in 0 .. 33"):
        model(images, good + 1)
    with pytest.raises(ValueError, match="integer tensor of ids"):
        model(images, good.float())
    with pytest.raises(ValueError, match=r"input must be \[B, 1, 8, 8\]"):
        model(torch.rand(2, 1, 16, 16), good)
    with pytest.raises(ValueError, match="needs a square .* got 2 images and 3 captions"):
        contrastive_loss(model(images, torch.cat([good, good[:1]])))
    with pytest.raises(ValueError, match="got shape"):
        contrastive_loss(torch.zeros(3))


def test_the_tokenizer_feeds_the_tiny_model():
    tok = digit_tokenizer()
    ids = tok.encode(["a photo of the digit seven", "a blurry 3"], context_length=12)
    out = create("clip_tiny")(torch.rand(3, 1, 8, 8), ids)
    assert out.shape == (3, 2) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="more than the context length 12"):
        tok.encode("a blurry photo of the digit seven a blurry photo of the digit", context_length=12)
