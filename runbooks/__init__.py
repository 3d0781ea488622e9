"""Runbooks: ordered steps over probes and queries that end in a diagnosis."""
