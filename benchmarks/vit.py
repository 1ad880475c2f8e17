"""The book's ViT against vit-pytorch's ViT: one training step's forward and backward, same size.

Both models are the notes' small ViT for 32 x 32 images: patches of 4 x 4 pixels (64 patches and a
class token, T = 65), D = 192, L = 6 pre-norm blocks of K = 3 heads of d = D/K = 64, an MLP of
768, 10 classes, learned position embeddings, the class token's state into the head.  The book's
is ``create("vit", pos_embedding="learned", embed_norm=False, eps=1e-5)``: vit-pytorch learns its
position embeddings, does not normalise the embedded sequence, and its LayerNorms use torch's
default epsilon.  vit-pytorch's is ``ViT(image_size=32, patch_size=4, num_classes=10, dim=192,
depth=6, heads=3, mlp_dim=768, dim_head=64, pool="cls", dropout=0, emb_dropout=0)``, loaded from
its ``vit_pytorch/vit.py`` file, since ``import vit_pytorch`` also imports modules that need
torchvision.  Install it with ``pip install --no-deps -r requirements-benchmarks.txt``.

Parameters.  The two differ in two places only, and the benchmark derives both from the
configuration, checks each against the modules that hold it, and asserts that they close the gap:

- the book's query/key/value projection has biases, vit-pytorch's ``to_qkv`` has none:
  3 D per block, 3 * 192 * 6 = 3,456 parameters more in the book's model;
- vit-pytorch's patch embedding is LayerNorm(C p^2) -> Linear(C p^2, D) -> LayerNorm(D), the
  book's the linear map alone (a p x p, stride p convolution): 2 C p^2 + 2 D = 96 + 384 = 480
  parameters more in vit-pytorch's.

So book 2,693,578 - 3,456 + 480 = 2,690,602 = vit-pytorch.  Everything else (class token,
65 x 192 position embeddings, the blocks' LayerNorms, output projections and MLPs, the final
LayerNorm and the head) has the same shape on both sides.

Timing.  Both models are in training mode (dropout is 0 on both sides, so that changes nothing
but is what a training step runs), float32, on the same random images and labels; the timed
closure runs the forward pass, the cross-entropy loss, the backward pass and zeroes the
gradients.  The two take turns for a few rounds of ``blocked_autorange`` at each batch size and
the medians are compared: book/peer <= 1 means the book's model is as fast or faster.  The book's
attention calls ``torch.nn.functional.scaled_dot_product_attention``; vit-pytorch's forms the
T x T matrix with ``matmul``, ``softmax`` and ``matmul``.  Run with ``python -m benchmarks vit``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks._timing import (
    add_timing_arguments,
    alternating_medians,
    geometric_mean,
    print_reconciled_counts,
    use_threads,
)
from visarch.cost import parameter_count
from visarch.models import create

CONFIG = {"image_size": 32, "patch_size": 4, "in_channels": 3, "dim": 192, "depth": 6, "heads": 3,
          "mlp_dim": 768, "num_classes": 10}
BATCHES = (8, 32, 64)
INSTALL = "pip install --no-deps -r requirements-benchmarks.txt"


def load_vit_pytorch():
    """vit-pytorch's ``vit_pytorch/vit.py`` as a module, without running the package's ``__init__``."""
    spec = importlib.util.find_spec("vit_pytorch")  # locates the package; imports nothing
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"vit-pytorch is not installed; {INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "vit.py"
    file_spec = importlib.util.spec_from_file_location("_vit_pytorch_vit", path)
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module



def models():
    """The book's model, vit-pytorch's, and the reconciliation terms ``[(description, book -> peer)]``."""
    c = CONFIG
    ours = create("vit", **c, pos_embedding="learned", embed_norm=False, eps=1e-5)
    theirs = load_vit_pytorch().ViT(
        image_size=c["image_size"], patch_size=c["patch_size"], num_classes=c["num_classes"], dim=c["dim"],
        depth=c["depth"], heads=c["heads"], mlp_dim=c["mlp_dim"], channels=c["in_channels"],
        dim_head=c["dim"] // c["heads"], pool="cls", dropout=0.0, emb_dropout=0.0)
    d, patch_dim = c["dim"], c["in_channels"] * c["patch_size"] ** 2
    # each term from the configuration, checked against the modules that hold it
    qkv_bias = 3 * d * c["depth"]
    assert qkv_bias == sum(block.qkv.bias.numel() for block in ours.blocks), "book: qkv biases changed"
    assert all(attn.to_qkv.bias is None for attn, _ in theirs.transformer.layers), "vit-pytorch: to_qkv has a bias"
    patch_norms = theirs.to_patch_embedding[1], theirs.to_patch_embedding[3]
    assert [parameter_count(n) for n in patch_norms] == [2 * patch_dim, 2 * d], "vit-pytorch: patch embedding changed"
    terms = [(f"the book's qkv biases, 3 D per block (3 x {d} x {c['depth']})", -qkv_bias),
             (f"vit-pytorch's LayerNorm(C p^2) before the patch linear map (2 x {patch_dim})", 2 * patch_dim),
             (f"vit-pytorch's LayerNorm(D) after it (2 x {d})", 2 * d)]
    return ours, theirs, terms


def training_step(model, images, labels):
    F.cross_entropy(model(images), labels).backward()
    model.zero_grad(set_to_none=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks vit", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 8 only, short timing (smoke test)")
    add_timing_arguments(parser, min_run_time=3.0)
    args = parser.parse_args(argv)
    threads = use_threads(args.threads)
    batches = BATCHES[:1] if args.quick else BATCHES
    min_run_time = 0.3 if args.quick else args.min_run_time
    rounds = 2 if args.quick else args.rounds

    torch.manual_seed(0)
    ours, theirs, terms = models()
    n_ours, n_theirs = parameter_count(ours), parameter_count(theirs)
    print_reconciled_counts(("book: create(vit, pos_embedding=learned, embed_norm=False, eps=1e-5)", n_ours), terms,
                            ("vit-pytorch: ViT(...)", n_theirs))

    ours.train()
    theirs.train()
    c = CONFIG
    print(f"\ntorch {torch.__version__}, {threads} thread(s), float32, training mode (dropout 0), forward + "
          f"cross-entropy + backward + zero_grad; images [B, {c['in_channels']}, {c['image_size']}, "
          f"{c['image_size']}]; median over {rounds} alternating rounds of blocked_autorange, "
          f"{min_run_time} s per model and batch size\n")
    print(f"{'B':>4s} {'book ms':>10s} {'peer ms':>10s} {'book/peer':>10s}")
    gen = torch.Generator().manual_seed(0)
    ratios = []
    for batch in batches:
        images = torch.randn(batch, c["in_channels"], c["image_size"], c["image_size"], generator=gen)
        labels = torch.randint(0, c["num_classes"], (batch,), generator=gen)
        with torch.no_grad():  # both run, and give logits of the right shape, before timing
            for model in (ours, theirs):
                assert model(images).shape == (batch, c["num_classes"])
        calls = [functools.partial(training_step, model, images, labels) for model in (ours, theirs)]
        mine, peer = alternating_medians(calls, threads=threads, rounds=rounds, min_run_time=min_run_time)
        ratios.append(mine / peer)
        print(f"{batch:4d} {mine:10.1f} {peer:10.1f} {mine / peer:10.2f}")
    print(f"\ngeometric mean of book/peer over {len(ratios)} batch sizes: {geometric_mean(ratios):.2f}")
    return 0
