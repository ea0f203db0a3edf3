"""Small example environments used by the tutorial, tests and benchmarks."""
