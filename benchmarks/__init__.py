"""Benchmarks of the engine against peers (not part of the test run; no test asserts a time).

Run one with ``python -m benchmarks.<name>``; see ``benchmarks/README.md``.
"""
