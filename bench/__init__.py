"""Benchmarks: the service measured against bare baselines, in the same run."""
