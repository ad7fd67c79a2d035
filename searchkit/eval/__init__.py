"""Metrics, evaluation on a split, efSearch calibration, the search-log report."""
