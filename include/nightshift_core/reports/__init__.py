"""Report shaping: safe cell values, Excel workbooks, e-mail summaries (no Airflow imports)."""
