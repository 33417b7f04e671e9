"""Performance suite: every figure a ratio or paired measurement taken in one run (`make bench`).

`python -m benchmarks` runs all sections and writes reports/benchmarks.{json,md}; each section
also runs alone (`python -m benchmarks.generate`, ...). See benchmarks/suite.py.
"""
