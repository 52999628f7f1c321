"""Benchmarks behind `depth-node bench`: inference latency per backend/precision (this package's `inference`),
with room for node-level and training benchmarks as sibling modules that share `timing` and `machine`."""
