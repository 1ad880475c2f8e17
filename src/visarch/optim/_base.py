"""What every optimizer of ``visarch.optim`` shares: the gathering of a group's tensors and the step count.

The optimizers check their hyperparameters with :mod:`visarch.checks`, refusing what ``torch.optim``
refuses, with the same exception type (``ValueError``).
"""

from __future__ import annotations

import functools

import torch


def gather(group, state, init):
    """The parameters of ``group`` that have a gradient, their gradients and their state.

    ``init(p)`` returns the fresh state of a parameter the first time it is seen (torch's names,
    so ``state_dict`` moves between these optimizers and torch's).  Parameters without a
    gradient are skipped and keep their state, as in torch.
    """
    params, grads, states = [], [], []
    for p in group["params"]:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise RuntimeError("sparse gradients are not supported")
        if p not in state or not state[p]:
            state[p] = init(p)
        params.append(p)
        grads.append(-p.grad if group.get("maximize", False) else p.grad)
        states.append(state[p])
    return params, grads, states


def step_counter():
    """Per-parameter step count, a float32 scalar tensor as torch keeps it (so state dicts agree)."""
    return torch.tensor(0.0, dtype=torch.float32)


class GroupOptimizer(torch.optim.Optimizer):
    """``step`` for all of them: evaluate the closure, then update each group's parameters that have gradients.

    A subclass says what a parameter's state starts as (``_init_state``) and how one group's
    parameters, gradients and states change in one step (``_update``, with ``torch._foreach_*``
    operations over lists of them); ``step`` calls it on cache-sized chunks of each group.
    """

    def _init_state(self, group, p):
        raise NotImplementedError

    def _update(self, group, params, grads, states):
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, states = gather(group, self.state, functools.partial(self._init_state, group))
            for chunk in cache_sized_chunks(params):
                self._update(group, [params[i] for i in chunk], [grads[i] for i in chunk], [states[i] for i in chunk])
        return loss


# An update makes several passes over its tensors (gradient, state, parameters). Over a model's
# whole parameter list each pass streams from main memory; over a few MiB at a time the later
# passes find the tensors still in cache, which is why torch's per-tensor loop beats its
# single foreach call on a CPU.
CHUNK_BYTES = 4 << 20


def cache_sized_chunks(tensors, limit=None):
    """Consecutive index ranges of ``tensors`` of at most ``limit`` bytes each (a larger tensor alone).

    ``limit`` defaults to the module's ``CHUNK_BYTES``, read at each call."""
    limit = CHUNK_BYTES if limit is None else limit
    chunk, size = [], 0
    for i, t in enumerate(tensors):
        nbytes = t.numel() * t.element_size()
        if chunk and size + nbytes > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(i)
        size += nbytes
    if chunk:
        yield chunk
