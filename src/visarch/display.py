"""Showing the package's own code inside a notebook, so the book never holds a second copy."""

from __future__ import annotations

import inspect


def show_source(obj):
    """Display the source of a function or class of ``visarch`` as a highlighted code block.

    Returns an ``IPython.display.Markdown`` object: Jupyter renders it as code,
    and the book's build renders it with syntax highlighting.
    """
    from IPython.display import Markdown

    return Markdown(f"```python\n{inspect.getsource(obj)}```")
