"""The model registry: every registered model passes the same checks, and bad requests fail clearly.

For every name in ``visarch.models.list_models()``:

* a small batch gives the expected output shape and finite values;
* a backward pass gives every parameter a non-zero gradient (nothing is dead or detached), except the few
  that a published design never reads, which are listed in ``UNREAD`` and checked to be exactly the dead ones;
* two builds under the same seed have identical weights and outputs;
* the parameter count is exact against an independent number: a published count (torchvision's
  ResNet-50: 25,557,032; ViT-B/16, L/16 and H/14: 86,567,656, 304,326,632 and 632,045,800; the
  counts of the CNN families, from torchvision's model table or the authors' releases; CvT-13 and
  CLIP ViT-B/32 as released) or the closed form of ``visarch.cost`` derived from the architecture,
  never the model's own count.  The closed forms are themselves checked against the published counts
  and against hand-built torch layers in ``tests/test_cost_models.py``.

The count is taken at the registered configuration, built on the ``meta`` device (no memory);
the behavioural checks run on the registered configuration too, on small images, except for the
three published ViTs, which run them on 2 x 2 patches (32 x 32 or 28 x 28 images) and two blocks
(the same builder, layers and shapes per block) so that a CPU test does not train a
632-million-parameter model, and AlexNet and VGG, whose two 4096-wide hidden layers shrink to 256.
A model that returns several outputs in training mode (GoogLeNet with its auxiliary heads) is
checked on each.  "Every parameter gets a gradient" means: in training mode or in evaluation mode,
whichever the parameter acts in (see the comment in ``test_registry_model``).

A model added to the registry without an expected count here fails ``test_every_model_is_covered``.
"""

from __future__ import annotations

import copy

import pytest
import torch

from visarch.cost import (
    cvt_parameters,
    resnet_parameters,
    timesformer_parameters,
    unet_parameters,
    vatt_parameters,
    video_net_parameters,
    vit_parameters,
)
from visarch.models import create, create_on_meta, get_config, list_models
from visarch.models.timesformer import SCHEMES
from visarch.tolerance import reduction_tolerance

# Parameters that by design never reach the output, and the test checks they are exactly the dead ones: CvT's head
# reads the class token alone, and in the last block the class token skips the depthwise query convolution (it is
# not on the map), so that convolution and its batch norm only act on map tokens that nothing reads afterwards (the
# released CvT-13 has them too, and its published count includes them).
UNREAD = {name: [f"stages.2.blocks.{last}.attn.q.{p}" for p in ("depthwise.weight", "norm.bias", "norm.weight")]
          for name, last in (("cvt_13", 9), ("cvt_small", 1))}


def clip_tokens(vocab, length=12):
    """Two captions of random word ids for a CLIP, each ending with the end-of-text id V - 1 (the largest id,
    where the text encoder reads its feature)."""
    def make(generator):
        ids = torch.randint(1, vocab - 2, (2, length), generator=generator)
        ids[:, -1] = vocab - 1
        return ids
    return make


def small_vit(patch):  # for the behavioural checks of the published ViTs: 2 x 2 patches, two blocks
    return {"image_size": 2 * patch, "depth": 2}


EXPECTED = {  # name -> (input shapes or input makers, output shape, parameter count from an independent source,
    # overrides)
    "resnet50": (((2, 3, 32, 32),), (2, 1000), 25_557_032, {}),  # published (torchvision resnet50)
    "resnet50_cifar": (((2, 3, 32, 32),), (2, 10), resnet_parameters(get_config("resnet50_cifar")), {}),  # closed form
    # published (torchvision): the ResNet family in the ImageNet layout
    "resnet18": (((2, 3, 32, 32),), (2, 1000), 11_689_512, {}),
    "resnet34": (((2, 3, 32, 32),), (2, 1000), 21_797_672, {}),
    "wide_resnet50_2": (((2, 3, 32, 32),), (2, 1000), 68_883_240, {}),
    "resnext50_32x4d": (((2, 3, 32, 32),), (2, 1000), 25_028_904, {}),
    "se_resnet50": (((2, 3, 32, 32),), (2, 1000), 28_088_024, {}),  # as usually quoted (tests/test_cost_models.py)
    "wrn_28_10": (((2, 3, 8, 8),), (2, 10), 36_479_194, {}),  # as usually quoted; 8x8 keeps it fast
    "lenet5": (((2, 1, 32, 32),), (2, 10), 61_706, {}),  # 5x5 convs 1->6, 6->16, 16->120, FC 120->84->10
    "alexnet": (((2, 3, 64, 64),), (2, 1000), 61_100_840, {"hidden": 256}),  # published; smallest input 63
    "vgg11": (((2, 3, 32, 32),), (2, 1000), 132_863_336, {"hidden": 256}),  # published (torchvision)
    "vgg13": (((2, 3, 32, 32),), (2, 1000), 133_047_848, {"hidden": 256}),
    "vgg16": (((2, 3, 32, 32),), (2, 1000), 138_357_544, {"hidden": 256}),
    "vgg19": (((2, 3, 32, 32),), (2, 1000), 143_667_240, {"hidden": 256}),
    "googlenet": (((2, 3, 64, 64),), (2, 1000), 6_624_904, {}),  # published (torchvision googlenet)
    "googlenet_aux": (((2, 3, 64, 64),), ((2, 1000),) * 3, 13_004_888, {}),  # (main, aux1, aux2) in training
    # published (torchvision regnet_x_400mf, regnet_y_400mf); 64 x 64 keeps the last maps above 1 x 1, where batch
    # norm over a batch of two would leave some weights without gradient
    "regnetx_400mf": (((2, 3, 64, 64),), (2, 1000), 5_495_976, {}),
    "regnety_400mf": (((2, 3, 64, 64),), (2, 1000), 4_344_144, {}),
    "mobilenet_v1": (((2, 3, 32, 32),), (2, 1000), 4_231_976, {}),  # published (the authors' Keras release)
    "mobilenet_v2": (((2, 3, 64, 64),), (2, 1000), 3_504_872, {}),  # published (torchvision)
    "efficientnet_b0": (((2, 3, 64, 64),), (2, 1000), 5_288_548, {}),  # published (torchvision efficientnet_b*)
    "efficientnet_b1": (((2, 3, 64, 64),), (2, 1000), 7_794_184, {}),
    "efficientnet_b2": (((2, 3, 64, 64),), (2, 1000), 9_109_994, {}),
    "efficientnet_b3": (((2, 3, 64, 64),), (2, 1000), 12_233_232, {}),
    "densenet121": (((2, 3, 32, 32),), (2, 1000), 7_978_856, {}),  # published (torchvision densenet121)
    "convnext_tiny": (((2, 3, 32, 32),), (2, 1000), 28_589_128, {}),  # published (torchvision convnext_tiny)
    # the video chapter's small networks on [B, 1, T, H, W] clips of moving digits (closed forms)
    "frames2d_small": (((2, 1, 5, 12, 12),), (2, 4), video_net_parameters(get_config("frames2d_small")), {}),
    "c3d_small": (((2, 1, 5, 12, 12),), (2, 4), video_net_parameters(get_config("c3d_small")), {}),
    "r2plus1d_small": (((2, 1, 5, 12, 12),), (2, 4), video_net_parameters(get_config("r2plus1d_small")), {}),
    # published (the DeiT release; checked against the ViT closed form below)
    "deit_tiny": (((2, 3, 32, 32),), (2, 1000), 5_717_416, small_vit(16)),
    "deit_small": (((2, 3, 32, 32),), (2, 1000), 22_050_664, small_vit(16)),
    "deit_tiny_distilled": (((2, 3, 32, 32),), (2, 1000), 5_910_800, small_vit(16)),
    "deit_small_distilled": (((2, 3, 32, 32),), (2, 1000), 22_436_432, small_vit(16)),
    "swin_t": (((2, 3, 64, 64),), (2, 1000), 28_288_354, {"window_size": 2}),  # published (torchvision swin_t)
    # Hugging Face transformers' CvtForImageClassification (microsoft/cvt-13 layout): 19,997,480; the paper: 20M
    "cvt_13": (((2, 3, 32, 32),), (2, 1000), 19_997_480, {}),
    "cvt_small": (((2, 1, 8, 8),), (2, 10), cvt_parameters(get_config("cvt_small")), {}),  # closed form
    # CLIP: images and token ids -> [B_img, B_txt] logits; the released ViT-B/32 checkpoint's count (OpenAI), and a
    # closed form for the tiny one (tests/test_clip.py derives both)
    "clip_vit_b_32": (((2, 3, 64, 64), clip_tokens(512)), (2, 2), 151_277_313,
                      {"vision_layers": 2, "text_layers": 2, "image_size": 64, "vocab_size": 512}),
    "clip_tiny": (((2, 1, 8, 8), clip_tokens(34)), (2, 2), 55_233, {}),
    "timesformer_small": (((2, 3, 2, 32, 32),), (2, 10),  # clip [B, C, F, H, W]
                          timesformer_parameters(get_config("timesformer_small"), attentions=len(SCHEMES["divided"])),
                          {}),
    # image and context u; the notes' U-Net (closed form)
    "unet": (((2, 3, 32, 32), (2, 256)), (2, 3, 32, 32), unet_parameters(get_config("unet"))[-1], {}),
    # VATT: a clip, its waveform and a caption -> the video-audio and video-text similarity matrices (closed form)
    "vatt_tiny": (((2, 1, 5, 12, 12), (2, 400), clip_tokens(34)), (2, 2, 2), vatt_parameters(get_config("vatt_tiny")),
                  {}),
    "vit": (((2, 3, 32, 32),), (2, 10), vit_parameters(get_config("vit")), {}),  # closed form
    "vit_b_16": (((2, 3, 32, 32),), (2, 1000), 86_567_656, small_vit(16)),  # published (ViT paper, torchvision)
    "vit_l_16": (((2, 3, 32, 32),), (2, 1000), 304_326_632, small_vit(16)),
    "vit_h_14": (((2, 3, 28, 28),), (2, 1000), 632_045_800, small_vit(14)),
}


def test_every_model_is_covered():
    assert sorted(EXPECTED) == list_models()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registry_model(name):
    input_shapes, output_shape, count, overrides = EXPECTED[name]
    with torch.device("meta"):
        assert sum(p.numel() for p in create(name).parameters()) == count
    gen = torch.Generator().manual_seed(1)
    inputs = [spec(gen) if callable(spec) else torch.randn(spec, generator=gen) for spec in input_shapes]
    torch.manual_seed(0)
    model = create(name, **overrides)
    torch.manual_seed(2)  # dropout draws from the global generator
    out = model(*inputs)
    outs = out if isinstance(out, tuple) else (out,)  # GoogLeNet with auxiliary heads returns three in training
    shapes = output_shape if isinstance(output_shape[0], tuple) else (output_shape,)
    assert tuple(o.shape for o in outs) == shapes and all(torch.isfinite(o).all() for o in outs)
    sum(o.square().mean() for o in outs).backward()
    # A parameter must move the output in training or in evaluation mode. Evaluation is needed because in training
    # mode a batch norm that subtracts the batch mean makes the shift of an earlier batch norm redundant (its
    # gradient is zero up to rounding: MobileNetV2, EfficientNet); training, because the auxiliary heads of
    # GoogLeNet only act there.
    evaluated = copy.deepcopy(model).eval()
    evaluated.zero_grad()
    evaluated(*inputs).square().mean().backward()
    moved = {n for n, p in evaluated.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    dead = [n for n, p in model.named_parameters()
            if n not in moved and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert sorted(dead) == UNREAD.get(name, []), f"parameters without gradient: {dead[:5]}"
    torch.manual_seed(0)
    again = create(name, **overrides)
    for (n, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        if n.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue  # the first model's statistics moved during its forward pass
        assert torch.equal(a, b), n
    torch.manual_seed(2)
    with torch.no_grad():
        again_out = again(*inputs)
    again_outs = again_out if isinstance(again_out, tuple) else (again_out,)
    for a, o in zip(again_outs, outs, strict=True):  # same weights, same batch, same dropout: same output
        assert torch.equal(a, o.detach())


@pytest.mark.parametrize("call, exc, match", [
    (lambda: create("resnet5"), ValueError, r"unknown model 'resnet5'; did you mean 'resnet50'"),
    (lambda: create("xyz"), ValueError, r"unknown model 'xyz' \(known: "),
    (lambda: create("resnet50", depth=50), TypeError, r"has no config fields \['depth'\]"),
    (lambda: create("resnet50", stem="tiny"), ValueError, r"stem must be 'cifar' or 'imagenet'"),
    (lambda: create("resnet50", blocks=()), ValueError, r"blocks must be a non-empty tuple"),
    (lambda: create("resnet50", num_classes=0), ValueError, r"num_classes must be None or a positive int"),
    (lambda: create("resnet50_cifar")(torch.zeros(1, 1, 8, 8)), ValueError, r"input must be \[B, 3, H, W\]"),
    (lambda: create("resnet50")(torch.zeros(1, 3, 16, 16)), ValueError,
     r"input 16x16 is smaller than 32x32, the network's total stride"),
    (lambda: create("resnext50_32x4d", groups=3), ValueError,
     r"ResNetConfig: groups must divide the first stack's 3x3 convolution's 128 channels, got 3"),
    (lambda: create("resnet18", groups=2), ValueError, r"groups must be 1, bottleneck_width and se_reduction None"),
    (lambda: create("resnet50", block="dense"), ValueError, r"block must be 'bottleneck' or 'basic'"),
    (lambda: create("se_resnet50", se_reduction=0), ValueError, r"se_reduction must be None or a positive int"),
    (lambda: create("wrn_28_10", depth=27), ValueError, r"depth d=27 must satisfy d = 6N \+ 4"),
    (lambda: create("wrn_28_10", dropout=1.0), ValueError, r"dropout must be in \[0, 1\)"),
    (lambda: create("wrn_28_10")(torch.zeros(1, 3, 2, 2)), ValueError, r"input 2x2 is smaller than 4x4"),
    (lambda: create("vit", image_size=30), ValueError, r"image size 30 is not divisible by the patch size 4"),
    (lambda: create("vit", heads=5), ValueError, r"embedding size D=192 is not divisible by the number of heads K=5"),
    (lambda: get_config("vit", dim=9, heads=3), ValueError, r"sinusoidal .* D=9 must be even"),
    (lambda: create("vit", pos_embedding="rotary"), ValueError, r"pos_embedding must be 'sinusoidal' or 'learned'"),
    (lambda: create("vit")(torch.zeros(1, 3, 28, 28)), ValueError, r"input must be \[B, 3, 32, 32\]"),
    (lambda: create("unet", channels=(64, 100, 256, 1024)), ValueError,
     r"100 channels are not divisible by the 32 groups of GroupNorm"),
    (lambda: create("unet", attention=(True,)), ValueError, r"one entry per resolution"),
    (lambda: create("unet", channels=(32, 64), attention=(False, True))(torch.zeros(1, 3, 9, 8), torch.zeros(1, 256)),
     ValueError, r"H and W divisible by 2"),
    (lambda: create("unet", channels=(32, 64), attention=(False, True))(torch.zeros(1, 3, 8, 8), torch.zeros(1, 7)),
     ValueError, r"u must be \[B, d\] = \[1, 256\]"),
])
def test_bad_requests(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_create_on_meta_builds_the_same_model_without_memory():
    model = create_on_meta("resnet50", num_classes=10)
    assert all(p.is_meta for p in model.parameters())
    assert [p.shape for p in model.parameters()] == [p.shape for p in create("resnet50", num_classes=10).parameters()]


def test_overrides_reach_the_config():
    assert get_config("resnet50_cifar", num_classes=None).num_classes is None
    features = create("resnet50_cifar", num_classes=None, in_channels=1).eval()
    with torch.no_grad():
        assert features(torch.zeros(2, 1, 8, 8)).shape == (2, 2048)  # the notes' representation


def test_vit_patch_embedding_is_the_notes_linear_map_on_flattened_patches():
    # the notes: x.reshape(C, H', p, W', p).permute(H', W', C, p, p) flattened to [H'W', C p^2], then x U + b
    torch.manual_seed(0)
    model = create("vit", pos_embedding="learned", embed_norm=False)
    x = torch.randn(2, 3, 32, 32)
    c, p = 3, 4
    hp = wp = 32 // p
    chopped = x.reshape(2, c, hp, p, wp, p).permute(0, 2, 4, 1, 3, 5)  # [B, H', W', C, p, p]
    x_txt = chopped.flatten(3).flatten(1, 2)  # [B, H'W', C p^2]
    u = model.patch_embedding.weight.flatten(1).T  # [C p^2, D]
    expected = x_txt @ u + model.patch_embedding.bias
    tokens = model.embed(x) - model.pos_embedding  # [B, 1 + H'W', D]
    torch.testing.assert_close(tokens[:, 1:], expected, **reduction_tolerance(c * p * p))  # C p^2 products
    torch.testing.assert_close(tokens[:, 0], model.class_token[0].expand(2, -1))
