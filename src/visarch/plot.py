"""Figure helpers shared by the chapters."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import to_rgba
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle

from visarch.functional.conv import conv_output_size
from visarch.hooks import recording

__all__ = ["attention_maps", "channel_connectivity", "clip_towers", "conv_arithmetic", "data_parallel", "dense_block",
           "encoder_blocks", "filter_bank", "loss_curves", "normalization_axes", "optimizer_paths",
           "receptive_field_maps", "residual_blocks", "roofline", "shifted_windows", "transposed_conv_input",
           "unet_shapes", "unet_trail", "vit_pipeline"]

# One colour per highlighted window; the output cell it produces gets the same colour.
WINDOW_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def _grid(ax, rows, cols, fill, title):
    """Draw a rows x cols grid of unit squares; ``fill(r, c)`` gives a face colour."""
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(Rectangle((c, rows - 1 - r), 1, 1, facecolor=fill(r, c), edgecolor="0.3", lw=0.8))
    ax.set_xlim(-0.2, cols + 0.2)
    ax.set_ylim(-0.2, rows + 0.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=10)


def conv_arithmetic(size, kernel_size, stride=1, padding=0, *, windows=3):
    """Convolution arithmetic on a square image, in the style of Dumoulin and Visin.

    Left: the padded input (padding in grey); the first ``windows`` filter
    positions of the top row are outlined. Right: the output, each cell
    coloured like the window that produces it.

    Args:
        size: Z, the side of the input.
        kernel_size: F, the filter size.
        stride: S, the stride.
        padding: P, the zero padding on every edge.
        windows: how many filter positions to outline (at most 4).

    Returns:
        The ``matplotlib`` figure.
    """
    out = conv_output_size(size, kernel_size, stride, padding)
    padded = size + 2 * padding
    fig, (ax_in, ax_out) = plt.subplots(
        1, 2, figsize=(7, 3.6), gridspec_kw={"width_ratios": [padded, max(out, 2)]}
    )

    def is_padding(r, c):
        return not (padding <= r < padding + size and padding <= c < padding + size)

    _grid(ax_in, padded, padded, lambda r, c: "0.85" if is_padding(r, c) else "white",
          f"input Z={size} padded to Z+2P={padded}; F={kernel_size}, S={stride}")
    shown = range(min(windows, out, len(WINDOW_COLOURS)))
    for n in shown:
        top = padded - kernel_size  # the window sits in the top row of the padded image
        inset = 0.08 * (n + 1)  # overlapping windows stay distinguishable
        ax_in.add_patch(Rectangle((n * stride + inset, top + inset), kernel_size - 2 * inset,
                                  kernel_size - 2 * inset, facecolor=to_rgba(WINDOW_COLOURS[n], 0.15),
                                  edgecolor=WINDOW_COLOURS[n], lw=2.5))
    _grid(ax_out, out, out, lambda r, c: WINDOW_COLOURS[c] if r == 0 and c in shown else "white",
          f"output: {out} x {out}")
    fig.tight_layout()
    return fig


def channel_connectivity(masks):
    """Which input channels each output channel reads, one panel per layer.

    Row ``o`` is drawn at the top for ``o = 0``, columns left to right; connected cells are filled.

    Args:
        masks: maps a panel title to a boolean ``[C', C]`` matrix (a tensor or nested lists) whose
            entry ``(o, c)`` is true when output channel ``o`` depends on input channel ``c``.

    Returns:
        The ``matplotlib`` figure.
    """
    masks = {title: mask.tolist() if hasattr(mask, "tolist") else mask for title, mask in masks.items()}
    fig, axes = plt.subplots(1, len(masks), figsize=(2.5 * len(masks), 3.0), squeeze=False)
    for ax, (title, mask) in zip(axes[0], masks.items(), strict=True):
        rows, cols = len(mask), len(mask[0])
        _grid(ax, rows, cols, lambda r, c, mask=mask: "tab:blue" if mask[r][c] else "white", title)
        ax.text(cols / 2, -0.6, "input channel c", ha="center", va="top", fontsize=8)
        ax.text(-0.6, rows / 2, "output channel o", ha="right", va="center", rotation=90, fontsize=8)
    fig.tight_layout()
    return fig


def receptive_field_maps(maps, spans=None, *, cmap="viridis", size=2.4):
    """Input-gradient maps side by side, with the theoretical receptive field outlined.

    Pixels where a map is zero are drawn black, so holes in the support stay visible.

    Args:
        maps: maps a panel title to a ``[H, W]`` tensor of gradients (row 0 at the top), drawn as magnitudes.
        spans: maps the same titles to ``((first_row, last_row), (first_col, last_col))``, drawn as a
            dashed white rectangle; or ``None``.
        cmap: the colormap's name.
        size: the side of one panel, in inches.

    Returns:
        The ``matplotlib`` figure.
    """
    fig, axes = plt.subplots(1, len(maps), figsize=(size * len(maps), size + 0.4), squeeze=False)
    for ax, (title, grad) in zip(axes[0], maps.items(), strict=True):
        grad = grad.detach().abs().double()
        shown = grad.masked_fill(grad == 0, float("nan")).numpy()  # zero: the colormap's "bad" colour
        ax.imshow(shown, cmap=plt.get_cmap(cmap).with_extremes(bad="black"), interpolation="nearest")
        if spans is not None and title in spans:
            (r0, r1), (c0, c1) = spans[title]
            ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False,
                                   edgecolor="white", lw=1.5, ls="--"))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def transposed_conv_input(size, kernel_size, stride=1, padding=0, output_padding=0):
    """The image a transposed convolution convolves (steps 1-2 of the notes' TransConv).

    Left: the Z x Z input pixels (blue) with S-1 inserted zeros between neighbours
    (orange) and F-1-P zeros of padding on every edge, plus ``output_padding`` more
    at the bottom and right (grey); the first position of the flipped F x F filter
    is outlined.  Right: the output, of side (Z-1)S+F-2P+output_padding.

    Args:
        size: Z, the side of the input.
        kernel_size: F, the filter size.
        stride: S, the stride.
        padding: P, at most F-1 (the notes' condition), so that the edge padding is not negative.
        output_padding: extra rows and columns at the bottom and right, smaller than S.

    Returns:
        The ``matplotlib`` figure.
    """
    from visarch.functional.transposed import conv_transpose_output_size

    out = conv_transpose_output_size(size, kernel_size, stride, padding, output_padding)
    edge = kernel_size - 1 - padding
    if edge < 0:
        raise ValueError(f"the picture needs P <= F-1, got F={kernel_size}, P={padding}")
    dilated = (size - 1) * stride + 1
    side = dilated + 2 * edge + output_padding
    colours = {"input pixel": to_rgba("tab:blue", 0.45), "inserted zero (S-1)": to_rgba("tab:orange", 0.35),
               "padding zero (F-1-P, output_padding)": "0.85"}
    pixel, inserted, pad = colours.values()

    def fill(r, c):
        r, c = r - edge, c - edge
        if not (0 <= r < dilated and 0 <= c < dilated):
            return pad
        return pixel if r % stride == 0 and c % stride == 0 else inserted

    fig, (ax_in, ax_out) = plt.subplots(1, 2, figsize=(7.5, 4), gridspec_kw={"width_ratios": [side, max(out, 2)]})
    _grid(ax_in, side, side, fill, f"padded input: Z={size}, F={kernel_size}, S={stride}, P={padding}"
          + (f", output_padding={output_padding}" if output_padding else ""))
    ax_in.add_patch(Rectangle((0.06, side - kernel_size + 0.06), kernel_size - 0.12, kernel_size - 0.12,
                              facecolor="none", edgecolor="tab:red", lw=2.5))
    _grid(ax_out, out, out, lambda r, c: "tab:red" if r == c == 0 else "white", f"output: {out} x {out}")
    handles = [Rectangle((0, 0), 1, 1, facecolor=colour, edgecolor="0.3") for colour in colours.values()]
    fig.legend(handles, list(colours), loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def normalization_axes(n=4, c=6, pixels=4, *, groups=2, entry=(3, 0)):
    """The N x C x (H W) cube once per layer, with the set one entry is normalised over shaded.

    After Wu and He (2018, figure 2): batch norm shades the entry's channel across the batch
    and the pixels, layer norm its example, instance norm its example and channel, group norm
    its example and the group of channels it belongs to.

    Args:
        n: N, the batch size drawn.
        c: C, the number of channels drawn.
        pixels: the length of the H W axis drawn.
        groups: G, the number of groups of group norm.
        entry: the entry's ``(k, c)``, 0-based; the default, the last example and the first channel,
            lies on the two faces the view shows.

    Returns:
        The ``matplotlib`` figure.
    """
    k0, c0 = entry
    per_group = c // groups
    same = {
        "batch norm": lambda k, ch: ch == c0,
        "layer norm": lambda k, ch: k == k0,
        "instance norm": lambda k, ch: k == k0 and ch == c0,
        f"group norm (G = {groups})": lambda k, ch: k == k0 and ch // per_group == c0 // per_group,
    }
    fig = plt.figure(figsize=(11, 3.2))
    for i, (title, chosen) in enumerate(same.items()):
        ax = fig.add_subplot(1, len(same), i + 1, projection="3d")
        filled = np.ones((n, c, pixels), dtype=bool)  # axes: N (x), C (y), H*W (z)
        colours = np.empty(filled.shape, dtype=object)
        for k in range(n):
            for ch in range(c):
                colours[k, ch, :] = "tab:blue" if chosen(k, ch) else "0.92"
        ax.voxels(filled, facecolors=colours, edgecolor="0.4", linewidth=0.3, shade=False)
        ax.set_xlabel("N", labelpad=-12)
        ax.set_ylabel("C", labelpad=-12)
        ax.set_zlabel("H, W", labelpad=-12)
        ax.set_xticks([]), ax.set_yticks([]), ax.set_zticks([])
        ax.set_box_aspect((n, c, pixels))
        ax.view_init(elev=22, azim=-58)
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def _figure_and_axes(ax, figsize):
    """The axes to draw on (a new figure of ``figsize`` when ``ax`` is None) and their figure."""
    if ax is None:
        return plt.subplots(figsize=figsize)
    return ax.figure, ax


def optimizer_paths(loss, paths, *, extent, levels=20, log_levels=True, ax=None, title=None):
    """Contours of a 2-D ``loss`` and the iterates of each optimizer drawn over them.

    Args:
        loss: maps points ``[..., 2]`` (a float64 tensor) to values ``[...]``.
        paths: maps a legend label to a ``[steps + 1, 2]`` tensor of iterates (as returned by
            :func:`~visarch.optim.landscapes.trajectory`).
        extent: ``(x_min, x_max, y_min, y_max)``, the region drawn.
        levels: the number of contour levels.
        log_levels: space the contour levels evenly in the logarithm of the loss above its smallest
            grid value, so a long flat valley stays visible.
        ax: the ``matplotlib`` axes to draw on (default: a new figure).
        title: the title of the axes, or ``None``.

    Returns:
        The ``matplotlib`` figure.
    """
    x_min, x_max, y_min, y_max = extent
    xs, ys = torch.linspace(x_min, x_max, 200, dtype=torch.float64), torch.linspace(y_min, y_max, 200,
                                                                                     dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # [200, 200, 2], rows follow y
    values = loss(grid).numpy()
    fig, ax = _figure_and_axes(ax, (5.2, 4.2))
    shown = np.log10(values - values.min() + 1e-3) if log_levels else values
    ax.contour(xs.numpy(), ys.numpy(), shown, levels=levels, cmap="Greys", linewidths=0.6)
    for label, path in paths.items():
        path = path.detach().numpy()
        ax.plot(path[:, 0], path[:, 1], marker="o", markersize=2.2, lw=1.1, label=label)
    ax.set_xlim(x_min, x_max)
    ax.set_ylim(y_min, y_max)
    ax.set_xlabel(r"$\theta_1$")
    ax.set_ylabel(r"$\theta_2$")
    ax.legend(fontsize=7, loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def loss_curves(curves, *, xlabel="step", ylabel="loss", log=True, ax=None, title=None):
    """One line per entry of ``curves`` (label -> sequence of values), on a log scale by default.

    Args:
        curves: maps a legend label to a sequence of values, one per step (or epoch).
        xlabel: the label of the horizontal axis.
        ylabel: the label of the vertical axis.
        log: a logarithmic vertical axis.
        ax: the ``matplotlib`` axes to draw on (default: a new figure).
        title: the title of the axes, or ``None``.

    Returns:
        The ``matplotlib`` figure.
    """
    fig, ax = _figure_and_axes(ax, (5.2, 3.6))
    for label, values in curves.items():
        values = np.asarray(values, dtype=float)
        ax.plot(np.arange(len(values)), values, lw=1.3, label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def roofline(series, *, peak, bandwidth, ax=None, title=None):
    """The roofline ``min(peak, I * bandwidth)`` on log-log axes, with measured kernels as points.

    Args:
        series: maps a legend label to a list of ``(intensity, rate, note)``: FLOP per byte,
            FLOP/s achieved, and a short text written beside the point.
        peak: the compute roof R, FLOP/s.
        bandwidth: the memory slope B, bytes/s.
        ax: the ``matplotlib`` axes to draw on (default: a new figure).
        title: the title of the axes, or ``None``.

    Returns:
        The ``matplotlib`` figure.
    """
    fig, ax = _figure_and_axes(ax, (5.6, 3.8))
    ridge = peak / bandwidth
    intensities = [i for points in series.values() for i, _, _ in points] + [ridge]
    xs = np.geomspace(min(intensities) / 4, max(intensities) * 4, 200)
    ax.loglog(xs, np.minimum(peak, xs * bandwidth) / 1e9, color="k", lw=1.5, label="roofline min(R, I B)")
    ax.axvline(ridge, color="grey", ls=":", lw=1)
    ax.annotate(f"ridge R/B = {ridge:.1f}", (ridge, peak / 1e9), textcoords="offset points", xytext=(4, -14),
                fontsize=7, color="grey")
    for (label, points), marker in zip(series.items(), "osD^v", strict=False):
        intensity, rate, notes = zip(*points, strict=True)
        ax.plot(intensity, np.array(rate) / 1e9, marker, markersize=5, label=label)
        for x, y, note in points:
            ax.annotate(note, (x, y / 1e9), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.set_xlabel("arithmetic intensity I (FLOP per byte)")
    ax.set_ylabel("GFLOP/s")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def attention_maps(images, maps, *, titles=None, cmap="magma", outline="cyan", size=1.5):
    """Attention maps over the images they were computed on, one row per image.

    The first column shows the image alone; the others show each map, from zero to its own maximum
    so that every panel uses the whole colour range, with the image's strokes outlined (the contour
    halfway between its darkest and brightest pixel).  Each patch's weight fills its ``H/h x W/w``
    pixels.

    Args:
        images: grey images ``[N, H, W]`` (or ``[N, 1, H, W]``).
        maps: ``[N, M, h, w]``, M maps per image on a grid of ``h x w`` patches, for instance the class
            token's attention to each patch, per head and averaged; the patches must tile the image
            (h divides H and w divides W).
        titles: M strings that head the map columns, or ``None``.
        cmap: the colormap of the maps.
        outline: the colour of the strokes' outline.
        size: the side of one panel, in inches.

    Returns:
        The ``matplotlib`` figure.
    """
    images, maps = torch.as_tensor(images).detach().cpu(), torch.as_tensor(maps).detach().cpu()
    if images.dim() == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.dim() != 3:
        raise ValueError(f"images must be [N, H, W] or [N, 1, H, W], got {tuple(images.shape)}")
    if maps.dim() != 4:
        raise ValueError(f"maps must be [N, M, h, w], got {tuple(maps.shape)}")
    (n, height, width), (n_maps, m, rows, cols) = images.shape, maps.shape
    if n_maps != n:
        raise ValueError(f"{n} images but maps for {n_maps}")
    if height % rows or width % cols:
        raise ValueError(f"a grid of {rows} x {cols} patches does not tile a {height} x {width} image")
    if titles is not None and len(titles) != m:
        raise ValueError(f"{len(titles)} titles for {m} maps per image")
    pixels = maps.double().repeat_interleave(height // rows, dim=2).repeat_interleave(width // cols, dim=3)
    fig, axes = plt.subplots(n, m + 1, figsize=(size * (m + 1), size * n + 0.3), squeeze=False)
    for i in range(n):
        image = images[i].double().numpy()
        axes[i, 0].imshow(image, cmap="gray_r", interpolation="nearest")
        level = (image.min() + image.max()) / 2
        for j in range(m):
            ax = axes[i, j + 1]
            ax.imshow(pixels[i, j].numpy(), cmap=cmap, vmin=0, vmax=max(pixels[i, j].max().item(), 1e-12),
                      interpolation="nearest")
            if image.max() > image.min():
                ax.contour(image, levels=[level], colors=outline, linewidths=0.9)
            if titles is not None and i == 0:
                ax.set_title(titles[j], fontsize=8)
    axes[0, 0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def _box(ax, x, y, w, h, text, colour, fontsize=8):
    """A rounded box centred at (x, y) with a centred label."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=to_rgba(colour, 0.25), edgecolor=colour, lw=1.2))
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, start, end):
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": "0.3", "lw": 1.1})


def vit_pipeline(image, patch_size, *, depth_label="L"):
    """The vision transformer's pipeline on one image: the patch grid, then the token sequence.

    Left, the image with its grid of ``p x p`` patches, numbered in the row-major order in which they
    become tokens. Right, the sequence the encoder reads: the class token (position 0) followed by one
    token per patch, each a linear embedding of the patch's pixels plus its position embedding; the
    encoder blocks; and the head, which reads the class token alone.

    Args:
        image: a grey image ``[H, W]`` (or ``[1, H, W]``).
        patch_size: p, which must divide H and W.
        depth_label: how the figure names the number of encoder blocks.

    Returns:
        The ``matplotlib`` figure.
    """
    image = torch.as_tensor(image).detach().cpu()
    if image.dim() == 3 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 2:
        raise ValueError(f"image must be [H, W] or [1, H, W], got {tuple(image.shape)}")
    height, width = image.shape
    if not isinstance(patch_size, int) or patch_size < 1 or height % patch_size or width % patch_size:
        raise ValueError(f"patch size p={patch_size!r} must be a positive int dividing H={height} and W={width}")
    rows, cols = height // patch_size, width // patch_size
    fig, (ax_image, ax_seq) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1, 2.6]})
    ax_image.imshow(image.double().numpy(), cmap="gray_r", interpolation="nearest")
    for k in range(1, rows):
        ax_image.axhline(k * patch_size - 0.5, color="tab:blue", lw=1.5)
    for k in range(1, cols):
        ax_image.axvline(k * patch_size - 0.5, color="tab:blue", lw=1.5)
    for r in range(rows):
        for c in range(cols):
            ax_image.text(c * patch_size + (patch_size - 1) / 2, r * patch_size + (patch_size - 1) / 2,
                          str(r * cols + c + 1), ha="center", va="center", fontsize=7, color="tab:blue",
                          bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
    ax_image.set_xticks([])
    ax_image.set_yticks([])
    ax_image.set_title(f"{height} x {width} image, {rows} x {cols} patches of {patch_size} x {patch_size}",
                       fontsize=9)

    # the sequence: at most 7 tokens drawn, the rest elided
    shown = list(range(rows * cols + 1))
    if len(shown) > 7:
        shown = [*shown[:5], None, shown[-1]]
    ax_seq.set_xlim(-1.0, len(shown) + 0.2)
    ax_seq.set_ylim(-0.2, 4.4)
    ax_seq.axis("off")
    for i, token in enumerate(shown):
        if token is None:
            ax_seq.text(i, 0.4, "...", ha="center", va="center", fontsize=10)
            continue
        colour = "tab:orange" if token == 0 else "tab:blue"
        label = "CLS" if token == 0 else f"patch\n{token}"
        _box(ax_seq, i, 0.4, 0.8, 0.6, label, colour, fontsize=7)
        ax_seq.text(i, 1.0, f"+ pos {token}", ha="center", va="center", fontsize=6.5, color="0.35")
        _arrow(ax_seq, (i, 1.15), (i, 1.75))
    ax_seq.text(-0.45, 0.4, "tokens", ha="right", va="center", fontsize=7, color="0.35")
    middle = (len(shown) - 1) / 2
    _box(ax_seq, middle, 2.2, len(shown) - 0.2, 0.8, f"transformer encoder: {depth_label} blocks of "
         "self-attention and MLP, every token attends to every token", "tab:green")
    _arrow(ax_seq, (0, 2.65), (0, 3.3))
    _box(ax_seq, 0, 3.75, 1.6, 0.6, "head on CLS\n-> class scores", "tab:orange", fontsize=7)
    ax_seq.text(1.2, 3.75, "the other outputs are not read by the classifier", fontsize=7, color="0.35",
                va="center")
    ax_seq.set_title(f"sequence of 1 + {rows * cols} tokens", fontsize=9)
    fig.tight_layout()
    return fig


def clip_towers(n=4):
    """CLIP's two towers and the similarity matrix its loss is computed on, for a batch of n pairs.

    Images go through the image encoder and captions through the text encoder; both end in a linear map
    to the same d-dimensional space and a normalisation, so that entry (i, j) of the n x n matrix is the
    cosine similarity of image i and caption j (times a learned temperature). The diagonal holds the n
    matching pairs; the loss is a cross-entropy over each row (which caption fits this image?) and over
    each column (which image fits this caption?).

    Args:
        n: the number of image-caption pairs drawn, from 2 to 6.

    Returns:
        The ``matplotlib`` figure.
    """
    if not isinstance(n, int) or not 2 <= n <= 6:
        raise ValueError(f"n must be an int from 2 to 6, got {n!r}")
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.set_xlim(-4.4, n + 0.4)
    ax.set_ylim(-0.8, n + 4.2)
    ax.set_aspect("equal")
    ax.axis("off")
    _box(ax, n / 2, n + 2.2, n, 0.7, "text encoder (transformer)", "tab:purple")
    _box(ax, -2.4, n / 2, 1.5, n * 0.85, "image\nencoder\n(ViT or\nResNet)", "tab:blue")
    for j in range(n):
        ax.text(j + 0.5, n + 3.75, f"caption\n{j + 1}", ha="center", va="center", fontsize=7)
        _arrow(ax, (j + 0.5, n + 3.45), (j + 0.5, n + 2.6))
        _arrow(ax, (j + 0.5, n + 1.8), (j + 0.5, n + 1.0))
        _box(ax, j + 0.5, n + 0.6, 0.8, 0.5, f"$T_{j + 1}$", "tab:purple")
    for i in range(n):
        y = n - 1 - i + 0.5
        ax.text(-4.3, y, f"image {i + 1}", ha="left", va="center", fontsize=7)
        _arrow(ax, (-3.55, y), (-3.2, y))
        _arrow(ax, (-1.6, y), (-1.25, y))
        _box(ax, -0.75, y, 0.8, 0.6, f"$I_{i + 1}$", "tab:blue")
        for j in range(n):
            fill = to_rgba("tab:green", 0.45) if i == j else "white"
            ax.add_patch(Rectangle((j, n - 1 - i), 1, 1, facecolor=fill, edgecolor="0.4", lw=0.8))
            ax.text(j + 0.5, y, f"$I_{i + 1} \\cdot T_{j + 1}$", ha="center", va="center", fontsize=7)
    ax.text(n / 2 - 1, -0.45, "matching pairs on the diagonal; cross-entropy along each row and each column",
            ha="center", va="center", fontsize=7.5)
    fig.tight_layout()
    return fig


def _sheet(ax, x, y, side, cells, colour, window=None):
    """One channel as a square of ``cells x cells`` pixels with lower-left corner (x, y), optionally
    with the ``window`` (row, col, size) of a filter outlined."""
    step = side / cells
    ax.add_patch(Rectangle((x, y), side, side, facecolor=to_rgba(colour, 0.18), edgecolor=colour, lw=1))
    for k in range(1, cells):
        ax.plot([x + k * step] * 2, [y, y + side], color=to_rgba(colour, 0.35), lw=0.5)
        ax.plot([x, x + side], [y + k * step] * 2, color=to_rgba(colour, 0.35), lw=0.5)
    if window is not None:
        row, col, size = window
        ax.add_patch(Rectangle((x + col * step, y + side - (row + size) * step), size * step, size * step,
                               facecolor="none", edgecolor="black", lw=1.6))


def filter_bank(in_channels=3, out_channels=4, kernel_size=3, size=6):
    """A convolutional layer's filter bank over channels: what one output pixel is made of.

    Left, the input's C channels as a stack of H x W sheets, with the F x F window of the first output
    pixel outlined on every sheet: the window spans all channels. Middle, the C' filters, each a stack
    of C sheets of F x F weights, one colour per filter. Right, the output's C' channels, each made by
    one filter, with the first pixel marked: it is the sum of the window times filter o, plus b_o.
    Zero padding P = (F - 1) / 2 and stride 1 keep H' = H.

    Args:
        in_channels: C, from 1 to 6.
        out_channels: C', from 1 to 6.
        kernel_size: F, odd and smaller than ``size``.
        size: H = W, the side of the drawn image, from 3 to 10.

    Returns:
        The ``matplotlib`` figure.
    """
    for name, value, low, high in (("in_channels C", in_channels, 1, 6), ("out_channels C'", out_channels, 1, 6),
                                   ("size H", size, 3, 10)):
        if not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be an int from {low} to {high}, got {value!r}")
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0 or kernel_size >= size:
        raise ValueError(f"kernel_size F must be an odd int below H={size}, got {kernel_size!r}")
    colours = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.set_aspect("equal")
    ax.axis("off")
    depth = 0.35  # offset between stacked sheets
    side = 3.0
    for c in reversed(range(in_channels)):  # the front sheet last, so it is drawn on top
        _sheet(ax, c * depth, -c * depth, side, size, "0.35", window=(0, 0, kernel_size))
    ax.text(side / 2 + in_channels * depth / 2, side + 0.5, f"input: C = {in_channels} channels of {size} x {size}",
            ha="center", fontsize=8)
    input_right = side + (in_channels - 1) * depth
    bottom = -(max(in_channels, out_channels) - 1) * depth  # the lowest sheet's lower edge
    stack = (in_channels - 1) * depth * 0.5  # how far a filter's sheets reach down and right
    gap = 0.3
    small = min(side * kernel_size / size, (side - bottom - (out_channels - 1) * gap) / out_channels - stack)
    x0 = input_right + 2.6
    for o in range(out_channels):
        y = side - small - o * (small + stack + gap)
        for c in reversed(range(in_channels)):
            _sheet(ax, x0 + c * depth * 0.5, y - c * depth * 0.5, small, kernel_size, colours[o])
        ax.text(x0 - 0.15, y + small / 2, f"filter {o}", ha="right", va="center", fontsize=7, color=colours[o])
    ax.text(x0 + small / 2, side + 0.5, f"C' = {out_channels} filters of {in_channels} x {kernel_size} x {kernel_size}",
            ha="center", fontsize=8)
    x1 = x0 + small + stack + 1.6
    for o in reversed(range(out_channels)):
        _sheet(ax, x1 + o * depth, -o * depth, side, size, colours[o])
    for o in range(out_channels):  # the first pixel of every output channel
        ax.add_patch(Rectangle((x1 + o * depth, -o * depth + side * (1 - 1 / size)), side / size, side / size,
                               facecolor=colours[o], edgecolor="black", lw=0.8))
    ax.text(x1 + side / 2 + out_channels * depth / 2, side + 0.5,
            f"output: C' = {out_channels} channels of {size} x {size}", ha="center", fontsize=8)
    _arrow(ax, (input_right + 0.15, side / 2), (input_right + 1.2, side / 2))
    _arrow(ax, (x0 + small + stack + 0.2, side / 2), (x1 - 0.2, side / 2))
    ax.text((x1 + side + out_channels * depth) / 2, bottom - 0.55,
            f"output pixel (o, 0, 0) = sum over the {in_channels} x {kernel_size} x {kernel_size} window "
            "(outlined) of window x filter o, + b_o", ha="center", fontsize=8)
    ax.set_xlim(-0.3, x1 + side + out_channels * depth + 0.3)
    ax.set_ylim(bottom - 0.9, side + 0.9)
    fig.tight_layout()
    return fig


def _column(ax, x, steps, *, top=0.0, height=0.5, gap=0.35, width=1.9):
    """A vertical chain of boxes joined by arrows, from the top down: ``steps`` are (label, colour), and a
    step whose label is ``"+"`` is drawn as the sum node of a residual connection. Returns the centres."""
    centres = []
    y = top
    for k, (label, colour) in enumerate(steps):
        if label == "+":
            ax.add_patch(Circle((x, y), 0.17, facecolor="white", edgecolor="0.3", lw=1.1))
            ax.text(x, y, "+", ha="center", va="center", fontsize=10)
        else:
            _box(ax, x, y, width, height, label, colour)
        centres.append(y)
        below = y - height - gap
        if k + 1 < len(steps):
            _arrow(ax, (x, y - (0.17 if label == "+" else height / 2)),
                   (x, below + (0.17 if steps[k + 1][0] == "+" else height / 2)))
        y = below
    return centres


def _skip(ax, x, y_from, y_to, *, side=1.35, label="identity"):
    """A residual connection: from the trunk at ``y_from`` around the right of the column into the sum
    node at ``y_to``."""
    ax.plot([x, x + side, x + side], [y_from, y_from, y_to], color="0.3", lw=1.1)
    _arrow(ax, (x + side, y_to), (x + 0.19, y_to))
    ax.text(x + side + 0.08, (y_from + y_to) / 2, label, ha="left", va="center", fontsize=7, color="0.35",
            rotation=90)


def _two_columns(fig, ax, titles, *, title_y, top, bottom):
    """Title the two columns that ``_column`` drew at x = 0 and x = 5, and frame them."""
    for x, title in zip((0.0, 5.0), titles, strict=True):
        ax.text(x, title_y, title, ha="center", fontsize=9)
    ax.set_xlim(-1.4, 6.9)
    ax.set_ylim(bottom, top)
    fig.tight_layout()
    return fig

def encoder_blocks():
    """The transformer's encoder block in its two layouts, side by side.

    Left, post-norm as in the original transformer: each sublayer (multi-head self-attention, then the
    position-wise feed-forward network) is added to its input and the sum is layer-normalised, so the
    normalisation sits on the residual path. Right, pre-norm as in the ViT: each sublayer reads a
    normalised copy of its input and its output is added to the unnormalised input, so the residual path
    from the block's input to its output is a plain sum. Both map ``[N, T, d] -> [N, T, d]``.

    Returns:
        The ``matplotlib`` figure.
    """
    fig, ax = plt.subplots(figsize=(8, 5.6))
    ax.set_aspect("equal")
    ax.axis("off")
    trunk = ("x: [N, T, d]", "0.6")
    attention, ffn = ("multi-head\nself-attention", "tab:blue"), ("feed-forward\n(MLP)", "tab:orange")
    norm, add = ("LayerNorm", "tab:green"), ("+", None)
    out = ("[N, T, d]", "0.6")
    post = _column(ax, 0.0, [trunk, attention, add, norm, ffn, add, norm, out])
    pre = _column(ax, 5.0, [trunk, norm, attention, add, norm, ffn, add, out])
    # residual connections: from the branch point just below each column's input into its sum node
    for x, centres, (start, end) in ((0.0, post, (0, 2)), (0.0, post, (3, 5)), (5.0, pre, (0, 3)),
                                      (5.0, pre, (3, 6))):
        y_from = centres[start] - 0.25 - 0.15
        _skip(ax, x, y_from, centres[end])
    return _two_columns(fig, ax, ("post-norm (Vaswani et al., 2017)", "pre-norm (ViT, GPT-2 and later)"),
                        title_y=0.75, top=1.1, bottom=post[-1] - 0.6)


def residual_blocks(basic_channels=64, bottleneck_channels=256):
    """ResNet's two residual blocks side by side, as in figure 5 of He et al. (2016).

    Left, the basic block of ResNet-18 and -34: two 3 x 3 convolutions of C channels. Right, the
    bottleneck block of ResNet-50 and deeper, on C' channels: a 1 x 1 convolution down to C'/4, a 3 x 3
    convolution at C'/4, and a 1 x 1 convolution back up to C'. Each convolution is followed by batch
    norm, and by a ReLU except the last, whose output is added to the block's input before the final ReLU.
    The defaults are the paper's pair, C = 64 and C' = 256, whose weights nearly agree (73,728 and 69,632).

    Args:
        basic_channels: C, a positive int.
        bottleneck_channels: C', a positive multiple of 4.

    Returns:
        The ``matplotlib`` figure.
    """
    if not isinstance(basic_channels, int) or basic_channels < 1:
        raise ValueError(f"basic_channels C must be a positive int, got {basic_channels!r}")
    if not isinstance(bottleneck_channels, int) or bottleneck_channels < 4 or bottleneck_channels % 4:
        raise ValueError(f"bottleneck_channels C' must be a positive multiple of 4, got {bottleneck_channels!r}")
    c, wide = basic_channels, bottleneck_channels
    inner = wide // 4
    fig, ax = plt.subplots(figsize=(8, 5.2))
    ax.set_aspect("equal")
    ax.axis("off")
    conv, relu, add = "tab:blue", "tab:green", ("+", None)
    basic = _column(ax, 0.0, [(f"x: [{c}, H, W]", "0.6"), (f"3 x 3 conv, {c}\nBN, ReLU", conv),
                              (f"3 x 3 conv, {c}\nBN", conv), add, ("ReLU", relu), (f"[{c}, H, W]", "0.6")],
                    height=0.6)
    bottleneck = _column(ax, 5.0, [(f"x: [{wide}, H, W]", "0.6"), (f"1 x 1 conv, {inner}\nBN, ReLU", conv),
                                   (f"3 x 3 conv, {inner}\nBN, ReLU", conv), (f"1 x 1 conv, {wide}\nBN", conv),
                                   add, ("ReLU", relu), (f"[{wide}, H, W]", "0.6")], height=0.6)
    _skip(ax, 0.0, basic[0] - 0.45, basic[3])
    _skip(ax, 5.0, bottleneck[0] - 0.45, bottleneck[4])
    return _two_columns(fig, ax, ("basic block (ResNet-18, -34)", "bottleneck block (ResNet-50 and deeper)"),
                        title_y=0.8, top=1.2, bottom=bottleneck[-1] - 0.6)


def shifted_windows(regions, window, shift):
    """Swin's window partitions in three panels, on a map of H x W tokens.

    Left, the regular partition of one block into M x M windows. Middle, the partition of the next block,
    moved by the shift S: windows at the border of the map are smaller. Right, how Swin computes the
    middle one: the map rolled by -S in both directions and cut into regular windows again, coloured by
    ``regions`` (the labels of :func:`~visarch.models.swin.shift_regions`), so that a window holding
    tokens from several regions, which were not neighbours before the roll, masks attention between them.

    Args:
        regions: region labels of the rolled map, ``[H, W]``.
        window: M, which must divide H and W.
        shift: S, from 1 to M - 1.

    Returns:
        The ``matplotlib`` figure.
    """
    regions = torch.as_tensor(regions).detach().cpu()
    if regions.dim() != 2:
        raise ValueError(f"regions must be [H, W], got {tuple(regions.shape)}")
    height, width = regions.shape
    if not isinstance(window, int) or window < 1 or height % window or width % window:
        raise ValueError(f"window M={window!r} must be a positive int dividing H={height} and W={width}")
    if not isinstance(shift, int) or not 0 < shift < window:
        raise ValueError(f"shift S={shift!r} must be an int from 1 to M-1={window - 1}")
    fig, axes = plt.subplots(1, 3, figsize=(10, 4.2))
    titles = (f"block l: {height // window} x {width // window} windows of {window} x {window}",
              f"block l+1: windows shifted by S={shift}", f"computed as: roll by -{shift}, regular windows,\n"
              "masked between regions")
    for k, (ax, title) in enumerate(zip(axes, titles, strict=True)):
        shown = regions.numpy() if k == 2 else np.zeros((height, width))
        ax.imshow(shown, cmap="tab10" if k == 2 else "Greys", vmin=0, vmax=9, interpolation="nearest")
        offset = shift if k == 1 else 0
        lines = sorted({0, height, *range(offset, height, window)}), sorted({0, width, *range(offset, width, window)})
        for y in lines[0]:
            ax.axhline(y - 0.5, color="black", lw=1.6)
        for x in lines[1]:
            ax.axvline(x - 0.5, color="black", lw=1.6)
        ax.set_xticks(np.arange(width) - 0.5, minor=True)
        ax.set_yticks(np.arange(height) - 0.5, minor=True)
        ax.grid(which="minor", color="0.8", lw=0.4)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.set_title(title, fontsize=8.5)
    fig.tight_layout()
    return fig


def dense_block(in_channels=64, growth_rate=32, layers=4):
    """What each layer of a DenseNet block reads: the concatenation of the block's input and of every
    earlier layer's output.

    One bar per layer, stacked from the pieces it concatenates (the block's input in grey, the output of
    layer j in colour j), with its channel count below: layer l reads ``c0 + (l - 1) k`` channels and
    adds k new ones, so the block's output, the last bar, has ``c0 + L k``.

    Args:
        in_channels: c0, the block's input channels.
        growth_rate: k, the channels each layer adds.
        layers: L, from 1 to 8.

    Returns:
        The ``matplotlib`` figure.
    """
    for name, value, high in (("in_channels c0", in_channels, None), ("growth_rate k", growth_rate, None),
                              ("layers L", layers, 8)):
        if not isinstance(value, int) or value < 1 or (high is not None and value > high):
            raise ValueError(f"{name} must be a positive int{f' up to {high}' if high else ''}, got {value!r}")
    colours = plt.get_cmap("tab10").colors
    total = in_channels + layers * growth_rate
    scale = 4.0 / total  # the block's output is 4 units tall
    fig, ax = plt.subplots(figsize=(1.3 * (layers + 1) + 1.5, 4.4))
    for bar in range(1, layers + 2):  # bar l is layer l's input; bar L + 1 is the block's output
        x, y = 1.4 * bar, 0.0
        pieces = [(in_channels, "0.75", "x0")] + [(growth_rate, colours[j % 10], f"x{j}") for j in range(1, bar)]
        for channels, colour, _ in pieces:
            ax.add_patch(Rectangle((x - 0.3, y), 0.6, channels * scale, facecolor=colour, edgecolor="white", lw=0.8))
            y += channels * scale
        reads = in_channels + (bar - 1) * growth_rate
        if bar <= layers:
            ax.text(x, -0.3, f"H{bar} reads\n{reads}", ha="center", va="top", fontsize=7.5)
            # H_l turns the whole bar into k new channels, the top piece of every later bar
            new = (in_channels + (bar - 0.5) * growth_rate) * scale
            _arrow(ax, (x + 0.32, y / 2), (x + 1.4 - 0.32, new))
            ax.text(x + 0.62, new + 0.3, f"H{bar}: +{growth_rate}", ha="center", fontsize=7, color=colours[bar % 10])
        else:
            ax.text(x, -0.3, f"output\n{reads}", ha="center", va="top", fontsize=7.5)
    ax.text(1.4 * (layers + 2) / 2, 4.75, f"dense block: c0 = {in_channels}, k = {growth_rate}, L = {layers}; "
            f"layer l reads c0 + (l - 1) k channels", ha="center", fontsize=8.5)
    ax.set_xlim(0.6, 1.4 * (layers + 1) + 0.6)
    ax.set_ylim(-1.0, 5.0)
    ax.axis("off")
    fig.tight_layout()
    return fig


def data_parallel(processes=2, batch=8):
    """One step of data-parallel training with W processes, drawn as W lanes.

    The global mini-batch of B rows is cut into W shards of B/W rows (process r takes rows r, r + W,
    ...); every process runs the same model on its shard and computes the gradient of its shard's mean
    loss; an all-reduce sums those gradients and each process divides by W, which gives every process
    the whole batch's gradient; each then takes the same optimizer step, so the copies stay identical.

    Args:
        processes: W, from 1 to 4.
        batch: B, a positive multiple of W, at most 16.

    Returns:
        The ``matplotlib`` figure.
    """
    if not isinstance(processes, int) or not 1 <= processes <= 4:
        raise ValueError(f"processes W must be an int from 1 to 4, got {processes!r}")
    if not isinstance(batch, int) or batch < 1 or batch > 16 or batch % processes:
        raise ValueError(f"batch B must be a multiple of W={processes} from 1 to 16, got {batch!r}")
    colours = plt.get_cmap("tab10").colors
    fig, ax = plt.subplots(figsize=(10, 1.3 + 1.1 * processes))
    ax.axis("off")
    ax.set_aspect("equal")
    lane = 1.1  # vertical distance between processes
    top = (processes - 1) * lane
    for i in range(batch):  # the global batch, each row coloured by the process that takes it
        ax.add_patch(Rectangle((0, top / 2 + batch * 0.14 - (i + 1) * 0.28), 0.9, 0.26,
                               facecolor=to_rgba(colours[i % processes], 0.6), edgecolor="white"))
        ax.text(0.45, top / 2 + batch * 0.14 - (i + 0.5) * 0.28, str(i), ha="center", va="center", fontsize=6)
    ax.text(0.45, top / 2 + batch * 0.14 + 0.25, f"batch of B = {batch}", ha="center", fontsize=8)
    for r in range(processes):
        y = top - r * lane
        colour = colours[r]
        _arrow(ax, (1.0, top / 2), (1.9, y))
        _box(ax, 2.75, y, 1.5, 0.7, f"process {r}\nrows {r}, {r + processes}, ...", colour, fontsize=7)
        _arrow(ax, (3.55, y), (4.05, y))
        _box(ax, 4.9, y, 1.5, 0.7, "model copy\nforward, loss", colour, fontsize=7)
        _arrow(ax, (5.7, y), (6.2, y))
        _box(ax, 7.0, y, 1.4, 0.7, f"gradient of\nshard mean g{r}", colour, fontsize=7)
        _arrow(ax, (7.75, y), (8.35, y))
        _box(ax, 10.6, y, 1.6, 0.7, "same step\nfrom same weights", colour, fontsize=7)
    _box(ax, 9.05, top / 2, 1.1, max(top, 0) + 0.8, "all-reduce\nmean\n(g0 + ...)\n/ W", "0.45", fontsize=7)
    for r in range(processes):
        _arrow(ax, (9.65, top - r * lane), (9.75, top - r * lane))
    ax.set_xlim(-0.2, 11.5)
    ax.set_ylim(-0.8, top + 0.9 + max(0.0, batch * 0.14 - top / 2))
    fig.tight_layout()
    return fig


def unet_trail(unet, x: torch.Tensor, u: torch.Tensor) -> tuple[list, list, torch.Tensor]:
    """The shapes a U-Net produces on one batch, the trail that :func:`unet_shapes` draws.

    One forward pass with hooks (:func:`~visarch.hooks.recording`) on the first convolution and every
    module of the descent, and on the middle block's last module and every module of the ascent, of a
    :class:`~visarch.models.unet.UNet`.  It works on the meta device too, where nothing is computed.

    Args:
        unet: a :class:`~visarch.models.unet.UNet` (``conv_in``, ``down``, ``middle`` and ``up``).
        x: images ``[B, C, H, W]``.
        u: the context ``[B, d]``.

    Returns:
        ``(descent, ascent, output)``: ``descent`` the ``(channels, side)`` of ``z_1, z_2, ...`` in order,
        ``ascent`` those of the middle block's output and then of every module of the ascent, and the
        network's output ``[B, C, H, W]``, so that no second pass is needed.
    """
    for name in ("conv_in", "down", "middle", "up"):
        if not hasattr(unet, name):
            raise TypeError(f"unet_trail: unet must be a visarch U-Net with conv_in, down, middle and up, got "
                            f"{type(unet).__name__} without {name}")
    with recording({"descent": [unet.conv_in, *unet.down], "ascent": [unet.middle[1], *unet.up]}) as outputs:
        output = unet(x, u)
    descent, ascent = ([(y.shape[1], y.shape[2]) for y in outputs[part]] for part in ("descent", "ascent"))
    return descent, ascent, output


def unet_shapes(descent, ascent):
    """The shape trail of a U-Net: the descent down the left, the ascent up the right, a skip per row.

    ``descent`` lists the shapes of the images the descent keeps, ``z_1, z_2, ...`` (the first
    convolution, then every residual stage and every downsampling); ``ascent`` lists the shapes on the
    way back, starting with the middle block's output. Every entry of the ascent after the first is
    either an upsampling, recognised by a side twice the previous one, or a stage that concatenates
    the next skip, ``z_D, z_{D-1}, ..., z_1`` in that order. Each ``z_i`` is drawn on row i, and so is
    the stage that consumes it, with the skip as a horizontal arrow; upsamplings sit between rows. Box
    colours mark the resolution and box widths grow with the logarithm of the channels.

    Args:
        descent: ``[(C, side), ...]``, one pair per kept image of the descent.
        ascent: ``[(C, side), ...]``, the middle block's output first.

    Returns:
        The ``matplotlib`` figure.
    """
    for name, trail in (("descent", descent), ("ascent", ascent)):
        if not trail or not all(isinstance(p, tuple) and len(p) == 2 and all(isinstance(v, int) and v > 0 for v in p)
                                for p in trail):
            raise ValueError(f"{name} must be a non-empty list of (channels, side) pairs of positive ints, "
                             f"got {trail!r}")
    upsampling = [i > 0 and ascent[i][1] == 2 * ascent[i - 1][1] for i in range(len(ascent))]
    consumers = [i for i in range(1, len(ascent)) if not upsampling[i]]
    if len(consumers) != len(descent):
        raise ValueError(f"the ascent has {len(consumers)} stages that take a skip, the descent keeps "
                         f"{len(descent)} images; they must be equal")
    sides = sorted({side for _, side in (*descent, *ascent)}, reverse=True)
    colours = plt.get_cmap("viridis")(np.linspace(0.15, 0.85, len(sides)))
    colour = {side: colours[k] for k, side in enumerate(sides)}
    widest = max(np.log2(c) for c, _ in (*descent, *ascent))

    def box(x, y, shape):
        c, side = shape
        _box(ax, x, y, 1.0 + 1.2 * np.log2(c) / widest, 0.7, f"{c} x {side} x {side}", colour[side], fontsize=7)

    # the ascent reads bottom to top, one row per entry; z_i sits on the row of the stage that takes it
    rows = len(ascent) - 1
    row_of = {i: rows - i for i in range(1, len(ascent))}
    row_of[0] = rows + 0.4  # the middle block, below the lowest row
    z_rows = [row_of[i] for i in reversed(consumers)]  # z_1 ... z_D
    fig, ax = plt.subplots(figsize=(8, 0.42 * (rows + 2) + 1))
    ax.axis("off")
    left, right = 0.0, 6.0
    for shape, row in zip(descent, z_rows, strict=True):
        box(left, -row, shape)
    for upper, lower in zip(z_rows[:-1], z_rows[1:], strict=True):
        _arrow(ax, (left, -upper - 0.36), (left, -lower + 0.36))
    box((left + right) / 2, -row_of[0], ascent[0])
    _arrow(ax, (left, -z_rows[-1] - 0.38), ((left + right) / 2 - 0.9, -row_of[0]))
    previous = ((left + right) / 2 + 0.9, -row_of[0])
    for i in range(1, len(ascent)):
        box(right, -row_of[i], ascent[i])
        _arrow(ax, previous, (right, -row_of[i] - 0.38))
        previous = (right, -row_of[i] + 0.38)
        if not upsampling[i]:
            ax.annotate("", xy=(right - 1.15, -row_of[i]), xytext=(left + 1.15, -row_of[i]),
                        arrowprops={"arrowstyle": "->", "color": "0.55", "lw": 0.9, "linestyle": "--"})
        else:
            ax.text(right + 1.3, -row_of[i], "upsample", fontsize=7, va="center", color="0.4")
    ax.text(left, 1.0, "descent: z1, z2, ...", ha="center", fontsize=9)
    ax.text(right, 1.0, "ascent: each stage concatenates a skip", ha="center", fontsize=9)
    ax.text((left + right) / 2, 0.45, "skips (dashed): concatenated along the channels", ha="center",
            fontsize=8, color="0.4")
    ax.set_xlim(left - 1.6, right + 2.1)
    ax.set_ylim(-row_of[0] - 0.8, 1.4)
    fig.tight_layout()
    return fig
