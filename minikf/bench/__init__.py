"""Benchmarks: the journey's training harness against a bare PyTorch loop."""
