"""Benchmarks: `make bench` prints one JSON object of figures named as the issues name them."""
