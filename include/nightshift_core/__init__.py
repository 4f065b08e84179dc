"""Nightshift's pure logic: no Airflow imports here (enforced by tests/test_layers.py)."""
