"""Declarative Cloud SQL -> warehouse syncs: config, source dialects, extraction."""
