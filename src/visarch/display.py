"""Showing the package's own code inside a notebook, so the book never holds a second copy, and a
model's layers as a table."""

from __future__ import annotations

import inspect

__all__ = ["layer_table", "show_source"]


def show_source(obj):
    """Display the source of a function or class of ``visarch`` as a highlighted code block.

    Args:
        obj: a function, class or method (anything ``inspect.getsource`` reads).

    Returns:
        An ``IPython.display.Markdown`` object, a fenced Python block; Jupyter renders it as code,
        and the book's build renders it with syntax highlighting.
    """
    from IPython.display import Markdown

    return Markdown(f"```python\n{inspect.getsource(obj)}```")


def layer_table(model, *, input_size=None, input_data=None, depth=2) -> str:
    """torchinfo's table of a model's layers: output shape and parameters of each, the totals and the multiply-adds.

    torchinfo 1.8 prints its unit as an enum name on Python 3.11 and later
    ("Total mult-adds (Units.GIGABYTES)"); the table shows the unit's letter instead, so it reads
    the same on every Python.

    Args:
        model: the ``torch.nn.Module``.
        input_size: the shape of one input batch, e.g. ``(1, 3, 224, 224)`` for ``[N, C, H, W]``.
        input_data: the input tensors themselves (a tuple for several inputs), instead of ``input_size``.
        depth: how many levels of submodules the table lists.

    Returns:
        The table as text, the multiply-adds counted for one forward pass.
    """
    import torchinfo

    table = str(torchinfo.summary(model, input_size=input_size, input_data=input_data, depth=depth,
                                  col_names=("output_size", "num_params"), verbose=0))
    for name, letter in (("KILOBYTES", "k"), ("MEGABYTES", "M"), ("GIGABYTES", "G"), ("TERABYTES", "T")):
        table = table.replace(f"(Units.{name})", f"({letter})")
    return table
