r"""Convolutions over space and time: C3D blocks, the (2+1)D factorisation, I3D inflation and SlowFast.

A video clip is a tensor ``[B, C, T, H, W]``: T frames of H x W pixels.

* **3D convolution** (Ji et al., 2013; C3D, Tran et al., 2015): a kernel of size
  :math:`t \times d \times d` slides over time as well as space, so a filter can respond to how
  a pattern *moves*.  C3D stacks 3 x 3 x 3 convolutions with ReLU and 3D max pooling.  A layer
  from :math:`N_{i-1}` to :math:`N_i` channels has :math:`t d^2 N_{i-1} N_i` weights.
* **(2+1)D** (Tran et al., 2018): replace that layer by a :math:`1 \times d \times d` spatial
  convolution to :math:`M_i` channels, batch norm and ReLU, then a :math:`t \times 1 \times 1`
  temporal convolution to :math:`N_i` channels, with

  .. math:: M_i = \left\lfloor \frac{t d^2 N_{i-1} N_i}{d^2 N_{i-1} + t N_i} \right\rfloor ,

  which makes the factorised weights :math:`M_i (d^2 N_{i-1} + t N_i)` equal to the 3D count up to
  the flooring: :math:`0 \le t d^2 N_{i-1} N_i - M_i (d^2 N_{i-1} + t N_i) < d^2 N_{i-1} + t N_i`.
  The block has two nonlinearities where the 3D layer had one.
* **Inflation** (I3D, Carreira & Zisserman, 2017): a trained 2D kernel :math:`w` becomes the 3D
  kernel :math:`w_{\tau}(i, j) = w(i, j) / T` for :math:`\tau = 1..T`.  On a "boring" video that repeats
  one image, a convolution of the inflated kernel sums T equal 2D responses divided by T, so it
  reproduces the 2D response at every frame, provided the frames beyond the clip's ends are also
  that image (``time_padding="replicate"``).  With zero padding, each inflated convolution pads
  :math:`p = \lfloor (T-1)/2 \rfloor` frames before and :math:`T - 1 - p` after, so after k of them
  only frames :math:`t` with :math:`k p \le t \le L - 1 - k (T - 1 - p)` of an L-frame clip agree.
* **SlowFast** (Feichtenhofer et al., 2019): from a clip, the Slow pathway takes every
  :math:`\tau`-th frame (T frames) and C channels; the Fast pathway takes every
  :math:`\tau/\alpha`-th frame (:math:`\alpha T` frames) and :math:`\beta C` channels.  A lateral
  connection, a :math:`5 \times 1 \times 1` convolution with temporal stride :math:`\alpha` and
  :math:`2\beta C` outputs, brings the Fast features to T frames, and they are concatenated to the
  Slow features: ``[B, C, T, H, W] + [B, 2 beta C, T, H, W] -> [B, (1 + 2 beta) C, T, H, W]``.

The registered small networks (``frames2d_small``, ``c3d_small``, ``r2plus1d_small``) classify the
direction a digit moves in: three blocks, global average pooling over time and space, a linear layer.
``frames2d_small`` uses 1 x 3 x 3 kernels, i.e. one shared 2D CNN applied to every frame, whose
per-frame features are then averaged over time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visarch.checks import check_int, check_ints
from visarch.cost import r2plus1d_mid_channels
from visarch.models.registry import register

__all__ = ["C3DBlock", "InflatedConv3d", "LateralConnection", "R2Plus1DBlock", "SlowFastStem", "VideoNet",
           "VideoNetConfig", "check_video", "inflate", "inflate_conv2d", "slowfast_frames"]


def check_video(x: torch.Tensor, *, in_channels: int, min_frames: int, min_size: int, model: str) -> None:
    """Raise ``ValueError`` unless ``x`` is a clip ``[B, in_channels, T, H, W]`` large enough for the model.

    It needs ``T >= min_frames`` and ``H, W >= min_size``.

    Args:
        x: the model's input clip.
        in_channels: the channels C the model expects.
        min_frames: the fewest frames it accepts.
        min_size: the smallest height and width, usually the total spatial stride.
        model: the model's name, for the error message.
    """
    if x.dim() != 5 or x.shape[1] != in_channels:
        raise ValueError(f"{model}: input must be [B, {in_channels}, T, H, W], got {tuple(x.shape)}")
    if x.shape[2] < min_frames:
        raise ValueError(f"{model}: input has {x.shape[2]} frames, fewer than {min_frames}")
    if min(x.shape[3:]) < min_size:
        raise ValueError(f"{model}: frames {x.shape[3]}x{x.shape[4]} are smaller than {min_size}x{min_size}, "
                         "the network's total spatial stride")


class C3DBlock(nn.Module):
    """A C3D block, ``[B, N, T, H, W] -> [B, N', T/p_t, H/p, W/p]``.

    A t x d x d convolution ("same" padding for odd t and d; a bias only without batch norm), optional
    batch norm, ReLU, then optionally a p_t x p x p max pool, as in C3D.

    Args:
        c_in: N.
        c_out: N'.
        time: t, the temporal kernel size.
        size: d, the spatial kernel size.
        batch_norm: add batch norm after the convolution.
        pool: ``(p_t, p, p)`` of the max pool (kernel and stride); None for no pooling.
    """

    def __init__(self, c_in: int, c_out: int, *, time: int = 3, size: int = 3, batch_norm: bool = True,
                 pool: tuple[int, int, int] | None = (1, 2, 2)):
        super().__init__()
        check_int(time, "temporal kernel size t", where=type(self).__name__, ge=1)
        check_int(size, "spatial kernel size d", where=type(self).__name__, ge=1)
        # bias only without batch norm, whose shift would cancel it
        self.conv = nn.Conv3d(c_in, c_out, (time, size, size), padding=(time // 2, size // 2, size // 2),
                              bias=not batch_norm)
        self.bn = nn.BatchNorm3d(c_out) if batch_norm else nn.Identity()
        self.act = nn.ReLU()
        self.pool = nn.Identity() if pool is None else nn.MaxPool3d(pool, pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.act(self.bn(self.conv(x))))


class R2Plus1DBlock(nn.Module):
    """A (2+1)D block, ``[B, N_{i-1}, T, H, W] -> [B, N_i, T/p_t, H/p, W/p]``.

    A 1 x d x d convolution to M_i channels, BN, ReLU, a t x 1 x 1 convolution to N_i, BN, ReLU, then the
    same optional max pool as :class:`~visarch.models.video.C3DBlock`.

    Args:
        c_in: :math:`N_{i-1}`.
        c_out: :math:`N_i`.
        time: t.
        size: d.
        batch_norm: add batch norm after each convolution (otherwise they have biases).
        pool: ``(p_t, p, p)`` of the max pool; None for no pooling.
        mid: M_i; None for :func:`~visarch.cost.r2plus1d_mid_channels`, which matches the weights of
            the 3D convolution.
    """

    def __init__(self, c_in: int, c_out: int, *, time: int = 3, size: int = 3, batch_norm: bool = True,
                 pool: tuple[int, int, int] | None = (1, 2, 2), mid: int | None = None):
        super().__init__()
        mid = r2plus1d_mid_channels(time, size, c_in, c_out) if mid is None else mid
        if mid < 1:
            raise ValueError(f"M_i = {mid}: the (2+1)D block needs at least one intermediate channel")
        self.spatial = nn.Conv3d(c_in, mid, (1, size, size), padding=(0, size // 2, size // 2), bias=not batch_norm)
        self.bn1 = nn.BatchNorm3d(mid) if batch_norm else nn.Identity()
        self.act1 = nn.ReLU()  # the extra nonlinearity the factorisation buys
        self.temporal = nn.Conv3d(mid, c_out, (time, 1, 1), padding=(time // 2, 0, 0), bias=not batch_norm)
        self.bn2 = nn.BatchNorm3d(c_out) if batch_norm else nn.Identity()
        self.act2 = nn.ReLU()
        self.pool = nn.Identity() if pool is None else nn.MaxPool3d(pool, pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.act1(self.bn1(self.spatial(x)))  # [B, M_i, T, H, W]: each frame on its own
        z = self.act2(self.bn2(self.temporal(z)))  # [B, N_i, T, H, W]: each pixel across frames
        return self.pool(z)


# ----------------------------------------------------------------------------------------------- inflation

class InflatedConv3d(nn.Module):
    """A 2D convolution inflated to ``time`` frames: ``[B, C, T, H, W] -> [B, C', T / s_t, H', W']``.

    The time axis is padded by ``time - 1`` frames, ``(time - 1) // 2`` before and the rest after,
    with copies of the end frames (``"replicate"``) or zeros (``"zeros"``); space keeps the 2D
    convolution's zero padding, so each frame sees exactly what the 2D network saw.  Built by
    :func:`~visarch.models.video.inflate_conv2d`.

    Args:
        conv (torch.nn.Conv3d): the 3D convolution, with no padding along time.
        time_padding: ``"replicate"`` or ``"zeros"``.
    """

    def __init__(self, conv: nn.Conv3d, *, time_padding: str):
        super().__init__()
        self.conv = conv
        self.time_padding = time_padding
        t = conv.kernel_size[0]
        self.pad = ((t - 1) // 2, t - 1 - (t - 1) // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad != (0, 0):
            # F.pad's last pairs are W, H, T: pad only T, in the mode asked for
            mode = "replicate" if self.time_padding == "replicate" else "constant"
            x = F.pad(x, (0, 0, 0, 0, *self.pad), mode=mode)
        return self.conv(x)


def inflate_conv2d(conv: nn.Conv2d, time: int, *, time_stride: int = 1,
                   time_padding: str = "replicate") -> InflatedConv3d:
    """The I3D inflation of ``conv``: its kernel repeated ``time`` times along time and divided by ``time``.

    The bias is copied unchanged, so a video of one repeated frame gives the 2D response at every frame.

    Args:
        conv: a ``Conv2d`` with explicit zero padding; it is left unchanged.
        time: T, the temporal extent of the new kernel.
        time_stride: the stride along time.
        time_padding: ``"replicate"`` (the end frames repeated) or ``"zeros"``.

    Returns:
        An :class:`~visarch.models.video.InflatedConv3d`, ``[B, C, T, H, W] -> [B, C', T / time_stride, H', W']``.
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"inflate_conv2d needs an nn.Conv2d, got {type(conv).__name__}")
    check_int(time, "inflated time extent T", where="inflate_conv2d", ge=1)
    check_int(time_stride, "temporal stride", where="inflate_conv2d", ge=1)
    if time_padding not in ("replicate", "zeros"):
        raise ValueError(f"time_padding must be 'replicate' or 'zeros', got {time_padding!r}")
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError("only 2D convolutions with explicit zero padding can be inflated, got "
                         f"padding={conv.padding!r}, padding_mode={conv.padding_mode!r}")
    conv3d = nn.Conv3d(conv.in_channels, conv.out_channels, (time, *conv.kernel_size),
                       stride=(time_stride, *conv.stride), padding=(0, *conv.padding),
                       dilation=(1, *conv.dilation), groups=conv.groups, bias=conv.bias is not None,
                       device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        conv3d.weight.copy_(conv.weight.unsqueeze(2).expand_as(conv3d.weight) / time)
        if conv.bias is not None:
            conv3d.bias.copy_(conv.bias)
    return InflatedConv3d(conv3d, time_padding=time_padding)


# layers kept as they are: the activations act on each value of a [B, C, T, H, W] tensor; Flatten and Linear are
# only right after the global pool, as in a classifier head, where their input has the same shape as in 2D
_POINTWISE = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Identity, nn.Dropout,
              nn.Flatten, nn.Linear)


def _inflate_module(module: nn.Module, time: int, time_padding: str) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        return inflate_conv2d(module, time, time_padding=time_padding)
    if isinstance(module, nn.BatchNorm2d):
        bn = nn.BatchNorm3d(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats)
        bn.load_state_dict(module.state_dict())  # same statistics and affine map, now over (T, H, W)
        return bn.train(module.training)
    if isinstance(module, nn.MaxPool2d):  # pooling stays per frame: 1 x k x k
        if module.return_indices:
            raise ValueError("max pooling that returns indices cannot be inflated")
        k, s, p, d = (nn.modules.utils._pair(v) for v in (module.kernel_size, module.stride, module.padding,
                                                          module.dilation))
        return nn.MaxPool3d((1, *k), (1, *s), (0, *p), (1, *d), ceil_mode=module.ceil_mode)
    if isinstance(module, nn.AvgPool2d):
        k, s, p = (nn.modules.utils._pair(v) for v in (module.kernel_size, module.stride, module.padding))
        return nn.AvgPool3d((1, *k), (1, *s), (0, *p), module.ceil_mode, module.count_include_pad,
                            module.divisor_override)
    if isinstance(module, nn.AdaptiveAvgPool2d):  # the global pool also averages over time, as I3D's head does
        return nn.AdaptiveAvgPool3d((1, *nn.modules.utils._pair(module.output_size)))
    if isinstance(module, _POINTWISE):
        return module
    children = list(module.named_children())
    if not children:
        raise ValueError(f"cannot inflate a {type(module).__name__}: only Conv2d, BatchNorm2d, 2D pooling and "
                         "pointwise layers have a 3D counterpart here")
    if any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False)):
        raise ValueError(f"cannot inflate a {type(module).__name__} that holds parameters of its own")
    for name, child in children:  # ``module`` is already a private copy: replace its children in place
        setattr(module, name, _inflate_module(child, time, time_padding))
    return module


def inflate(model_2d: nn.Module, time: int, *, time_padding: str = "replicate") -> nn.Module:
    """A 3D copy of ``model_2d`` (left untouched): every Conv2d inflated, batch norm and pooling made 3D.

    Pooling stays per frame (1 x k x k), except adaptive average pooling, which also averages over time.
    Modules of other types are copied with their children inflated, so residual blocks carry over; a
    forward that itself checks for a 4D image (the registry's whole networks) cannot run on video, but
    their stages can be inflated one by one.

    Args:
        model_2d: the network to inflate, made of convolutions, batch norm, 2D pooling, pointwise layers
            and containers of them.
        time: T, the temporal extent of every inflated kernel.
        time_padding: ``"replicate"`` or ``"zeros"``.

    Returns:
        The inflated copy, which takes ``[B, C, T, H, W]`` where ``model_2d`` took ``[B, C, H, W]``.
    """
    check_int(time, "inflated time extent T", where="inflate", ge=1)
    if time_padding not in ("replicate", "zeros"):
        raise ValueError(f"time_padding must be 'replicate' or 'zeros', got {time_padding!r}")
    return _inflate_module(copy.deepcopy(model_2d), time, time_padding)


# ----------------------------------------------------------------------------------------------- SlowFast

def slowfast_frames(clip: torch.Tensor, *, tau: int, alpha: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SlowFast's two samplings of a clip: every tau-th frame for the Slow pathway, every (tau / alpha)-th for the Fast.

    Args:
        clip: ``[B, C, L, H, W]``, L a multiple of tau.
        tau: the Slow pathway's stride in frames.
        alpha: the frame-rate ratio, dividing tau.

    Returns:
        ``(slow, fast)``: ``[B, C, L / tau, H, W]`` and ``[B, C, alpha L / tau, H, W]``.
    """
    check_int(tau, "Slow pathway stride tau", where="slowfast_frames", ge=1)
    check_int(alpha, "frame-rate ratio alpha", where="slowfast_frames", ge=1)
    if tau % alpha:
        raise ValueError(f"alpha={alpha} does not divide tau={tau}: the Fast pathway's stride tau/alpha "
                         "must be a whole number of frames")
    if clip.dim() != 5 or clip.shape[2] % tau:
        raise ValueError(f"the clip must be [B, C, L, H, W] with L a multiple of tau={tau}, got {tuple(clip.shape)}")
    return clip[:, :, ::tau], clip[:, :, ::tau // alpha]


class LateralConnection(nn.Module):
    """SlowFast's lateral connection, from the Fast pathway into the Slow one.

    ``forward(slow, fast)`` maps ``[B, C, T, H, W]`` and ``[B, beta C, alpha T, H, W]`` to
    ``[B, C + 2 beta C, T, H, W]``: it passes the Fast features through a 5 x 1 x 1 convolution with temporal stride
    alpha and 2 beta C outputs, then concatenates them to the Slow features.

    Args:
        fast_channels: beta C, the Fast pathway's channels.
        alpha: the frame-rate ratio.
        kernel_time: the temporal kernel size of the convolution.
    """

    def __init__(self, fast_channels: int, *, alpha: int, kernel_time: int = 5):
        super().__init__()
        check_int(fast_channels, "Fast pathway channels beta C", where=type(self).__name__, ge=1)
        check_int(alpha, "frame-rate ratio alpha", where=type(self).__name__, ge=1)
        self.alpha = alpha
        self.conv = nn.Conv3d(fast_channels, 2 * fast_channels, (kernel_time, 1, 1), stride=(alpha, 1, 1),
                              padding=(kernel_time // 2, 0, 0), bias=False)

    def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
        if fast.shape[2] != self.alpha * slow.shape[2]:
            raise ValueError(f"the Fast pathway has {fast.shape[2]} frames, not alpha={self.alpha} times the Slow "
                             f"pathway's {slow.shape[2]}")
        if fast.shape[3:] != slow.shape[3:]:
            raise ValueError(f"the pathways' frames differ in size: {tuple(slow.shape[3:])} and "
                             f"{tuple(fast.shape[3:])}")
        return torch.cat([slow, self.conv(fast)], dim=1)


class SlowFastStem(nn.Module):
    """SlowFast's conv1 + pool1 for both pathways and the first lateral connection (the paper's table 1, ResNet-50).

    Maps a clip ``[B, 3, tau T, H, W]`` to the Slow features ``[B, C + 2 beta C, T, H/4, W/4]`` and the Fast
    ones ``[B, beta C, alpha T, H/4, W/4]``.  The Slow pathway's conv1 is 1 x 7 x 7 (no temporal kernel),
    the Fast pathway's 5 x 7 x 7.

    Args:
        channels: C, the Slow pathway's channels.
        alpha: the frame-rate ratio, dividing tau.
        beta_inv: 1 / beta, dividing C.
        tau: the Slow pathway's stride in frames.
    """

    def __init__(self, *, channels: int = 64, alpha: int = 8, beta_inv: int = 8, tau: int = 16):
        super().__init__()
        check_int(channels, "Slow pathway channels C", where=type(self).__name__, ge=1)
        check_int(beta_inv, "1/beta", where=type(self).__name__, ge=1)
        if channels % beta_inv:
            raise ValueError(f"1/beta={beta_inv} does not divide the Slow pathway's C={channels} channels")
        if tau % alpha:
            raise ValueError(f"alpha={alpha} does not divide tau={tau}: the Fast pathway's stride tau/alpha "
                             "must be a whole number of frames")
        self.tau, self.alpha = tau, alpha
        fast = channels // beta_inv
        self.slow = nn.Sequential(nn.Conv3d(3, channels, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
                                  nn.BatchNorm3d(channels), nn.ReLU(), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        self.fast = nn.Sequential(nn.Conv3d(3, fast, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False),
                                  nn.BatchNorm3d(fast), nn.ReLU(), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        self.lateral = LateralConnection(fast, alpha=alpha)

    def forward(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        slow, fast = slowfast_frames(clip, tau=self.tau, alpha=self.alpha)
        slow, fast = self.slow(slow), self.fast(fast)  # [B, C, T, H/4, W/4], [B, beta C, alpha T, H/4, W/4]
        return self.lateral(slow, fast), fast


# ----------------------------------------------------------------------------------------------- small nets

@dataclass(frozen=True)
class VideoNetConfig:
    """Hyperparameters of the small video networks (C3D-style 3D convolutions or their (2+1)D factorisation).

    One field per choice; each field's comment says what it sets.
    """

    block: str = "c3d"  #: "c3d" (t x 3 x 3 conv blocks) or "r2plus1d" (their (2+1)D factorisation)
    widths: tuple[int, ...] = (8, 16, 32)  #: N_i, output channels of each block
    time: int = 3  #: t, temporal kernel size; 1 makes every block a per-frame 2D convolution
    pooled_blocks: int = 2  #: the first blocks end in a 1 x 2 x 2 max pool (C3D keeps time early on)
    in_channels: int = 1  #: channels of each frame (grey digits)
    num_classes: int = 4  #: motion directions (right, left, down, up)

    def __post_init__(self):
        if self.block not in ("c3d", "r2plus1d"):
            raise ValueError(f"block must be 'c3d' or 'r2plus1d', got {self.block!r}")
        check_ints(self.widths, "widths", where=type(self).__name__, ge=1)
        for name in ("time", "in_channels", "num_classes"):
            check_int(getattr(self, name), name, where=type(self).__name__, ge=1)
        if self.block == "r2plus1d" and self.time == 1:
            raise ValueError("a (2+1)D block with temporal kernel t=1 is not factorising anything: use block='c3d'")
        if not 0 <= self.pooled_blocks <= len(self.widths):
            raise ValueError(f"pooled_blocks must be in 0..{len(self.widths)}, got {self.pooled_blocks!r}")


class VideoNet(nn.Module):
    """A small video classifier, ``[B, C, T, H, W] -> [B, num_classes]``.

    C3D or (2+1)D blocks, the first ``pooled_blocks`` of them ending in a 1 x 2 x 2 max pool, an average
    over (T, H, W) and a linear layer.

    Args:
        config: block type, widths, temporal kernel, pooled blocks, input channels and classes.
    """

    def __init__(self, config: VideoNetConfig):
        super().__init__()
        self.config = config
        block = C3DBlock if config.block == "c3d" else R2Plus1DBlock
        layers, c_in = [], config.in_channels
        for i, width in enumerate(config.widths):
            pool = (1, 2, 2) if i < config.pooled_blocks else None
            layers.append(block(c_in, width, time=config.time, pool=pool))  # [B, N_i, T, H / 2^i, W / 2^i]
            c_in = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_video(x, in_channels=self.config.in_channels, min_frames=1, min_size=2 ** self.config.pooled_blocks,
                    model=f"VideoNet({self.config.block})")
        return self.head(self.features(x).mean((2, 3, 4)))  # [B, N] -> [B, num_classes]


@register("frames2d_small", VideoNetConfig, block="c3d", time=1, widths=(14, 28, 55))
@register("c3d_small", VideoNetConfig, block="c3d")
@register("r2plus1d_small", VideoNetConfig, block="r2plus1d")
def build_video_net(config: VideoNetConfig) -> VideoNet:
    """The builder of the registered video networks, each a :class:`~visarch.models.video.VideoNet`."""
    return VideoNet(config)
