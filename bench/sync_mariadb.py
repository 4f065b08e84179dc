"""Sync throughput on a generated classicmodels `orderdetails` table in MariaDB.

    .venv/bin/python bench/sync_mariadb.py [--rows 2000000 500000] [--bigquery]

Phases and how to add the dlt ones: bench/sync_common.py. Needs MariaDB on 127.0.0.1:3306 (root, no
password). Not a test: nothing passes or fails here.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync_common import MARIADB, main  # noqa: E402

if __name__ == "__main__":
    main(MARIADB, __file__)
