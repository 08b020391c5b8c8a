"""Widgets of the wizard (Textual): step indicator, memory bar, Pareto chart, mode cards, preview."""
