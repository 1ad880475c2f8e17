"""The training curve of a run: its loss and test accuracy after each epoch, side by side.

The command line (:mod:`visarch.train.cli`) saves this figure as ``curve.png``.  Each panel is
:func:`visarch.plot.loss_curves`, the book's one way of drawing a quantity against the step or
epoch; this module only lays the two out and numbers the epochs from 1, as ``metrics.jsonl`` does.
"""

from __future__ import annotations

__all__ = ["training_curve"]


def training_curve(history, *, title=None):
    """The training loss (log scale) and the test accuracy (0 to 1) of ``history`` against the epoch.

    Args:
        history: a :class:`~visarch.train.loop.History` whose ``metrics`` hold ``"test_accuracy"``, one
            value per epoch (what the command line records).
        title: the figure's title, or ``None``.

    Returns:
        A ``matplotlib.figure.Figure`` of two panels, made without ``pyplot`` (no backend is switched and
        no window opens); ``figure.savefig(path)`` writes it.
    """
    if "test_accuracy" not in history.metrics:
        raise ValueError(f"history.metrics must hold 'test_accuracy', got {sorted(history.metrics) or 'none'}")
    if not history.loss:
        raise ValueError("history holds no epoch to draw")
    from matplotlib.figure import Figure  # Agg, without pyplot
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    from visarch.plot import loss_curves

    fig = Figure(figsize=(8, 3.2))
    loss_ax, accuracy_ax = fig.subplots(1, 2)
    loss_curves({"training loss": history.loss}, xlabel="epoch", ylabel="training loss", ax=loss_ax)
    loss_curves({"test accuracy": history.metrics["test_accuracy"]}, xlabel="epoch", ylabel="test accuracy",
                log=False, ax=accuracy_ax)
    accuracy_ax.set_ylim(0, 1)
    for ax in (loss_ax, accuracy_ax):
        ax.lines[0].set_marker("o")  # a run of few epochs: every epoch is a point
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x + 1:g}"))  # loss_curves puts epoch 1 at 0
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
