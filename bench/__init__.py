"""Benchmarks: ``python -m bench store`` (and more to come). They print figures; they assert nothing."""
