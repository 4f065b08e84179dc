"""Nightshift's Airflow building blocks: hooks, operators and notifiers."""
