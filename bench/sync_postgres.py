"""Sync throughput on a generated classicmodels `orderdetails` table in PostgreSQL.

    .venv/bin/python bench/sync_postgres.py [--rows 2000000 500000] [--bigquery]

The same phases as bench/sync_mariadb.py (bench/sync_common.py), with psycopg2's server-side cursor
as the floor. Needs PostgreSQL on 127.0.0.1:5432 (postgres, trust). Not a test.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync_common import POSTGRES, main  # noqa: E402

if __name__ == "__main__":
    main(POSTGRES, __file__)
