"""Root pytest configuration, shared by the unit tests and the notebooks.

Hypothesis runs derandomised, so every run (and every machine) sees the same
examples; nbval gets the sanitize file that masks what legitimately varies
between runs of a notebook.
"""

from pathlib import Path

from hypothesis import settings

ROOT = Path(__file__).resolve().parent

settings.register_profile("book", derandomize=True, deadline=None, database=None, print_blob=True)
settings.load_profile("book")


def pytest_configure(config):
    # nbval resolves the sanitize file from the working directory, so pass an absolute path.
    if getattr(config.option, "nbval_sanitize_with", "unset") is None:
        config.option.nbval_sanitize_with = str(ROOT / "tests" / "nbval_sanitize.cfg")
