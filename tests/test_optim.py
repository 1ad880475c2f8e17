"""``visarch.optim`` follows ``torch.optim`` step for step.

What this file proves, against torch's own optimizers as the independent reference:

* SGD (momentum, dampening, Nesterov, weight decay), Adagrad, RMSprop (alpha, centered,
  momentum), Adam (amsgrad, L2 or decoupled weight decay) and AdamW give the same parameters as
  their ``torch.optim`` counterparts after every one of 120 steps, in float64, on random
  smooth problems, over a hypothesis grid of hyperparameters, with two parameter groups, a
  parameter that never has a gradient, one whose gradient appears only every other step, and
  ``maximize``;
* ``state_dict`` round-trips: an optimizer rebuilt from a saved state (ours or torch's)
  continues exactly where the saved one would have;
* updating a group a few tensors at a time (cache-sized chunks) changes nothing: with a chunk
  limit so small that every tensor is its own chunk the trajectories are still torch's, and the
  chunks partition the tensors in order within the byte limit;
* torch's learning-rate schedulers drive them as they drive torch's optimizers;
* the default hyperparameters are torch's, and bad hyperparameters raise torch's exception type
  with a message naming the violated condition.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

import visarch.optim as vo
from visarch.optim import _base

TOL = {"rtol": 1e-9, "atol": 1e-12}
STEPS = 120


@st.composite
def sgd_kwargs(draw):
    momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
    nesterov = momentum > 0 and draw(st.booleans())
    return {"lr": draw(st.sampled_from([1e-3, 0.01, 0.05])), "momentum": momentum,
            "dampening": 0.0 if nesterov else draw(st.sampled_from([0.0, 0.3])),
            "weight_decay": draw(st.sampled_from([0.0, 1e-2])), "nesterov": nesterov}


@st.composite
def adagrad_kwargs(draw):
    return {"lr": draw(st.sampled_from([0.01, 0.1])), "lr_decay": draw(st.sampled_from([0.0, 1e-2])),
            "weight_decay": draw(st.sampled_from([0.0, 1e-2])),
            "initial_accumulator_value": draw(st.sampled_from([0.0, 0.1])), "eps": draw(st.sampled_from([1e-10, 1e-3]))}


@st.composite
def rmsprop_kwargs(draw):
    return {"lr": draw(st.sampled_from([1e-3, 0.01])), "alpha": draw(st.sampled_from([0.9, 0.99])),
            "eps": draw(st.sampled_from([1e-8, 1e-3])), "weight_decay": draw(st.sampled_from([0.0, 1e-2])),
            "momentum": draw(st.sampled_from([0.0, 0.5])), "centered": draw(st.booleans())}


@st.composite
def adam_kwargs(draw, adamw=False):
    kwargs = {"lr": draw(st.sampled_from([1e-3, 0.01, 0.05])),
              "betas": (draw(st.sampled_from([0.0, 0.8, 0.9])), draw(st.sampled_from([0.9, 0.999]))),
              "eps": draw(st.sampled_from([1e-8, 1e-4])), "weight_decay": draw(st.sampled_from([0.0, 0.05])),
              "amsgrad": draw(st.booleans())}
    if not adamw:
        kwargs["decoupled_weight_decay"] = draw(st.booleans())
    return kwargs


CASES = [
    pytest.param(vo.SGD, torch.optim.SGD, sgd_kwargs(), id="SGD"),
    pytest.param(vo.Adagrad, torch.optim.Adagrad, adagrad_kwargs(), id="Adagrad"),
    pytest.param(vo.RMSprop, torch.optim.RMSprop, rmsprop_kwargs(), id="RMSprop"),
    pytest.param(vo.Adam, torch.optim.Adam, adam_kwargs(), id="Adam"),
    pytest.param(vo.AdamW, torch.optim.AdamW, adam_kwargs(adamw=True), id="AdamW"),
]


class Problem:
    """A random smooth loss of four parameters; ``frozen`` never gets a gradient, ``sometimes`` on odd steps only."""

    def __init__(self, seed):
        gen = torch.Generator().manual_seed(seed)
        self.shapes = {"w": (4, 3), "b": (3,), "sometimes": (5,), "frozen": (2,)}
        self.start = {k: torch.randn(s, generator=gen, dtype=torch.float64) for k, s in self.shapes.items()}
        m = torch.randn(12, 12, generator=gen, dtype=torch.float64)
        self.a = m @ m.T / 12 + torch.eye(12, dtype=torch.float64)  # positive definite
        self.c = torch.randn(5, generator=gen, dtype=torch.float64)

    def params(self):
        return {k: v.clone().requires_grad_() for k, v in self.start.items()}

    def loss(self, p, step):
        z = torch.cat([p["w"].flatten(), p["b"] * p["b"].tanh()])  # [15] -> first 12 in the quadratic
        value = 0.5 * z[:12] @ self.a @ z[:12] + torch.log(torch.cosh(z[12:])).sum()
        if step % 2 == 1:  # first seen at step 1, after the others have state
            value = value + ((p["sometimes"] - self.c) ** 2).sum()
        return value


def groups(p, lr):
    """Two parameter groups, the second with a larger learning rate."""
    return [{"params": [p["w"], p["frozen"]]}, {"params": [p["b"], p["sometimes"]], "lr": lr * 2}]


def run(opt_cls, kwargs, problem, steps, maximize=False, start_state=None, params=None):
    params = problem.params() if params is None else params
    opt = opt_cls(groups(params, kwargs["lr"]), **kwargs, maximize=maximize)
    if start_state is not None:
        opt.load_state_dict(start_state)
    trajectory = []
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = problem.loss(params, step)
        (-loss if maximize else loss).backward()
        opt.step()
        trajectory.append({k: v.detach().clone() for k, v in params.items()})
    return trajectory, opt, params


@pytest.mark.parametrize("ours, theirs, kwargs_strategy", CASES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_same_trajectory_as_torch(ours, theirs, kwargs_strategy, data):
    kwargs = data.draw(kwargs_strategy, label="kwargs")
    maximize = data.draw(st.booleans(), label="maximize")
    problem = Problem(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    mine, _, _ = run(ours, kwargs, problem, STEPS, maximize)
    reference, _, _ = run(theirs, kwargs, problem, STEPS, maximize)
    for step, (got, want) in enumerate(zip(mine, reference, strict=True)):
        for name in got:
            assert_close(got[name], want[name], **TOL, msg=lambda m, s=step, n=name: f"step {s}, {n}: {m}")
    assert torch.equal(mine[-1]["frozen"], problem.start["frozen"])  # no gradient, never moved


@pytest.mark.parametrize("ours, theirs, kwargs_strategy", CASES)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_one_tensor_per_chunk_is_still_torchs_trajectory(ours, theirs, kwargs_strategy, data, monkeypatch):
    monkeypatch.setattr(_base, "CHUNK_BYTES", 1)  # every tensor alone (same for every example)
    assert [len(c) for c in _base.cache_sized_chunks([torch.zeros(2)] * 3)] == [1, 1, 1]
    kwargs = data.draw(kwargs_strategy, label="kwargs")
    problem = Problem(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    mine, _, _ = run(ours, kwargs, problem, 40)
    reference, _, _ = run(theirs, kwargs, problem, 40)
    for got, want in zip(mine, reference, strict=True):
        for name in got:
            assert_close(got[name], want[name], **TOL)


def test_chunks_partition_in_order_within_the_limit():
    tensors = [torch.zeros(n) for n in (3, 1, 10, 2, 2, 50, 1)]  # float32: 4 bytes an entry
    chunks = list(_base.cache_sized_chunks(tensors, limit=40))
    assert [i for c in chunks for i in c] == list(range(len(tensors)))
    for c in chunks:
        assert len(c) == 1 or sum(4 * tensors[i].numel() for i in c) <= 40
    assert chunks == [[0, 1], [2], [3, 4], [5], [6]]


@pytest.mark.parametrize("ours, theirs, kwargs_strategy", CASES)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_state_dict_round_trip(ours, theirs, kwargs_strategy, data):
    """Stop after 7 steps, rebuild from the saved state (ours, and torch's), run 9 more: same parameters."""
    kwargs = data.draw(kwargs_strategy, label="kwargs")
    problem = Problem(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    straight, _, _ = run(ours, kwargs, problem, 16)
    for cls in (ours, theirs):
        _, opt, params = run(cls, kwargs, problem, 7)
        saved = opt.state_dict()
        resumed = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
        continued = ours(groups(resumed, kwargs["lr"]), **kwargs)
        continued.load_state_dict(saved)
        for step in range(7, 16):
            continued.zero_grad(set_to_none=True)
            problem.loss(resumed, step).backward()
            continued.step()
        for name in resumed:
            assert_close(resumed[name].detach(), straight[-1][name], **TOL)


@pytest.mark.parametrize("ours, theirs", [(c.values[0], c.values[1]) for c in CASES])
def test_learning_rate_schedulers_drive_them_like_torch(ours, theirs):
    problem = Problem(3)
    results = []
    for cls in (ours, theirs):
        params = problem.params()
        opt = cls(groups(params, 0.01), lr=0.01)
        schedulers = [torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5),
                      torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1 / (1 + epoch))]
        lrs = []
        for step in range(20):
            opt.zero_grad()
            problem.loss(params, step).backward()
            opt.step()
            for scheduler in schedulers:
                scheduler.step()
            lrs.append([g["lr"] for g in opt.param_groups])
        results.append((lrs, {k: v.detach() for k, v in params.items()}))
    assert results[0][0] == results[1][0]
    for name in results[0][1]:
        assert_close(results[0][1][name], results[1][1][name], **TOL)


@pytest.mark.parametrize("ours, theirs", [(c.values[0], c.values[1]) for c in CASES])
def test_defaults_are_torchs(ours, theirs):
    mine, reference = inspect.signature(ours.__init__).parameters, inspect.signature(theirs.__init__).parameters
    for name, parameter in mine.items():
        if name in ("self", "params"):
            continue
        assert name in reference, f"{ours.__name__} has {name}, torch does not"
        assert parameter.default == reference[name].default, name


def p():
    return [torch.zeros(2, requires_grad=True)]


BAD = [
    ("sgd-lr", lambda: vo.SGD(p(), lr=-0.1), lambda: torch.optim.SGD(p(), lr=-0.1), r"SGD: lr must be >= 0, got -0.1"),
    ("sgd-momentum", lambda: vo.SGD(p(), momentum=-0.5), lambda: torch.optim.SGD(p(), momentum=-0.5),
     r"SGD: momentum must be >= 0, got -0.5"),
    ("sgd-wd", lambda: vo.SGD(p(), weight_decay=-1e-4), lambda: torch.optim.SGD(p(), weight_decay=-1e-4),
     r"SGD: weight_decay must be"),
    ("sgd-nesterov", lambda: vo.SGD(p(), nesterov=True), lambda: torch.optim.SGD(p(), nesterov=True),
     r"Nesterov momentum requires a momentum and zero dampening"),
    ("sgd-nesterov-dampening", lambda: vo.SGD(p(), momentum=0.9, dampening=0.1, nesterov=True),
     lambda: torch.optim.SGD(p(), momentum=0.9, dampening=0.1, nesterov=True), r"zero dampening"),
    ("adam-beta1", lambda: vo.Adam(p(), betas=(1.0, 0.999)), lambda: torch.optim.Adam(p(), betas=(1.0, 0.999)),
     r"Adam: betas\[0\] must be in \[0, 1\), got 1.0"),
    ("adam-beta2", lambda: vo.Adam(p(), betas=(0.9, -0.1)), lambda: torch.optim.Adam(p(), betas=(0.9, -0.1)),
     r"Adam: betas\[1\] must be in \[0, 1\), got -0.1"),
    ("adam-eps", lambda: vo.Adam(p(), eps=-1e-8), lambda: torch.optim.Adam(p(), eps=-1e-8), r"Adam: eps must be"),
    ("adamw-wd", lambda: vo.AdamW(p(), weight_decay=-0.01), lambda: torch.optim.AdamW(p(), weight_decay=-0.01),
     r"AdamW: weight_decay must be >= 0"),
    ("adamw-lr", lambda: vo.AdamW(p(), lr=-1.0), lambda: torch.optim.AdamW(p(), lr=-1.0), r"AdamW: lr must be"),
    ("rmsprop-alpha", lambda: vo.RMSprop(p(), alpha=-0.5), lambda: torch.optim.RMSprop(p(), alpha=-0.5),
     r"RMSprop: alpha must be >= 0, got -0.5"),
    ("rmsprop-eps", lambda: vo.RMSprop(p(), eps=-1.0), lambda: torch.optim.RMSprop(p(), eps=-1.0),
     r"RMSprop: eps must be"),
    ("adagrad-lr-decay", lambda: vo.Adagrad(p(), lr_decay=-1.0), lambda: torch.optim.Adagrad(p(), lr_decay=-1.0),
     r"Adagrad: lr_decay must be >= 0, got -1.0"),
    ("adagrad-accumulator", lambda: vo.Adagrad(p(), initial_accumulator_value=-1.0),
     lambda: torch.optim.Adagrad(p(), initial_accumulator_value=-1.0), r"Adagrad: initial_accumulator_value must be"),
]


@pytest.mark.parametrize("ours, theirs, match", [pytest.param(*c[1:], id=c[0]) for c in BAD])
def test_bad_hyperparameters_raise_where_torch_does(ours, theirs, match):
    with pytest.raises(ValueError, match=match):
        ours()
    with pytest.raises(ValueError):  # torch refuses them too, with the same exception type
        theirs()


@pytest.mark.parametrize("warmup, total", [(2, 10), (5, 40), (84, 2520)])
def test_warmup_cosine_is_torchs_linear_warmup_times_cosine_annealing(warmup, total):
    # torch chains its schedulers multiplicatively: LinearLR from 1/w to 1 over w - 1 steps, times CosineAnnealingLR
    def lr_sequence(make_schedulers):
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        scheduler = make_schedulers(optimizer)
        rates = []
        for _ in range(total + 1):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return torch.tensor(rates, dtype=torch.float64)

    ours = lr_sequence(lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, vo.warmup_cosine(warmup, total)))
    theirs = lr_sequence(lambda opt: torch.optim.lr_scheduler.ChainedScheduler([
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)]))
    assert_close(ours, theirs, rtol=1e-9, atol=1e-12)
    assert ours[-1] == 0 and vo.warmup_cosine(warmup, total)(total + 7) == 0  # zero from T on


def test_warmup_cosine_refuses_bad_lengths():
    with pytest.raises(ValueError, match="warmup must be >= 1, got 0"):
        vo.warmup_cosine(0, 10)
    with pytest.raises(TypeError, match="total must be an int, got float"):
        vo.warmup_cosine(2, 10.0)
