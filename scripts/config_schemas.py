"""Write (or, with --check, compare) include/config/schemas/*.schema.json from the config models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

from nightshift_core.config_schemas import KINDS, SCHEMA_DIR, text  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="fail if a committed schema differs from its model"
    )
    args = parser.parse_args()
    stale = []
    SCHEMA_DIR.mkdir(exist_ok=True)
    for kind in KINDS:
        path = SCHEMA_DIR / f"{kind}.schema.json"
        wanted = text(kind)
        if path.exists() and path.read_text() == wanted:
            continue
        if args.check:
            stale.append(path.name)
        else:
            path.write_text(wanted)
            print(f"wrote include/config/schemas/{path.name}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run `make schemas`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
