"""Watching a network's modules during a forward pass, for the pages that check the shapes the notes state.

The ResNet-50 and U-Net pages check that each stage of a network produces the shape the notes give
it.  Both put a forward hook on the stages, run the network once and read what the hooks kept;
:func:`recording` does this once for all of them and removes its hooks afterwards, also when the
forward pass fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from torch import nn

__all__ = ["recording"]


@contextlib.contextmanager
def recording(modules):
    """Keep the outputs of some modules while the ``with`` block runs: ``{name: [output, ...]}``.

    Each name maps to a module or to a list of modules, a group whose outputs are kept in the order
    the modules run, one entry per call (a module called twice appears twice).  The hooks return
    nothing, so the network computes what it computes without them; the outputs are kept as they are
    (still attached to the autograd graph when there is one).

    Example::

        with recording({"stem": model.stem, "stacks": list(model.stacks)}) as outputs:
            model(images)
        shapes = [tuple(y.shape) for y in outputs["stacks"]]

    Args:
        modules: a mapping ``{name: module}`` or ``{name: [module, ...]}`` of ``torch.nn.Module`` objects.

    Yields:
        ``{name: []}``, whose lists fill up during the ``with`` block and stay filled after it.
    """
    if not isinstance(modules, Mapping):
        raise TypeError(f"recording: modules must be a mapping of names to modules, got {type(modules).__name__}")
    groups = {name: [group] if isinstance(group, nn.Module) else group for name, group in modules.items()}
    for name, group in groups.items():
        if not isinstance(group, (list, tuple)) or not all(isinstance(m, nn.Module) for m in group):
            raise TypeError(f"recording: modules[{name!r}] must be an nn.Module or a list of them, "
                            f"got {modules[name]!r}")
    outputs = {name: [] for name in groups}
    handles = []
    try:
        for name, group in groups.items():
            for module in group:
                handles.append(module.register_forward_hook(
                    lambda module, inputs, output, kept=outputs[name]: kept.append(output)))
        yield outputs
    finally:
        for handle in handles:
            handle.remove()
