"""retailflow benchmarks: each figure is measured against a bare-Temporal (or bare-parse) baseline in the same
run on the same machine, and `python -m bench --report docs/benchmarks.md` writes the report."""
