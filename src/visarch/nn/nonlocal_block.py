r"""The non-local block (Wang, Girshick, Gupta and He, 2018), for images and for space-time feature maps.

A feature map :math:`x` of :math:`C` channels over :math:`N` positions (:math:`N = HW` for an image,
:math:`N = THW` for a clip) is read as :math:`N` feature vectors :math:`x_i \in \mathbb{R}^C`.  The non-local
operation answers every position with a weighted average over all positions,

.. math::

    y_i = \frac{1}{\mathcal{C}(x)} \sum_{j} f(x_i, \hat x_j)\, g(\hat x_j), \qquad
    z_i = W_z y_i + x_i,

where :math:`\hat x` is :math:`x` itself or, with ``subsample=True``, :math:`x` max-pooled by 2 along height and
width (the paper's trick for 4 times fewer keys; time is never pooled).  The embeddings are :math:`1 \times 1`
(:math:`\times 1`) convolutions to :math:`C'` channels (:math:`C' = C/2` by default):
:math:`\theta(x_i) = W_\theta x_i + b_\theta`, :math:`\phi(x_j) = W_\phi x_j + b_\phi`,
:math:`g(x_j) = W_g x_j + b_g`.  The four pairwise functions of the paper, with their normalisations:

=====================  ===========================================================  ==============================
``mode``               :math:`f(x_i, x_j)`                                          :math:`\mathcal{C}(x)`
=====================  ===========================================================  ==============================
``gaussian``           :math:`e^{x_i^\top x_j}`                                     :math:`\sum_j f(x_i, x_j)`
``embedded_gaussian``  :math:`e^{\theta(x_i)^\top \phi(x_j)}`                       :math:`\sum_j f(x_i, x_j)`
``dot_product``        :math:`\theta(x_i)^\top \phi(x_j)`                           :math:`M`
``concatenation``      :math:`\mathrm{ReLU}(w_f^\top [\theta(x_i); \phi(x_j)])`     :math:`M`
=====================  ===========================================================  ==============================

with :math:`M` the number of keys :math:`\hat x_j` (:math:`N`, or about :math:`N/4` when subsampled).  For the
two Gaussians the weights of a row are a softmax, so the embedded Gaussian is single-head self-attention with
scale 1 (no :math:`1/\sqrt{C'}`).  :math:`W_z` is a :math:`1 \times 1` convolution back to :math:`C` channels,
followed by batch norm whose scale :math:`\gamma` starts at zero (``batch_norm=True``), or itself zero at the start
(``batch_norm=False``): either way :math:`z = x` exactly when the block is created, so it can be inserted in a
trained network without changing what the network computes.

Parameters, with :math:`k = 3` embeddings (1, :math:`g` alone, for ``gaussian``):
:math:`k(CC' + C') + C'C + 2C\,[\text{batch norm}] + C\,[\text{bias of } W_z \text{ without it}]
+ 2C'\,[w_f]`.  Multiply-accumulates: see :func:`visarch.cost.nonlocal_macs`.
"""

from __future__ import annotations

import torch
from torch import nn

from visarch.checks import check_bool, check_int

__all__ = ["MODES", "NonLocalBlock"]

MODES = ("embedded_gaussian", "gaussian", "dot_product", "concatenation")  #: the paper's section 3.2


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"pairwise function mode must be one of {', '.join(MODES)}, got {mode!r}")


class NonLocalBlock(nn.Module):
    """The non-local block ``z = W_z y + x`` (module docstring), the identity map when it is created.

    ``forward`` maps ``[B, C, H, W]`` to ``[B, C, H, W]`` (``dims=2``) or ``[B, C, T, H, W]`` to
    ``[B, C, T, H, W]`` (``dims=3``).  The embedded Gaussian is checked against
    ``torch.nn.functional.scaled_dot_product_attention`` (scale 1) and a one-head
    ``torch.nn.MultiheadAttention`` in ``tests/test_nonlocal_block.py``.

    Args:
        in_channels: C, the channels of the feature map.
        inter_channels: the bottleneck C' (default C // 2, at least 1).
        mode: the pairwise function, one of :data:`~visarch.nn.nonlocal_block.MODES`.
        dims: 2 for images, 3 for space-time feature maps.
        subsample: max-pool the keys and values by 2 in height and width.
        batch_norm: put batch norm (scale zero at the start) after W_z; otherwise W_z itself starts at zero.
    """

    def __init__(self, in_channels: int, *, inter_channels: int | None = None, mode: str = "embedded_gaussian",
                 dims: int = 2, subsample: bool = False, batch_norm: bool = True):
        super().__init__()
        check_int(in_channels, "input channels C (in_channels)", where=type(self).__name__, ge=1)
        if inter_channels is None:
            inter_channels = max(1, in_channels // 2)  # the paper's half-width bottleneck
        check_int(inter_channels, "bottleneck channels C' (inter_channels)", where=type(self).__name__, ge=1)
        _check_mode(mode)
        if isinstance(dims, bool) or dims not in (2, 3):
            raise ValueError(f"dims must be 2 (images [B, C, H, W]) or 3 (space-time [B, C, T, H, W]), got {dims!r}")
        check_bool(subsample, "subsample", where=type(self).__name__)
        check_bool(batch_norm, "batch_norm", where=type(self).__name__)
        self.in_channels, self.inter_channels, self.mode, self.dims = in_channels, inter_channels, mode, dims
        self.subsample, self.batch_norm = subsample, batch_norm
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        if mode == "gaussian":  # the vanilla Gaussian compares the features themselves
            self.theta, self.phi = nn.Identity(), nn.Identity()
        else:
            self.theta = conv(in_channels, inter_channels, 1)  # W_theta, b_theta
            self.phi = conv(in_channels, inter_channels, 1)  # W_phi, b_phi
        self.g = conv(in_channels, inter_channels, 1)  # W_g, b_g
        if mode == "concatenation":
            self.w_f = nn.Linear(2 * inter_channels, 1, bias=False)  # w_f^T [theta_i; phi_j]
        if subsample:
            self.pool = nn.MaxPool2d(2) if dims == 2 else nn.MaxPool3d((1, 2, 2))
        # batch norm's shift would cancel a bias of W_z
        self.w_z = conv(inter_channels, in_channels, 1, bias=not batch_norm)
        if batch_norm:
            self.bn = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(in_channels)
            nn.init.zeros_(self.bn.weight)  # gamma = 0 (beta is 0 already): z = x at the start
        else:
            nn.init.zeros_(self.w_z.weight)
            nn.init.zeros_(self.w_z.bias)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, inter_channels={self.inter_channels}, mode={self.mode!r}, "
                f"dims={self.dims}, subsample={self.subsample}")

    def _check_input(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"NonLocalBlock: input must be a torch.Tensor, got {type(x).__name__}")
        layout = "[B, C, H, W]" if self.dims == 2 else "[B, C, T, H, W]"
        if x.dim() != self.dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"NonLocalBlock(dims={self.dims}): input must be {layout} with C={self.in_channels}, "
                             f"got {tuple(x.shape)}")
        if self.subsample and min(x.shape[-2:]) < 2:
            raise ValueError(f"NonLocalBlock: subsampling max-pools H and W by 2, which must be >= 2, got "
                             f"{x.shape[-2]}x{x.shape[-1]}")

    def embeddings(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The embeddings of a batch ``x`` ``[B, C, *S]`` as token matrices, positions in row-major order (t, h, w).

        Returns ``(theta, phi, g)``: ``theta`` ``[B, N, E]``, ``phi`` ``[B, M, E]`` and ``g`` ``[B, M, C']``,
        with E = C for ``gaussian`` and C' otherwise.
        """
        self._check_input(x)
        theta, phi, g = self.theta(x), self.phi(x), self.g(x)  # [B, E, *S], [B, E, *S], [B, C', *S]
        if self.subsample:
            phi, g = self.pool(phi), self.pool(g)  # [B, E, *S'], S' = (T,) H/2, W/2
        return tuple(t.flatten(2).transpose(1, 2) for t in (theta, phi, g))

    def _weights(self, theta, phi):
        """``f(x_i, x_j) / C(x)`` from the token matrices: ``[B, N, M]``, each row the weights of one position."""
        if self.mode in ("gaussian", "embedded_gaussian"):
            return torch.softmax(theta @ phi.transpose(1, 2), dim=-1)  # exp, divided by the row sum
        if self.mode == "dot_product":
            return theta @ phi.transpose(1, 2) / phi.shape[1]
        w_theta, w_phi = self.w_f.weight[0].split(self.inter_channels)  # [C'], [C']
        # w_f^T [theta_i; phi_j] = w_theta^T theta_i + w_phi^T phi_j: N + M projections, not N M
        a = theta @ w_theta.unsqueeze(-1)  # [B, N, 1]
        b = phi @ w_phi.unsqueeze(-1)  # [B, M, 1]
        return torch.relu(a + b.transpose(1, 2)) / phi.shape[1]  # [B, N, M]

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """The pairwise weights ``f(x_i, x_j) / C(x)`` of a batch ``x`` ``[B, C, *S]``: ``[B, N, M]``."""
        theta, phi, _ = self.embeddings(x)
        return self._weights(theta, phi)

    def non_local(self, x: torch.Tensor) -> torch.Tensor:
        """The non-local operation alone, before W_z and the residual: ``x`` ``[B, C, *S]`` to ``y`` ``[B, C', *S]``."""
        theta, phi, g = self.embeddings(x)
        y = self._weights(theta, phi) @ g  # [B, N, C']
        # contiguous: a transposed y would make W_z's output, and so z, channels-last, and a network after the
        # block would then sum in another order than without it
        return y.transpose(1, 2).unflatten(2, x.shape[2:]).contiguous()  # [B, C', *S]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_y = self.w_z(self.non_local(x))  # [B, C, *S]
        if self.batch_norm:
            w_y = self.bn(w_y)
        return w_y + x  # z = W_z y + x
