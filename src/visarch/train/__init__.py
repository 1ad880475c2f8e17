"""Training: a small, seeded loop on in-memory tensors, its command line, and the curve it draws.

* :mod:`visarch.train.loop`: :func:`~visarch.train.loop.fit`, which runs any loss over shuffled
  mini-batches (seeded, on the GPU when one is present, data-parallel under ``torchrun``, in bfloat16
  on request, checkpointed and resumable exactly), :func:`~visarch.train.loop.train_classifier`
  (cross-entropy and SGD), :func:`~visarch.train.loop.accuracy` and the
  :class:`~visarch.train.loop.History` a notebook plots;
* :mod:`visarch.train.cli`: :func:`~visarch.train.cli.main`, the command line
  ``python -m visarch.train --model NAME --data digits|cifar10 ...``;
* :mod:`visarch.train.curve`: :func:`~visarch.train.curve.training_curve`, the figure the command line
  saves.

What a checkpoint holds and how random state is captured and restored is
:mod:`visarch.checkpoint`'s; the loop uses it.  The names below are importable from ``visarch.train``.
"""

from visarch.train.cli import main
from visarch.train.loop import History, accuracy, default_device, fit, train_classifier

__all__ = ["History", "accuracy", "default_device", "fit", "main", "train_classifier"]
