"""Measurement and device checks (``tools/analysis_tools/`` are their command lines)."""
