"""Figure helpers shared by the chapters."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.colors import to_rgba
from matplotlib.patches import Rectangle

from visarch.functional.conv import conv_output_size

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
    coloured like the window that produces it.  Returns the figure.
    """
    out = conv_output_size(size, kernel_size, stride, padding)
    padded = size + 2 * padding
    fig, (ax_in, ax_out) = plt.subplots(
        1, 2, figsize=(7, 3.6), gridspec_kw={"width_ratios": [padded, max(out, 2)]}
    )

    def is_padding(r, c):
        return not (padding <= r < padding + size and padding <= c < padding + size)

    _grid(ax_in, padded, padded, lambda r, c: "0.85" if is_padding(r, c) else "white",
          f"padded input: Z={size}, P={padding}, F={kernel_size}, S={stride}")
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
