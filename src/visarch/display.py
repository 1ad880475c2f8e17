"""Showing the package's own code inside a notebook, so the book never holds a second copy, and a
model's layers as a table."""

from __future__ import annotations

import inspect

__all__ = ["layer_table", "show_source"]


def show_source(obj):
    """Display the source of a function or class of ``visarch`` as a highlighted code block.

    Returns an ``IPython.display.Markdown`` object: Jupyter renders it as code,
    and the book's build renders it with syntax highlighting.
    """
    from IPython.display import Markdown

    return Markdown(f"```python\n{inspect.getsource(obj)}```")


def layer_table(model, *, input_size=None, input_data=None, depth=2) -> str:
    """torchinfo's table of ``model``'s modules down to ``depth``: output shape and parameters of
    each, the totals and the multiply-adds of one forward pass, for an input of ``input_size`` (or
    the tensors ``input_data``).

    torchinfo 1.8 prints its unit as an enum name on Python 3.11 and later
    ("Total mult-adds (Units.GIGABYTES)"); the table shows the unit's letter instead, so it reads
    the same on every Python.
    """
    import torchinfo

    table = str(torchinfo.summary(model, input_size=input_size, input_data=input_data, depth=depth,
                                  col_names=("output_size", "num_params"), verbose=0))
    for name, letter in (("KILOBYTES", "k"), ("MEGABYTES", "M"), ("GIGABYTES", "G"), ("TERABYTES", "T")):
        table = table.replace(f"(Units.{name})", f"({letter})")
    return table
