"""Experiment scripts and the ``spectral-jax`` command line.

Each experiment is one module with a frozen ``Config`` dataclass and a
``run(config, out_dir) -> dict`` function. The library (``spectral_jax``) never
imports this package.
"""
