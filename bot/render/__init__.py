"""Renderers: typed results in, text out. One module per result type."""
