"""Benchmarks of the from-scratch operations in ``visarch`` against PyTorch.

Run one with ``python -m benchmarks NAME [options]``; ``python -m benchmarks`` lists them.
Each benchmark is a module of this package with a ``main(argv)`` function.
"""
