"""Reporting: run results, Pareto metrics, statistics, Markdown reports and figures."""
