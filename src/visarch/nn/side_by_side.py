r"""K copies of :func:`~visarch.nn.small_cnn.small_cnn`, trained side by side as one batched computation.

The batch-size page trains 54 small networks (three normalizations, three seeds, six batch sizes).  At
batch sizes of 2 or 4 a step of one such network costs mostly the fixed overhead of each operation, not
arithmetic.  :class:`SideBySide` therefore computes K networks as one: every parameter of the K networks
becomes one slice of a stacked parameter, and each convolution one batched matrix product (``bmm``) of the
stacked filters :math:`W_k \in \mathbb{R}^{C' \times 9C}` with the K batches' patch matrices
(im2col)::

    x [K, B, 1, 8, 8] -> [K, 16, B*64] -> [K, 32, B*16] -> [K, 32, B*4] -> pooled [K, 32, B] -> scores [K, 10, B]

Each network keeps its own batch, its own normalization (batch norm, group norm with 4 channels a group,
or none with the convolutions' biases) and its own loss.  :func:`train_side_by_side` is
:func:`~visarch.train.loop.train_classifier` (cross-entropy, SGD with momentum 0.9, the batches that
:func:`~visarch.train.loop.fit` shuffles from each network's seed) for every network at once; since the
gradient of the sum of the K mean losses with respect to network k's parameters is that of its own loss,
and SGD with momentum acts elementwise, each network takes the steps it would take alone, up to the
rounding of sums taken in another order.  ``tests/test_side_by_side.py`` checks the scores and the trained
parameters against the networks run one by one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from visarch.checks import check_int, check_real

__all__ = ["SideBySide", "train_side_by_side"]

_CONVS, _NORMS, _HEAD = (0, 3, 6), (1, 4, 7), 11  # positions of small_cnn's layers in its nn.Sequential
_LAYERS = ((8, 1), (8, 2), (4, 2))  # (input side, stride) of the three convolutions on 8 x 8 digits


def _patch_index(batch: int, size: int, stride: int) -> torch.Tensor:
    """Where the 3 x 3 patches of a convolution with padding 1 read in a flattened, padded
    ``[batch, size + 2, size + 2]`` map: ``[9 taps, batch * output positions]``."""
    side, out = size + 2, (size - 1) // stride + 1
    corners = (torch.arange(out) * stride * side)[:, None] + torch.arange(out) * stride  # [out, out]
    taps = (torch.arange(3) * side)[:, None] + torch.arange(3)  # [3, 3]
    images = torch.arange(batch) * side * side  # [batch]
    return (taps.view(9, 1, 1) + images.view(1, -1, 1) + corners.view(1, 1, -1)).view(9, -1)


def _check_small_cnn(net: nn.Module, k: int) -> str:
    """The normalization of network k ("BatchNorm2d", "GroupNorm" or "Identity") if it is a small_cnn."""
    layout = isinstance(net, nn.Sequential) and len(net) == 12 and isinstance(net[_HEAD], nn.Linear) and all(
        isinstance(net[i], nn.Conv2d) and net[i].kernel_size == (3, 3) for i in _CONVS)
    norm = type(net[1]).__name__ if layout else None
    if norm not in ("BatchNorm2d", "GroupNorm", "Identity") or any(type(net[i]).__name__ != norm for i in _NORMS):
        raise TypeError(f"nets[{k}] must be a network made by visarch.nn.small_cnn, got {type(net).__name__}")
    if norm == "GroupNorm" and any(net[i].num_channels // net[i].num_groups != 4 for i in _NORMS):
        raise ValueError(f"nets[{k}]: side by side, group norm must have 4 channels a group, as small_cnn's")
    return norm


class SideBySide(nn.Module):
    """K networks made by :func:`~visarch.nn.small_cnn.small_cnn`, computed as one:
    ``x [K, B, 1, 8, 8]`` (a batch for each) ``-> scores [K, 10, B]``.

    The constructor copies the networks' parameters (and batch norm's running statistics) into stacked
    ones; :meth:`write_back` copies them back.  In training mode batch norm normalises with the
    statistics of each network's own batch and updates its running averages (momentum 0.1), in
    evaluation mode it uses them, as ``nn.BatchNorm2d`` does.

    Args:
        nets: a list of the K networks, any mix of normalizations (networks with the same one are computed
            together where they are consecutive).
    """

    def __init__(self, nets):
        super().__init__()
        if not isinstance(nets, (list, tuple)) or not nets:
            raise TypeError("nets must be a non-empty list of networks made by visarch.nn.small_cnn")
        self.nets, self.blocks, self.index = list(nets), [], {}
        for k, net in enumerate(nets):  # blocks: [layer type, first network, count], consecutive networks alike
            norm = _check_small_cnn(net, k)
            if self.blocks and self.blocks[-1][0] == norm:
                self.blocks[-1][2] += 1
            else:
                self.blocks.append([norm, k, 1])
        self.weights = nn.ParameterList(nn.Parameter(torch.stack([net[i].weight.detach().flatten(1) for net in nets]))
                                        for i in _CONVS)  # [K, C_out, C_in * 9]
        self.head = nn.ParameterList(nn.Parameter(torch.stack([getattr(net[_HEAD], name).detach() for net in nets]))
                                     for name in ("weight", "bias"))  # [K, 10, 32] and [K, 10]
        self.norm = nn.ParameterDict()  # "layer_first_name" -> [count, C]: norm layers' weight and bias, conv biases
        self.running = {}  # (layer, first network) -> batch norm's running mean and variance [count * C]
        for i in _NORMS:
            for norm, k0, count in self.blocks:
                group = nets[k0:k0 + count]
                if norm == "Identity":
                    self.norm[f"{i}_{k0}_bias"] = nn.Parameter(torch.stack([n[i - 1].bias.detach() for n in group]))
                    continue
                for name in ("weight", "bias"):
                    stacked = torch.stack([getattr(n[i], name).detach() for n in group])
                    self.norm[f"{i}_{k0}_{name}"] = nn.Parameter(stacked)
                if norm == "BatchNorm2d":
                    self.running[i, k0] = [torch.cat([getattr(n[i], name) for n in group])
                                           for name in ("running_mean", "running_var")]

    def _normalize(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """The layer i of every network, on ``h`` ``[K, C, B, L]``."""
        K, C, B, L = h.shape
        parts = []
        for norm, k0, count in self.blocks:
            part, bias = h[k0:k0 + count], self.norm[f"{i}_{k0}_bias"].view(count, C, 1, 1)
            if norm == "Identity":  # no normalization: the convolution's bias
                parts.append(part + bias)
                continue
            weight = self.norm[f"{i}_{k0}_weight"]
            if norm == "BatchNorm2d":  # per channel, over the batch and the positions
                mean, var = self.running[i, k0]
                parts.append(F.batch_norm(part.reshape(1, count * C, B * L), mean, var, weight.flatten(),
                                          bias.flatten(), self.training, 0.1, 1e-5).view(count, C, B, L))
            else:  # group norm: per image, over each group of 4 channels and the positions
                groups = part.reshape(count, C // 4, 4, B, L)
                var, mean = torch.var_mean(groups, (2, 4), correction=0, keepdim=True)
                parts.append(((groups - mean) * (var + 1e-5).rsqrt()).view(count, C, B, L)
                             * weight.view(count, C, 1, 1) + bias)
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores ``[K, 10, B]`` of the K networks, network k on its batch ``x[k]`` ``[B, 1, 8, 8]``."""
        if x.dim() != 5 or x.shape[0] != len(self.nets) or tuple(x.shape[2:]) != (1, 8, 8):
            raise ValueError(f"x must be [K={len(self.nets)}, B, 1, 8, 8], a batch of digits for each network, "
                             f"got shape {tuple(x.shape)}")
        K, B = x.shape[:2]
        h = x.reshape(K, 1, B * 64)
        for j, (size, stride) in enumerate(_LAYERS):
            if (B, size, stride) not in self.index:
                self.index[B, size, stride] = _patch_index(B, size, stride)
            index = self.index[B, size, stride]  # [9, B * L]
            C = h.shape[1]
            padded = F.pad(h.view(K, C, B, size, size), (1, 1, 1, 1)).view(K, C, -1)
            patches = padded[:, :, index].view(K, C * 9, -1)  # [K, C * 9, B * L]: im2col
            h = torch.bmm(self.weights[j], patches)  # [K, C_out, B * L]: the convolution
            h = torch.relu(self._normalize(_NORMS[j], h.view(K, h.shape[1], B, -1))).flatten(2)
        features = h.view(K, h.shape[1], B, -1).mean(3)  # [K, 32, B]: global average pooling
        return torch.bmm(self.head[0], features) + self.head[1][:, :, None]  # [K, 10, B]

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the stacked parameters and batch norm's running statistics into the K networks."""
        for k, net in enumerate(self.nets):
            for j, i in enumerate(_CONVS):
                net[i].weight.copy_(self.weights[j][k].view_as(net[i].weight))
            net[_HEAD].weight.copy_(self.head[0][k])
            net[_HEAD].bias.copy_(self.head[1][k])
        for i in _NORMS:
            for norm, k0, count in self.blocks:
                for k in range(count):
                    net = self.nets[k0 + k]
                    if norm == "Identity":
                        net[i - 1].bias.copy_(self.norm[f"{i}_{k0}_bias"][k])
                        continue
                    for name in ("weight", "bias"):
                        getattr(net[i], name).copy_(self.norm[f"{i}_{k0}_{name}"][k])
                    if norm == "BatchNorm2d":
                        C = net[i].num_features
                        net[i].running_mean.copy_(self.running[i, k0][0][k * C:(k + 1) * C])
                        net[i].running_var.copy_(self.running[i, k0][1][k * C:(k + 1) * C])


def train_side_by_side(nets, images: torch.Tensor, labels: torch.Tensor, *, epochs: int, batch_size: int, lr: float,
                       seeds) -> None:
    """``train_classifier(net, images, labels, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)`` for
    every network and its seed, all at once, on the CPU; the networks are trained in place.

    Each network sees the batches :func:`~visarch.train.loop.fit` would draw from its seed, in the same order (the
    last incomplete batch dropped), and takes the same SGD steps (momentum 0.9).

    Args:
        nets: a list of K networks made by :func:`~visarch.nn.small_cnn.small_cnn`.
        images: the digits ``[N, 1, 8, 8]``.
        labels: ``[N]`` class indices.
        epochs: passes over the data.
        batch_size: B, the examples of one step of each network.
        lr: SGD's learning rate, the same for all.
        seeds: a sequence of K seeds of the shuffling, one per network.
    """
    check_int(epochs, "epochs", where="train_side_by_side", ge=1)
    check_int(batch_size, "batch_size", where="train_side_by_side", ge=1)
    check_real(lr, "lr", where="train_side_by_side", gt=0)
    if len(seeds) != len(nets):
        raise ValueError(f"seeds must give one seed per network: {len(nets)} networks, {len(seeds)} seeds")
    n = images.shape[0]
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} training examples")
    model = SideBySide(nets).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)  # elementwise: as one SGD per network
    orders = [torch.Generator().manual_seed(seed) for seed in seeds]  # the shuffling of each network's run
    for _ in range(epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in orders])  # [K, N]
        for step in range(n // batch_size):  # the last incomplete batch is dropped, as in train_classifier
            rows = order[:, step * batch_size:(step + 1) * batch_size]  # [K, B]
            loss = F.cross_entropy(model(images[rows]), labels[rows], reduction="none").mean(1)  # [K]
            optimizer.zero_grad(set_to_none=True)
            loss.sum().backward()  # network k's gradient is that of its own mean loss
            optimizer.step()
    model.write_back()
