"""visarch.cost's closed forms of layers and whole networks: against the counts torch's own modules hold,
against published counts (the independent oracle), and against the networks built on the meta device for the
registry's configs and for random ones."""

import random

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from visarch.cost import (
    anynet_macs,
    attention_macs,
    attention_parameters,
    auxiliary_head_parameters,
    basic_block_parameters,
    bottleneck_parameters,
    c3d_block_parameters,
    clip_parameters,
    convnext_block_parameters,
    convnext_parameters,
    cvt_macs,
    cvt_parameters,
    densenet_parameters,
    efficientnet_parameters,
    encoder_block_parameters,
    gmacs,
    googlenet_parameters,
    inception_parameters,
    inverted_residual_parameters,
    linear_parameters,
    mobilenet_v1_parameters,
    mobilenet_v2_parameters,
    model_macs,
    nonlocal_block_parameters,
    norm_parameters,
    parameter_count,
    preact_bottleneck_resnet_cost,
    r2plus1d_block_parameters,
    r2plus1d_mid_channels,
    resnet_parameters,
    squeeze_excitation_parameters,
    swin_parameters,
    timesformer_parameters,
    unet_parameters,
    unet_res_block_parameters,
    vatt_parameters,
    vgg_macs,
    vgg_parameters,
    video_net_parameters,
    vit_parameters,
    wide_resnet_parameters,
)
from visarch.models import create_on_meta, get_config
from visarch.models.convnext import ConvNeXt, ConvNeXtBlock, ConvNeXtConfig, modernisation_configs
from visarch.models.googlenet import INCEPTION_MODULES, AuxiliaryHead, Inception
from visarch.models.layers import SqueezeExcitation
from visarch.models.mobilenet import V1_BODY
from visarch.models.regnet import AnyNet, AnyNetConfig
from visarch.models.timesformer import SCHEMES
from visarch.models.vgg import VGG_CONFIGURATIONS
from visarch.nn.nonlocal_block import MODES, NonLocalBlock

CLOSED_FORM = {"resnet": resnet_parameters, "wide_resnet50": resnet_parameters, "resnext": resnet_parameters,
               "se_resnet": resnet_parameters, "vit": vit_parameters, "deit": vit_parameters,
               "densenet": densenet_parameters, "cvt": cvt_parameters, "wrn": wide_resnet_parameters,
               "swin": swin_parameters, "convnext": convnext_parameters, "efficientnet": efficientnet_parameters,
               "mobilenet_v2": mobilenet_v2_parameters, "frames2d": video_net_parameters,
               "c3d": video_net_parameters, "r2plus1d": video_net_parameters, "vatt": vatt_parameters,
               # the closed forms of the architectures defined by a table of their model module take the table
               "vgg": lambda c: vgg_parameters(c, stages=VGG_CONFIGURATIONS[c.configuration]),
               "googlenet": lambda c: googlenet_parameters(c, modules=INCEPTION_MODULES),
               "mobilenet_v1": lambda c: mobilenet_v1_parameters(c, body=V1_BODY),
               "timesformer": lambda c: timesformer_parameters(c, attentions=len(SCHEMES[c.attention])),
               "unet": lambda c: unet_parameters(c)[-1]}

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
    # torchvision's model tables ("num_params" of the weights' meta)
    ("vgg11", ()): 132_863_336, ("vgg13", ()): 133_047_848, ("vgg16", ()): 138_357_544, ("vgg19", ()): 143_667_240,
    ("googlenet", ()): 6_624_904,
    ("convnext_tiny", ()): 28_589_128,
    ("convnext_tiny", (("depths", (3, 3, 27, 3)),)): 50_223_688,  # ConvNeXt-S
    ("convnext_tiny", (("depths", (3, 3, 27, 3)), ("widths", (128, 256, 512, 1024)))): 88_591_464,  # -B
    ("mobilenet_v2", ()): 3_504_872,
    ("efficientnet_b0", ()): 5_288_548, ("efficientnet_b1", ()): 7_794_184, ("efficientnet_b2", ()): 9_109_994,
    ("efficientnet_b3", ()): 12_233_232,
    # torchvision's GoogLeNet built with aux_logits=True (its weights' table counts the network without the heads)
    ("googlenet_aux", ()): 13_004_888,
    # the trainable parameters of the authors' Keras MobileNet (alpha = 1, 1000 classes)
    ("mobilenet_v1", ()): 4_231_976,
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
    if name.startswith("vgg"):
        return {"configuration": rng.choice(list(VGG_CONFIGURATIONS)), "in_channels": rng.randint(1, 3),
                "hidden": rng.randint(1, 64), "pooled": rng.randint(1, 3), "num_classes": rng.randint(1, 10)}
    if name.startswith("googlenet"):
        return {"in_channels": rng.randint(1, 3), "num_classes": rng.randint(1, 10),
                "aux_logits": rng.choice([True, False]), "kernel_5x5": rng.choice([1, 3, 5, 7])}
    if name.startswith("convnext"):
        stages = rng.randint(1, 4)
        return {"depths": tuple(rng.randint(1, 2) for _ in range(stages)),
                "widths": tuple(4 * rng.randint(1, 4) for _ in range(stages)),
                "hidden_ratio": rng.choice([0.25, 0.5, 1, 4]), "kernel_size": rng.choice([1, 3, 7]),
                "depthwise": rng.choice([True, False]), "spatial_first": rng.choice([True, False]),
                "stem": rng.choice(["patchify", "resnet"]), "stem_width": rng.choice([None, 4 * rng.randint(1, 3)]),
                "act": rng.choice(["gelu", "relu"]), "norm": rng.choice(["layer", "batch"]),
                "activations": rng.choice(["one", "all"]), "norms": rng.choice(["one", "all"]),
                "downsample": rng.choice(["separate", "in_block"]), "layer_scale": rng.choice([None, 1e-6]),
                "in_channels": rng.randint(1, 3), "num_classes": rng.randint(1, 10)}
    if name.startswith("mobilenet_v1"):
        return {"alpha": rng.choice([0.25, 0.5, 0.75, 1.0, 1.3]), "min_channels": rng.randint(1, 8),
                "in_channels": rng.randint(1, 3), "num_classes": rng.randint(1, 10)}
    if name.startswith("mobilenet_v2"):
        return {"width_mult": rng.choice([0.35, 0.5, 1.0, 1.4]), "stem_channels": rng.randint(1, 32),
                "setting": tuple((rng.randint(1, 6), rng.randint(1, 32), rng.randint(1, 3), rng.choice([1, 2]))
                                 for _ in range(rng.randint(1, 4))),
                "last_channels": rng.randint(1, 64), "round_to": rng.choice([1, 4, 8]),
                "in_channels": rng.randint(1, 3), "num_classes": rng.randint(1, 10)}
    if name.startswith("efficientnet"):
        widths = [rng.randint(1, 40) for _ in range(rng.randint(2, 5))]
        return {"width_mult": rng.choice([0.5, 1.0, 1.1, 1.4]), "depth_mult": rng.choice([1.0, 1.2, 1.8]),
                "stages": tuple((rng.randint(1, 6), rng.choice([1, 3, 5]), rng.choice([1, 2]), c_in, c_out,
                                 rng.randint(1, 3)) for c_in, c_out in zip(widths, widths[1:], strict=False)),
                "head_channels": rng.randint(1, 64), "in_channels": rng.randint(1, 3),
                "num_classes": rng.randint(1, 10)}
    if name.startswith("timesformer"):
        heads, patch, grid = rng.randint(1, 3), rng.choice([2, 4]), rng.choice([2, 4])
        return {"image_size": patch * grid, "patch_size": patch, "frames": rng.choice([2, 4]),
                "in_channels": rng.randint(1, 3), "dim": heads * rng.randint(1, 4), "heads": heads,
                "depth": rng.randint(1, 3), "mlp_ratio": rng.randint(1, 4), "num_classes": rng.randint(1, 10),
                "attention": rng.choice(list(SCHEMES))}
    if name in ("frames2d_small", "c3d_small", "r2plus1d_small"):  # the video networks
        block = rng.choice(["c3d", "r2plus1d"])
        widths = tuple(rng.randint(1, 12) for _ in range(rng.randint(1, 3)))
        return {"block": block, "widths": widths, "time": rng.choice([3, 5] if block == "r2plus1d" else [1, 3, 5]),
                "pooled_blocks": rng.randint(0, len(widths)), "in_channels": rng.randint(1, 3),
                "num_classes": rng.randint(1, 10)}
    if name.startswith("unet"):
        groups, levels = rng.choice([1, 2, 4]), rng.randint(1, 3)
        return {"in_channels": rng.randint(1, 3), "base_channels": groups * rng.randint(1, 3),
                "channels": tuple(groups * rng.randint(1, 4) for _ in range(levels)),
                "attention": tuple(rng.choice([True, False]) for _ in range(levels)), "blocks": rng.randint(1, 2),
                "embed_dim": rng.randint(1, 8), "groups": groups}
    if name.startswith("vatt"):
        def tower():
            heads = rng.randint(1, 2)
            return (heads * rng.randint(1, 4), rng.randint(1, 2), heads, rng.randint(1, 16))

        return {"frames": rng.randint(1, 6), "image_size": rng.randint(4, 12), "in_channels": rng.randint(1, 3),
                "video_patch": (rng.randint(1, 3), rng.randint(2, 4), rng.randint(2, 4)),
                "audio_samples": rng.randint(8, 64), "audio_patch": rng.randint(2, 8),
                "vocab_size": rng.randint(3, 40), "text_length": rng.randint(1, 8), "video": tower(), "audio": tower(),
                "text": tower(), "va_dim": rng.randint(1, 16), "vt_dim": rng.randint(1, 16)}
    heads = tuple(rng.randint(1, 3) for _ in range(3))  # CvT
    return {"dims": tuple(h * 4 * rng.randint(1, 4) for h in heads), "heads": heads,
            "depths": tuple(rng.randint(1, 2) for _ in range(3)), "qkv_kernel": rng.choice([1, 3, 5]),
            "mlp_ratio": rng.choice([1.0, 2.5, 4.0]), "in_channels": rng.randint(1, 3),
            "num_classes": rng.randint(1, 10)}


@pytest.mark.parametrize("name", ["resnet50", "vit", "deit_tiny_distilled", "densenet121", "cvt_small", "wrn_28_10",
                                  "swin_t", "vgg16", "googlenet", "convnext_tiny", "mobilenet_v1", "mobilenet_v2",
                                  "efficientnet_b0", "timesformer_small", "c3d_small", "unet", "vatt_tiny"])
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


def test_vgg_macs_are_the_counted_macs_on_random_configs_and_sizes():
    rng = random.Random("vgg macs")
    for _ in range(12):
        overrides, side = random_overrides("vgg16", rng), rng.choice([32, 48, 64, 100])
        config = get_config("vgg16", **overrides)
        macs = vgg_macs(config, side, stages=VGG_CONFIGURATIONS[config.configuration])
        assert macs == model_macs(create_on_meta("vgg16", **overrides), (1, config.in_channels, side, side)), overrides


@pytest.mark.parametrize("name, published", [("resnet50", 4.089), ("convnext_tiny", 4.456), ("vgg16", 15.47)])
def test_gmacs_are_torchvisions_published_operations(name, published):
    # torchvision's model tables give "_ops", the GMACs of one 224 x 224 image, to three decimals (two for VGG)
    assert round(gmacs(create_on_meta(name)), len(str(published).split(".")[1])) == published
    assert gmacs(create_on_meta(name), 32) * 1e9 == model_macs(create_on_meta(name), (1, 3, 32, 32))


def test_the_convnext_walk_is_counted_step_by_step():
    """Every step from ResNet-50 to ConvNeXt-T, the first torchvision's resnet50, the last its convnext_tiny."""
    counts = []
    for _, config in modernisation_configs():
        with torch.device("meta"):
            counts.append(parameter_count(ConvNeXt(config)))
        assert convnext_parameters(config) == counts[-1]
    assert (counts[0], counts[-1]) == (25_557_032, 28_589_128)


def test_convnext_block_closed_form_is_the_blocks_count():
    rng = random.Random("convnext block")
    for _ in range(40):
        overrides = random_overrides("convnext_tiny", rng)
        config = ConvNeXtConfig(**overrides)
        c_in, c_out, stride = 4 * rng.randint(1, 3), 4 * rng.randint(1, 3), rng.choice([1, 2])
        with torch.device("meta"):
            block = ConvNeXtBlock(c_in, c_out, config=config, stride=stride)
        assert convnext_block_parameters(c_in, c_out, config=config, stride=stride) == parameter_count(block)


def test_googlenet_parts_are_the_counts_of_its_modules():
    with torch.device("meta"):
        for widths in INCEPTION_MODULES.values():
            for kernel in (3, 5):
                assert inception_parameters(*widths, kernel_5x5=kernel) == \
                    parameter_count(Inception(*widths, kernel_5x5=kernel))
        for c in (512, 528):
            assert auxiliary_head_parameters(c, num_classes=1000) == parameter_count(AuxiliaryHead(c, num_classes=1000))


def test_nonlocal_block_closed_form_for_every_mode():
    for mode in MODES:
        for dims, batch_norm in ((2, True), (3, True), (2, False), (3, False)):
            c, ci = 4 + dims, dims + int(batch_norm)
            block = NonLocalBlock(c, inter_channels=ci, mode=mode, dims=dims, batch_norm=batch_norm)
            assert nonlocal_block_parameters(c, ci, mode=mode, batch_norm=batch_norm) == parameter_count(block)


def test_video_block_closed_forms_are_the_count_of_their_torch_layers():
    rng = random.Random("video blocks")
    for _ in range(30):
        t, d, n, n_out, bn = rng.choice([1, 3, 5]), rng.choice([1, 3]), rng.randint(1, 9), rng.randint(1, 9), \
            rng.choice([True, False])
        with torch.device("meta"):
            c3d = [nn.Conv3d(n, n_out, (t, d, d), bias=not bn)] + ([nn.BatchNorm3d(n_out)] if bn else [])
        assert c3d_block_parameters(n, n_out, time=t, size=d, batch_norm=bn) == parameter_count(nn.ModuleList(c3d))
        m = rng.randint(1, 9)
        with torch.device("meta"):
            factored = [nn.Conv3d(n, m, (1, d, d), bias=not bn), nn.Conv3d(m, n_out, (t, 1, 1), bias=not bn)]
            factored += [nn.BatchNorm3d(m), nn.BatchNorm3d(n_out)] if bn else []
        assert r2plus1d_block_parameters(n, n_out, time=t, size=d, batch_norm=bn, mid=m) == \
            parameter_count(nn.ModuleList(factored))


def test_r2plus1d_mid_channels():
    """Tran et al. (2018): M = 144 for the 3 x 3 x 3 convolutions from 64 to 64 channels of R(2+1)D-18; and M is
    the largest width whose factorised weights M (d^2 N + t N') do not exceed the 3D convolution's t d^2 N N'."""
    assert r2plus1d_mid_channels(3, 3, 64, 64) == 144
    rng = random.Random("mid")
    for _ in range(200):
        t, d, n, n_out = rng.randint(1, 7), rng.randint(1, 7), rng.randint(1, 512), rng.randint(1, 512)
        m, full, per_channel = r2plus1d_mid_channels(t, d, n, n_out), t * d * d * n * n_out, d * d * n + t * n_out
        assert m * per_channel <= full < (m + 1) * per_channel


def test_unet_residual_block_is_the_count_of_its_torch_layers():
    for c_in, c_out, d in ((4, 4, 3), (4, 8, 5), (64, 128, 256)):
        with torch.device("meta"):
            layers = [nn.GroupNorm(2, c_in), nn.Conv2d(c_in, c_out, 3), nn.Linear(d, c_out), nn.GroupNorm(2, c_out),
                      nn.Conv2d(c_out, c_out, 3)] + ([nn.Conv2d(c_in, c_out, 1)] if c_in != c_out else [])
        assert unet_res_block_parameters(c_in, c_out, embed_dim=d) == parameter_count(nn.ModuleList(layers))


def test_unet_parts_add_up_and_the_total_is_the_networks():
    descent, middle, ascent, output, total = unet_parameters(get_config("unet"))
    assert descent + middle + ascent + output == total == parameter_count(create_on_meta("unet"))
    model = create_on_meta("unet")
    assert output == parameter_count(model.norm_out) + parameter_count(model.conv_out)
    assert middle == parameter_count(model.middle)


@pytest.mark.parametrize("t, c_in, c_out, k, squeeze", [(1, 32, 16, 3, None), (6, 16, 24, 3, None),
                                                        (6, 24, 24, 5, 6), (1, 32, 16, 3, 8)])
def test_inverted_residual_is_the_count_of_its_torch_layers(t, c_in, c_out, k, squeeze):
    def conv_bn(c, c_next, kernel, groups=1):
        return [nn.Conv2d(c, c_next, kernel, groups=groups, bias=False), nn.BatchNorm2d(c_next)]

    hidden = t * c_in
    with torch.device("meta"):
        layers = (conv_bn(c_in, hidden, 1) if t > 1 else []) + conv_bn(hidden, hidden, k, hidden) \
            + conv_bn(hidden, c_out, 1)
        layers += [nn.Conv2d(hidden, squeeze, 1), nn.Conv2d(squeeze, hidden, 1)] if squeeze else []
    assert inverted_residual_parameters(c_in, c_out, expand_ratio=t, kernel_size=k, squeeze=squeeze) == \
        parameter_count(nn.ModuleList(layers))


def test_timesformer_closed_form_at_the_papers_base_size():
    overrides = {"image_size": 224, "frames": 8, "patch_size": 16, "dim": 768, "depth": 12, "heads": 12,
                 "num_classes": 400}
    for scheme, attentions in SCHEMES.items():
        config = get_config("timesformer_small", attention=scheme, **overrides)
        assert timesformer_parameters(config, attentions=len(attentions)) == \
            parameter_count(create_on_meta("timesformer_small", attention=scheme, **overrides))


def test_bad_arguments_of_the_new_closed_forms_are_named():
    with pytest.raises(ValueError, match="mode must be one of embedded_gaussian, gaussian, dot_product, "
                                         "concatenation, got 'cosine'"):
        nonlocal_block_parameters(8, 4, mode="cosine")
    with pytest.raises(ValueError, match="attentions a must be >= 1, got 0"):
        timesformer_parameters(get_config("timesformer_small"), attentions=0)
    with pytest.raises(TypeError, match="temporal kernel size t must be an int, got float"):
        r2plus1d_mid_channels(3.0, 3, 8, 8)
    with pytest.raises(ValueError, match="mid channels M must be >= 1, got 0"):
        r2plus1d_block_parameters(8, 8, mid=0)
    with pytest.raises(ValueError, match="image_size must be >= 1, got 0"):
        gmacs(create_on_meta("resnet18"), 0)
    with pytest.raises(TypeError, match="batch_norm must be a bool, got int"):
        c3d_block_parameters(4, 4, batch_norm=1)


@pytest.mark.parametrize("channels, squeeze", [(256, 16), (2048, 128), (7, 1), (96, 24), (13, 5)])
def test_squeeze_excitation_closed_form_is_the_layers_count(channels, squeeze):
    with torch.device("meta"):
        gate = SqueezeExcitation(channels, squeeze)
    assert squeeze_excitation_parameters(channels, squeeze=squeeze) == parameter_count(gate)


class _PreActBottleneck(nn.Module):
    """He et al.'s (2016b) pre-activation bottleneck, built from torch's layers for the test."""

    def __init__(self, c_in, mid, stride, projection):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU())
        self.branch = nn.Sequential(nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                                    nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
                                    nn.Conv2d(mid, 4 * mid, 1, bias=False))
        self.shortcut = nn.Conv2d(c_in, 4 * mid, 1, stride, bias=False) if projection else None

    def forward(self, x):
        z = self.pre(x)
        return self.branch(z) + (x if self.shortcut is None else self.shortcut(z))


def _preact_resnet(n, classes, in_channels):
    layers, c = [nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)], 16
    for i, mid in enumerate((16, 32, 64)):
        for b in range(n):
            layers.append(_PreActBottleneck(c, mid, 2 if i > 0 and b == 0 else 1, b == 0))
            c = 4 * mid
    layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    return nn.Sequential(*layers)


@pytest.mark.parametrize("n, classes, size, in_channels", [(1, 10, 32, 3), (2, 100, 17, 1), (3, 7, 9, 3),
                                                           (18, 10, 32, 3), (5, 2, 40, 4)])
def test_preact_bottleneck_resnet_is_the_count_of_its_torch_layers(n, classes, size, in_channels):
    with torch.device("meta"):
        model = _preact_resnet(n, classes, in_channels)
    norms = sum(parameter_count(m) for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert preact_bottleneck_resnet_cost(blocks_per_stage=n, num_classes=classes, image_size=size,
                                         in_channels=in_channels) == \
        (parameter_count(model), norms, model_macs(model, (1, in_channels, size, size)))


def test_preact_resnets_weights_are_the_papers_counts():
    # He et al. (2016b), table 2 (CIFAR): ResNet-164 has 1.7M parameters, ResNet-1001 10.2M (weights only)
    weights = []
    for n in (18, 111):
        params, norm, _ = preact_bottleneck_resnet_cost(blocks_per_stage=n)
        weights.append(round((params - norm) / 1e6, 1))
    assert weights == [1.7, 10.2]


def test_regnet_macs_are_torchvisions_published_operations():
    # torchvision's tables: regnet_x_400mf 0.41 GFLOPS, regnet_y_400mf 0.40 (multiply-adds) at 224 x 224
    for name, published in (("regnetx_400mf", 0.41), ("regnety_400mf", 0.40)):
        macs = anynet_macs(get_config(name), image_size=224)
        assert round(macs / 1e9, 2) == published
        assert macs == model_macs(create_on_meta(name), (1, 3, 224, 224))


def test_anynet_macs_are_the_counted_macs_on_random_configs_and_sizes():
    rng = random.Random("anynet macs")
    checked = 0
    while checked < 25:
        stages = rng.randint(1, 4)
        widths = tuple(rng.choice((8, 16, 24, 32, 48, 64)) for _ in range(stages))
        ratios = tuple(rng.choice((1, 2, 4)) for _ in range(stages))
        groups = tuple(rng.choice((1, 2, 4, 8)) for _ in range(stages))
        if any(w % b or (w // b) % g for w, b, g in zip(widths, ratios, groups, strict=True)):
            continue
        config = AnyNetConfig(widths=widths, depths=tuple(rng.randint(1, 3) for _ in range(stages)),
                              group_widths=groups, bottleneck_ratios=ratios,
                              strides=tuple(rng.choice((1, 2)) for _ in range(stages)),
                              se_ratio=rng.choice((0.0, 0.25, 0.5)), stem_width=rng.choice((8, 16, 32)),
                              stem_stride=rng.choice((1, 2)), in_channels=rng.randint(1, 3),
                              num_classes=rng.randint(1, 20))
        size = rng.randint(config.total_stride, 40)
        with torch.device("meta"):
            model = AnyNet(config)
        assert anynet_macs(config, image_size=size) == model_macs(model, (1, config.in_channels, size, size)), \
            (config, size)
        checked += 1


def test_bad_arguments_of_the_pre_activation_se_and_anynet_forms_are_named():
    with pytest.raises(ValueError, match="squeeze_excitation_parameters: squeeze channels C_s must be >= 1, got 0"):
        squeeze_excitation_parameters(8, squeeze=0)
    with pytest.raises(TypeError, match="blocks_per_stage n must be an int, got float"):
        preact_bottleneck_resnet_cost(blocks_per_stage=1.5)
    with pytest.raises(ValueError, match="preact_bottleneck_resnet_cost: image_size must be >= 1, got 0"):
        preact_bottleneck_resnet_cost(blocks_per_stage=1, image_size=0)
    with pytest.raises(ValueError, match="anynet_macs: image_size must be >= 1, got -8"):
        anynet_macs(get_config("regnetx_400mf"), image_size=-8)
    with pytest.raises(TypeError):
        anynet_macs(get_config("regnetx_400mf"), 224)  # the image size is keyword-only


@pytest.mark.parametrize("groups, length, dim, heads", [(1, 7, 8, 2), (3, 5, 16, 4), (6, 1, 12, 3), (2, 16, 32, 1)])
def test_attention_macs_counts_torchs_multihead_attention(groups, length, dim, heads):
    # groups sequences of length tokens: T = groups * length tokens, each attending to S = length
    mha = nn.MultiheadAttention(dim, heads, batch_first=True)
    x = torch.randn(groups, length, dim)
    with FlopCounterMode(display=False) as counter:
        mha(x, x, x, need_weights=True)  # the path that forms the weights with batched matrix products
    assert counter.get_total_flops() // 2 == attention_macs(groups * length, length, dim)


def test_attention_macs_refuses_bad_sizes():
    with pytest.raises(ValueError, match="attention_macs: context S must be >= 1, got 0"):
        attention_macs(4, 0, 8)
