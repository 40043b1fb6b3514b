"""Benchmarks: basin side by side with runc, crun, podman and a bare `unshare`.

Run with `python -m bench [--count N] [--quick] [--only SCENARIO...] [--out DIR]`.
"""
