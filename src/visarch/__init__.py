"""visarch: the package behind the executable textbook *Vision Architectures*.

Each chapter of the book imports from here: ``visarch.functional`` holds the
from-scratch operations, ``visarch.plot`` the figures the chapters share.
"""

__version__ = "0.1.0"
