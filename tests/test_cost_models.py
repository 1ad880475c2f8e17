"""visarch.cost's closed forms of layers and whole networks: against the counts torch's own modules hold,
against published counts (the independent oracle), and against the networks built on the meta device for the
registry's configs and for random ones."""

import random

import pytest
import torch
from torch import nn

from visarch.cost import (
    attention_parameters,
    basic_block_parameters,
    bottleneck_parameters,
    clip_parameters,
    cvt_macs,
    cvt_parameters,
    densenet_parameters,
    encoder_block_parameters,
    linear_parameters,
    model_macs,
    norm_parameters,
    parameter_count,
    resnet_parameters,
    swin_parameters,
    vit_parameters,
    wide_resnet_parameters,
)
from visarch.models import create_on_meta, get_config

CLOSED_FORM = {"resnet": resnet_parameters, "wide_resnet50": resnet_parameters, "resnext": resnet_parameters,
               "se_resnet": resnet_parameters, "vit": vit_parameters, "deit": vit_parameters,
               "densenet": densenet_parameters, "cvt": cvt_parameters, "wrn": wide_resnet_parameters,
               "swin": swin_parameters}

# name, config overrides -> published count
PUBLISHED = {
    # torchvision's model tables
    ("resnet18", ()): 11_689_512, ("resnet34", ()): 21_797_672, ("resnet50", ()): 25_557_032,
    ("wide_resnet50_2", ()): 68_883_240, ("resnext50_32x4d", ()): 25_028_904,
    ("densenet121", ()): 7_978_856,
    ("densenet121", (("blocks", (6, 12, 32, 32)),)): 14_149_480,  # DenseNet-169
    ("densenet121", (("blocks", (6, 12, 48, 32)),)): 20_013_928,  # DenseNet-201
    ("densenet121", (("blocks", (6, 12, 36, 24)), ("growth_rate", 48), ("init_features", 96))): 28_681_000,  # -161
    ("vit_b_16", ()): 86_567_656, ("vit_l_16", ()): 304_326_632, ("vit_h_14", ()): 632_045_800,
    # the SE-ResNet-50 figure usually quoted (Cadene's pretrained-models port of the authors' release)
    ("se_resnet50", ()): 28_088_024,
    # the DeiT release, Touvron et al. (2021) table 1
    ("deit_tiny", ()): 5_717_416, ("deit_small", ()): 22_050_664,
    ("deit_tiny_distilled", ()): 5_910_800, ("deit_small_distilled", ()): 22_436_432,
    ("swin_t", ()): 28_288_354,  # torchvision's swin_t
    # WRN-28-10 as usually quoted; the WRN paper's tables round WRN-40-4, -16-8 and -28-10 to 8.9M, 11.0M, 36.5M
    ("wrn_28_10", ()): 36_479_194,
    # Hugging Face transformers' CvtForImageClassification (microsoft/cvt-13); the paper rounds to 20M
    ("cvt_13", ()): 19_997_480,
}


def closed_form(name):
    return next(fn for prefix, fn in CLOSED_FORM.items() if name.startswith(prefix))


@pytest.mark.parametrize(("name", "overrides"), list(PUBLISHED), ids=lambda v: v if isinstance(v, str) else "")
def test_closed_forms_give_the_published_counts(name, overrides):
    config = get_config(name, **dict(overrides))
    assert closed_form(name)(config) == PUBLISHED[name, overrides]
    assert parameter_count(create_on_meta(name, **dict(overrides))) == PUBLISHED[name, overrides]


def random_overrides(name, rng):
    if name.startswith("resnet"):
        block = rng.choice(["basic", "bottleneck"])
        bottleneck = block == "bottleneck"
        groups = rng.choice([1, 2, 4]) if bottleneck else 1
        return {"blocks": tuple(rng.randint(1, 3) for _ in range(rng.randint(1, 4))), "block": block,
                "width": 4 * rng.randint(1, 4), "expansion": rng.choice([1, 2, 4]) if bottleneck else 1,
                "stem": rng.choice(["cifar", "imagenet"]), "in_channels": rng.randint(1, 3), "groups": groups,
                "bottleneck_width": 8 * rng.randint(1, 2) if bottleneck else None,
                "se_reduction": rng.choice([None, 2, 4]) if bottleneck else None,
                "num_classes": rng.choice([None, 10])}
    if name.startswith("vit") or name.startswith("deit"):
        heads = rng.randint(1, 4)
        return {"image_size": 8 * rng.randint(1, 3), "patch_size": rng.choice([2, 4, 8]),
                "in_channels": rng.randint(1, 3), "dim": 2 * heads * rng.randint(1, 4), "depth": rng.randint(1, 3),
                "heads": heads, "mlp_dim": rng.randint(1, 40), "num_classes": rng.randint(1, 12),
                **({} if name.startswith("deit") else {"pos_embedding": rng.choice(["learned", "sinusoidal"]),
                                                       "embed_norm": rng.choice([True, False])})}
    if name.startswith("swin"):
        heads = tuple(rng.randint(1, 3) for _ in range(rng.randint(1, 4)))
        return {"patch_size": rng.choice([2, 4]), "in_channels": rng.randint(1, 3), "embed_dim": 4 * rng.randint(1, 3)
                * max(heads), "depths": tuple(rng.randint(1, 2) for _ in heads), "heads": heads,
                "window_size": rng.randint(1, 4), "mlp_ratio": rng.choice([1.0, 2.5, 4.0]),
                "num_classes": rng.randint(1, 10)}
    if name.startswith("wrn"):
        return {"depth": 4 + 6 * rng.randint(1, 3), "widen": rng.randint(1, 4), "in_channels": rng.randint(1, 3),
                "num_classes": rng.randint(1, 10)}
    if name.startswith("densenet"):
        return {"blocks": tuple(rng.randint(1, 4) for _ in range(rng.randint(1, 4))), "growth_rate": rng.randint(1, 12),
                "init_features": rng.randint(1, 16), "bottleneck": rng.randint(1, 4),
                "compression": rng.choice([0.5, 0.75, 1.0]), "in_channels": rng.randint(1, 3),
                "num_classes": rng.randint(1, 10)}
    heads = tuple(rng.randint(1, 3) for _ in range(3))  # CvT
    return {"dims": tuple(h * 4 * rng.randint(1, 4) for h in heads), "heads": heads,
            "depths": tuple(rng.randint(1, 2) for _ in range(3)), "qkv_kernel": rng.choice([1, 3, 5]),
            "mlp_ratio": rng.choice([1.0, 2.5, 4.0]), "in_channels": rng.randint(1, 3),
            "num_classes": rng.randint(1, 10)}


@pytest.mark.parametrize("name", ["resnet50", "vit", "deit_tiny_distilled", "densenet121", "cvt_small", "wrn_28_10",
                                  "swin_t"])
def test_closed_forms_count_the_built_networks_on_random_configs(name):
    rng = random.Random(name)
    for _ in range(25):
        overrides = random_overrides(name, rng)
        assert closed_form(name)(get_config(name, **overrides)) == parameter_count(create_on_meta(name, **overrides)), \
            overrides


def test_the_wrn_papers_rounded_counts():
    sizes = ((40, 4), (16, 8), (28, 10))
    counts = [wide_resnet_parameters(get_config("wrn_28_10", depth=d, widen=k)) for d, k in sizes]
    assert [round(n / 1e6, 1) for n in counts] == [8.9, 11.0, 36.5]


def test_cvt13_multiply_accumulates():
    config = get_config("cvt_13")
    # the paper's table 2: 4.5 GFLOPs (multiply-accumulates) at 224 pixels and 16.3 at 384
    for side, published, tolerance in ((224, 4.5e9, 0.02), (384, 16.3e9, 0.005)):
        macs = cvt_macs(config, side)
        assert macs == model_macs(create_on_meta("cvt_13"), (1, 3, side, side))
        assert abs(macs / published - 1) < tolerance


@pytest.mark.parametrize("dim, heads, mlp", [(8, 1, 16), (12, 3, 7), (64, 8, 256)])
def test_layer_closed_forms_are_torchs_counts(dim, heads, mlp):
    assert linear_parameters(dim, mlp) == parameter_count(nn.Linear(dim, mlp))
    assert linear_parameters(dim, mlp, bias=False) == parameter_count(nn.Linear(dim, mlp, bias=False))
    assert norm_parameters(dim) == parameter_count(nn.LayerNorm(dim)) == parameter_count(nn.BatchNorm2d(dim))
    assert attention_parameters(dim) == parameter_count(nn.MultiheadAttention(dim, heads))
    with torch.device("meta"):
        layer = nn.TransformerEncoderLayer(dim, heads, mlp, norm_first=True)
    assert encoder_block_parameters(dim, mlp) == parameter_count(layer)


def test_bad_layer_sizes_are_named():
    with pytest.raises(ValueError, match="in_features must be >= 1, got 0"):
        linear_parameters(0, 4)
    with pytest.raises(TypeError, match="channels C must be an int"):
        norm_parameters(2.0)
    with pytest.raises(ValueError, match="image_size must be >= 1, got 0"):
        cvt_macs(get_config("cvt_13"), 0)


@pytest.mark.parametrize("c_in, mid, out, groups, se, projection", [
    (64, 64, 256, 1, None, True), (256, 64, 256, 1, None, False), (256, 128, 512, 32, None, True),
    (512, 128, 512, 1, 16, False)])
def test_block_closed_forms_are_the_count_of_their_torch_layers(c_in, mid, out, groups, se, projection):
    def conv_bn(c, c_next, kernel, g=1):
        return [nn.Conv2d(c, c_next, kernel, groups=g, bias=False), nn.BatchNorm2d(c_next)]

    layers = conv_bn(c_in, mid, 1) + conv_bn(mid, mid, 3, groups) + conv_bn(mid, out, 1)
    layers += [nn.Conv2d(out, out // se, 1), nn.Conv2d(out // se, out, 1)] if se else []
    layers += conv_bn(c_in, out, 1) if projection else []
    expected = parameter_count(nn.ModuleList(layers))
    assert bottleneck_parameters(c_in, mid, out, projection=projection, groups=groups, se_reduction=se) == expected
    basic = conv_bn(c_in, out, 3) + conv_bn(out, out, 3) + (conv_bn(c_in, out, 1) if projection else [])
    assert basic_block_parameters(c_in, out, projection=projection) == parameter_count(nn.ModuleList(basic))


def test_clip_closed_form_counts_both_towers_on_random_configs():
    rng = random.Random("clip")
    for _ in range(15):
        heads = rng.randint(1, 3)
        overrides = {"embed_dim": rng.randint(1, 16), "image_size": 8 * rng.randint(1, 2), "patch_size": 4,
                     "in_channels": rng.randint(1, 3), "vision_width": 4 * heads * rng.randint(1, 2),
                     "vision_layers": rng.randint(1, 2), "vision_heads": heads, "context_length": rng.randint(2, 9),
                     "vocab_size": rng.randint(3, 40), "text_width": 4 * heads, "text_layers": rng.randint(1, 2),
                     "text_heads": heads, "mlp_ratio": rng.randint(1, 4)}
        model = create_on_meta("clip_tiny", **overrides)
        image, text, total = clip_parameters(get_config("clip_tiny", **overrides))
        assert (image, text, total) == (parameter_count(model.visual), parameter_count(model.text),
                                        parameter_count(model)), overrides
