"""MPR benchmarks: `make bench` (or `uv run python -m bench`) writes docs/benchmarks.md."""
