"""JSON Schemas of the YAML definitions, generated from their pydantic models.

``include/config/schemas/<kind>.schema.json`` is what an editor with the YAML language server
uses to validate and complete a definition while it is typed: each YAML under
``include/config/`` names its schema in a first-line modeline
(``# yaml-language-server: $schema=../schemas/sync.schema.json``). The files are written by
``make schemas`` (``scripts/config_schemas.py``); a test keeps them equal to the models.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from nightshift_core.yamlconf import CONFIG_DIR

SCHEMA_DIR = CONFIG_DIR / "schemas"
#: kind -> (model, the YAML files of that kind relative to include/config)
KINDS: dict[str, tuple[str, str]] = {
    "sync": ("nightshift_core.sync.config:SyncConfig", "syncs/**/*.yaml"),
    "report": ("nightshift_core.reports.config:ReportConfig", "reports/*.yaml"),
    "reddit": ("nightshift_core.reddit.config:RedditConfig", "reddit.yaml"),
    "retrain": ("nightshift_core.ml.config:RetrainConfig", "retrain.yaml"),
    "labelling": ("nightshift_core.ml.labelling:LabellingConfig", "labelling.yaml"),
}


def model(kind: str) -> type:
    module, name = KINDS[kind][0].split(":")
    return getattr(importlib.import_module(module), name)


def schema(kind: str) -> dict:
    """The JSON Schema of ``kind``'s files, as the model generates it."""
    generated = model(kind).model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{kind}.schema.json",
        **generated,
    }


def text(kind: str) -> str:
    return json.dumps(schema(kind), indent=2, sort_keys=False) + "\n"


def files(kind: str) -> list[Path]:
    """The shipped YAML files of ``kind``."""
    return sorted(CONFIG_DIR.glob(KINDS[kind][1]))


def modeline(path: Path, kind: str) -> str:
    """The first line ``path`` needs so the YAML language server uses ``kind``'s schema."""
    relative = Path(
        *[".."] * len(path.parent.relative_to(CONFIG_DIR).parts), "schemas", f"{kind}.schema.json"
    )
    return f"# yaml-language-server: $schema={relative.as_posix()}"
