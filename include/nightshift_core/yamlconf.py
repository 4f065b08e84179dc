"""YAML definitions as pydantic models, with errors that name the file, the key, the value and the fix.

Each file kind is one :class:`ConfigModel`; :func:`parse` reads a file and validates it, turning
pydantic's ``ValidationError`` into the kind's own :class:`ConfigError` with one line per
problem: ``<file>: <key> ... <fix>``. A field says how its bad values are reported with
:class:`Fix` (for type and range errors); validators raise ``ValueError`` with the whole message,
``{key}`` standing for the key path where they run (e.g. ``sections[0] (customers).limit``).
The same models generate the JSON Schemas under ``include/config/schemas/``.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from nightshift_core.errors import PermanentError
from nightshift_core.warehouse.types import check_identifier

T = TypeVar("T")
M = TypeVar("M", bound="ConfigModel")
_DAG_ID = re.compile(r"[A-Za-z0-9_.-]{1,200}")
#: ``check_identifier``'s rule, for the JSON Schemas.
IDENT_PATTERN = "^[A-Za-z_][A-Za-z0-9_]{0,127}$"
_TYPE_TAGS = {"str", "int", "float", "bool", "none", "list", "tuple", "dict", "datetime", "date"}
#: The YAML definitions (include/config) and the queries they name (include/sql).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
SQL_DIR = Path(__file__).resolve().parents[1] / "sql"


class ConfigError(ValueError, PermanentError):
    """A bad definition: one line per problem, each naming the file, the key and the fix.

    Each file kind raises its own subclass (``SyncConfigError``, ``ReportConfigError``, ...).
    """


@dataclass(frozen=True)
class Fix:
    """How a refused value of this field is reported; ``{key}`` and ``{value}`` are filled in."""

    message: str


class ConfigModel(BaseModel):
    """A mapping of a YAML definition: unknown keys refused (naming the allowed ones), values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: How the unknown-key message names this mapping when it is the file's top level.
    top_level: ClassVar[str] = " in the top level"
    #: Fields computed while loading (the file's path, values derived from others): not YAML keys.
    derived: ClassVar[frozenset[str]] = frozenset()
    #: Items of a list of these are named by their ``name`` in messages: ``tables[0] (orders).cursor``.
    labelled: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if data is None:
            data = {}  # an empty section (``drift:``) takes every default
        if not isinstance(data, dict):
            raise ValueError("{key} must be a mapping")
        allowed = keys_of(cls)
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown key(s) {sorted(unknown)}{{where}}; allowed: {sorted(allowed)}")
        return cls.prepare(dict(data), info)

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        """The mapping before its fields are validated: defaults that depend on other keys or the file."""
        return data


class FileModel(ConfigModel):
    """The top level of a file; ``path`` is the file it was read from."""

    derived: ClassVar[frozenset[str]] = frozenset({"path"})

    path: SkipJsonSchema[Path] = Path()

    @classmethod
    def prepare(cls, data: dict, info: ValidationInfo) -> dict:
        data["path"] = file_path(info)
        return data


def keys_of(model: type[BaseModel]) -> set[str]:
    """The YAML keys of ``model``."""
    derived = getattr(model, "derived", frozenset())
    return {(f.alias or name) for name, f in model.model_fields.items() if name not in derived}


# -- field types shared by the file kinds ----------------------------------------------------------


def number(low: float, high: float, description: str, *, whole: bool = False, fix: str = "") -> Any:
    """A number (``whole``: a whole one) in [low, high]; a bad one names the range."""
    what = "a whole number" if whole else "a number"
    return Annotated[
        StrictInt if whole else StrictFloat,
        Field(ge=low, le=high, description=description),
        Fix(fix or f"{{key}} must be {what} from {low:g} to {high:g}, got {{value}}"),
    ]


def ident(what: str, description: str) -> Any:
    """An identifier (dataset, table, column) checked by ``check_identifier``; the error names the key."""

    return Annotated[
        str,
        BeforeValidator(lambda value: identifier(value, what)),
        Field(description=description, json_schema_extra={"pattern": IDENT_PATTERN}),
    ]


def column_names(value: Any) -> tuple[str, ...]:
    """A column name or a list of them, each checked as an identifier."""
    value = [value] if isinstance(value, str) else (value or [])
    if not isinstance(value, list | tuple):
        raise ValueError("{key} must be a column name or a list of column names")
    return tuple(identifier(c, "column name") for c in value)


def identifier(value: Any, what: str, key: str = "{key}") -> str:
    """``value`` checked by ``check_identifier``; its error starts with ``key`` (the key path by default)."""
    try:
        return check_identifier(value, what)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


COLUMN_SCHEMA = {"type": "string", "pattern": IDENT_PATTERN}
Columns = Annotated[
    tuple[str, ...],
    BeforeValidator(column_names),
    WithJsonSchema({"anyOf": [COLUMN_SCHEMA, {"type": "array", "items": COLUMN_SCHEMA}]}),
]


def text(description: str, fix: str = "{key} must be a non-empty string") -> Any:
    """A non-empty string."""
    return Annotated[StrictStr, Field(min_length=1, description=description), Fix(fix)]


def sql_file(sql: str, sql_dir: Path) -> str:
    """``sql``: a file under ``sql_dir`` (include/sql) named by a path relative to it.

    Absolute paths, '..' and symlinks leading out of the folder are refused: the path is
    checked after resolving, as the file would be opened.
    """
    inside = not Path(sql).is_absolute() and ".." not in Path(sql).parts
    if not inside or not (sql_dir / sql).resolve().is_relative_to(sql_dir.resolve()):
        raise ValueError(
            f"{{key}} is {sql!r}, which leads out of include/sql: give a path relative to "
            "include/sql without '..' (e.g. reporting/daily_sales.sql) and no symlink leading out"
        )
    if not (sql_dir / sql).is_file():
        raise ValueError(f"{{key}}: include/sql/{sql} does not exist; add it or fix the path")
    return sql


def _dag_id(value: Any) -> Any:
    if not isinstance(value, str) or not _DAG_ID.fullmatch(value):
        raise ValueError(f"dag_id {value!r} must use letters, digits, '_', '.', '-'")
    return value


def _start_date(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ValueError(f"start_date: use a date like 2026-01-01, got {value!r}")


DagId = Annotated[
    str,
    BeforeValidator(_dag_id),
    Field(description="The DAG's id", json_schema_extra={"pattern": "^[A-Za-z0-9_.-]{1,200}$"}),
]
Schedule = Annotated[
    StrictStr | None,
    Field(description="A cron string, a preset such as '@daily', or null (runs only when triggered)"),
    Fix("schedule: use a cron string, a preset like '@daily', or null"),
]
StartDate = Annotated[
    datetime,
    BeforeValidator(_start_date),
    Field(datetime(2026, 1, 1, tzinfo=UTC)),  # the default of every kind
    WithJsonSchema(
        {
            "type": "string",
            "format": "date",
            "description": "First data interval, a date like 2026-01-01 (UTC)",
        }
    ),
]
Tags = Annotated[
    tuple[StrictStr, ...],
    Field(description="DAG tags shown in the UI"),
    Fix("tags must be a list of strings"),
]
Flag = Annotated[StrictBool, Fix("{key} must be true or false")]
Catchup = Annotated[Flag, Field(False, description="Run the intervals since start_date that never ran")]
PositiveInt = Annotated[StrictInt, Field(ge=1)]

# -- reading a file --------------------------------------------------------------------------------


def read_mapping(path: Path, error: type[ConfigError]) -> dict:
    """The top-level mapping of a YAML file, or ``error`` naming the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise error(f"{path}: file not found; create it (see include/config/{path.name})") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return raw


def parse(model: type[M], path: Path, error: type[ConfigError]) -> M:
    """``path`` validated as ``model``; every problem, one line each, in one ``error``."""
    raw = read_mapping(path, error)
    try:
        return model.model_validate(raw, context={"path": path})
    except ValidationError as exc:
        problems = list(dict.fromkeys(_message(model, raw, e) for e in exc.errors()))
        raise error("\n".join(f"{path}: {p}" for p in problems)) from None


def load_folder(
    directory: Path, load: Callable[[Path], T], error: type[ConfigError], *, id_key: str, what: str
) -> list[T]:
    """Every ``*.yaml`` in ``directory`` loaded by ``load``; all problems of all files in one error.

    Two definitions with the same ``id_key`` attribute are a problem too, naming both files.
    """
    configs, problems = [], []
    for path in sorted(directory.glob("*.yaml")):
        try:
            configs.append(load(path))
        except error as exc:
            problems.append(str(exc))
    seen: dict[str, Path] = {}
    for config in configs:
        ident_, path = getattr(config, id_key), config.path
        if ident_ in seen:
            problems.append(
                f"{path}: {id_key} {ident_!r} is also used by {seen[ident_]}; give one of them another '{id_key}'"
            )
        seen[ident_] = path
    if problems:
        raise error(f"invalid {what} definition(s):\n- " + "\n- ".join(problems))
    return configs


def file_path(info: ValidationInfo) -> Path:
    """The file being validated (``parse`` passes it in the context)."""
    return (info.context or {}).get("path") or Path("definition.yaml")


# -- pydantic's errors in the project's words ------------------------------------------------------


def _message(model: type[BaseModel], raw: Any, error: Any) -> str:
    loc = error["loc"]
    if error["type"] in ("value_error", "assertion_error"):
        message = str(error["ctx"]["error"])
        key, _, _ = _walk(model, raw, loc)
        where = f" in {key}" if key else model.top_level  # type: ignore[attr-defined]
        return message.replace("{key}", key).replace("{where}", where)
    key, value, fix = _walk(model, raw, loc)
    if fix is not None:
        fix_key, fix_value = fix[1], fix[2]
        return fix[0].message.replace("{key}", fix_key).replace("{value}", repr(fix_value))
    if error["type"] == "missing":
        return f"{key} is missing"
    return f"{key} is {value!r}: {error['msg'][0].lower()}{error['msg'][1:]}"


def _walk(model: Any, raw: Any, loc: tuple) -> tuple[str, Any, tuple[Fix, str, Any] | None]:
    """Key path (``sections[0] (customers).limit``), raw value and the deepest :class:`Fix` at ``loc``."""
    key, node, fix = "", raw, None
    for part in loc:
        if isinstance(part, int) and isinstance(node, list | tuple):
            node = node[part] if part < len(node) else None
            key += f"[{part}]"
            if (
                getattr(model, "labelled", True)
                and isinstance(node, dict)
                and isinstance(node.get("name"), str)
            ):
                key += f" ({node['name']})"
            continue
        if (
            not isinstance(part, str)
            or (part in _TYPE_TAGS or "[" in part)
            and not (isinstance(node, dict) and part in node)
        ):
            continue  # a union member's tag, not a key
        node = node.get(part) if isinstance(node, dict) else None
        key = f"{key}.{part}" if key else part
        field = _field(model, part)
        model = _inner_model(field.annotation) if field is not None else None
        marks = [m for m in (field.metadata if field is not None else []) if isinstance(m, Fix)]
        if marks:
            fix = (marks[0], key, node)
    return key, node, fix


def _field(model: Any, name: str) -> Any:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    for field_name, field in model.model_fields.items():
        if name in (field_name, field.alias):
            return field
    return None


def _inner_model(annotation: Any) -> Any:
    """The model a field's values are validated as (through Optional, tuple[...], dict[...])."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _inner_model(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, tuple, list, dict):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None
