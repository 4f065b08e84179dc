"""Seeded sample databases for integration tests and benchmarks of the sync pipelines."""
