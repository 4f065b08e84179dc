"""The JSON Schemas of the YAML definitions: equal to what the models generate, named by each YAML."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from nightshift_core.config_schemas import KINDS, SCHEMA_DIR, files, modeline, text


@pytest.mark.parametrize("kind", KINDS)
def test_committed_schema_is_the_models(kind):
    path = SCHEMA_DIR / f"{kind}.schema.json"
    assert path.is_file(), f"include/config/schemas/{path.name} is missing; run `make schemas`"
    assert path.read_text() == text(kind), f"include/config/schemas/{path.name} is stale; run `make schemas`"


@pytest.mark.parametrize("kind", KINDS)
def test_every_definition_names_its_schema_and_validates_against_it(kind):
    validator = jsonschema.Draft202012Validator(json.loads(text(kind)))
    assert files(kind), f"no {kind} definitions found"
    for path in files(kind):
        first = path.read_text().splitlines()[0]
        assert first == modeline(path, kind), f"{path.name}: make the first line {modeline(path, kind)!r}"
        # As an editor sees it: dates are strings.
        data = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
        problems = [
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)
        ]
        assert problems == [], f"{path.name}: {problems}"


@pytest.mark.parametrize("kind", KINDS)
def test_the_schema_refuses_an_unknown_key(kind):
    """An editor flags a typo at the top level, as loading does."""
    validator = jsonschema.Draft202012Validator(json.loads(text(kind)))
    data = json.loads(json.dumps(yaml.safe_load(files(kind)[0].read_text()), default=str))
    assert not validator.is_valid({**data, "colour": "red"})


def test_sync_init_writes_the_modeline():
    """`nightshift sync init` writes into include/config/syncs/ by default: its file names the schema too."""
    from nightshift_core.config_schemas import CONFIG_DIR
    from nightshift_core.sync.discover.plan import HEADER

    assert HEADER.splitlines()[0] == modeline(CONFIG_DIR / "syncs" / "shop.yaml", "sync")
