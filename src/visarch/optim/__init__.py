"""Optimizers with the constructor arguments, defaults and state of ``torch.optim`` (Optimizers chapter).

Each is a ``torch.optim.Optimizer`` subclass, so ``zero_grad``, ``state_dict``,
``load_state_dict`` and torch's learning-rate schedulers work unchanged; the updates run with
``torch._foreach_*`` operations on a few MiB of a group's parameters at a time (so that each
pass finds them in cache).  ``Newton`` (full
Hessian, small problems only) and ``minibatch_sgd`` (the notes' epoch loop) complete the chapter, and
``landscapes`` has the test functions (quadratics, Rosenbrock) and the path an optimizer takes on one;
``schedules`` has the warm-up-and-cosine learning-rate schedule.
"""

from visarch.optim.adagrad import Adagrad
from visarch.optim.adam import Adam, AdamW
from visarch.optim.landscapes import Quadratic, gradient, rosenbrock, trajectory
from visarch.optim.minibatch import minibatch_sgd
from visarch.optim.newton import Newton, hessian
from visarch.optim.rmsprop import RMSprop
from visarch.optim.schedules import warmup_cosine
from visarch.optim.sgd import SGD

__all__ = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Newton", "hessian", "minibatch_sgd", "Quadratic",
           "gradient", "rosenbrock", "trajectory", "warmup_cosine"]
