"""Scorers for ECG-language benchmarks (no model imports)."""
