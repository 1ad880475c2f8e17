"""Showing the package's own code inside a notebook, so the book never holds a second copy, and a
model's layers as a table."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap

__all__ = ["layer_table", "show_source", "without_checks"]

#: a call to one of the package's argument-checking helpers (``check_int``, ``_check_conv``, ...)
_CHECK_CALL = re.compile(r"_?check(_\w+)?$")


def show_source(obj, *, checks: bool = False):
    """Display the source of a function or class of ``visarch`` as a highlighted code block.

    A page shows code to teach what it computes. The checks that reject bad arguments matter to a
    user but not to that lesson, so by default each run of them is folded into one comment line
    (see :func:`without_checks`); the API reference has the full source.

    Args:
        obj: a function, class or method (anything ``inspect.getsource`` reads).
        checks: show the argument checks too.

    Returns:
        An ``IPython.display.Markdown`` object, a fenced Python block; Jupyter renders it as code,
        and the book's build renders it with syntax highlighting.
    """
    from IPython.display import Markdown

    source = inspect.getsource(obj)
    return Markdown(f"```python\n{source if checks else without_checks(source)}```")


def _is_check(statement: ast.stmt) -> bool:
    """An ``if`` whose body only raises, a bare call to a ``check_*`` helper, or a loop of checks."""
    if isinstance(statement, ast.For):
        return not statement.orelse and all(_is_check(s) for s in statement.body)
    if isinstance(statement, ast.If):
        return not statement.orelse and all(isinstance(s, ast.Raise) for s in statement.body)
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        func = statement.value.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return bool(_CHECK_CALL.match(name))
    return False


def without_checks(source: str) -> str:
    """The source of a function or class with its argument checks folded away.

    In the body of every function, each run of consecutive checks (an ``if`` that only raises, a
    call to a ``check_*`` helper, or a ``for`` loop of such checks) becomes one comment line, at
    the same indentation, that says how many lines it stood for. Everything else is kept as written.

    Args:
        source: the source of one function or class, as ``inspect.getsource`` returns it.

    Returns:
        The source with the checks folded; it is ``source`` itself when there are none.
    """
    lines = source.splitlines(keepends=True)
    runs = []  # (first, last) line numbers, 1-based, of each run of checks
    for node in ast.walk(ast.parse(textwrap.dedent(source))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            run = None
            for statement in node.body:
                if _is_check(statement):
                    run = (run[0] if run else statement.lineno, statement.end_lineno)
                    continue
                if run:
                    runs.append(run)
                run = None
            if run:
                runs.append(run)
    for first, last in sorted(runs, reverse=True):
        indent = lines[first - 1][: len(lines[first - 1]) - len(lines[first - 1].lstrip())]
        count = last - first + 1
        lines[first - 1:last] = [f"{indent}# ... argument checks ({count} line{'s' if count > 1 else ''}; "
                                 "full source in the API reference)\n"]
    return "".join(lines)


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
