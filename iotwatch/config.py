"""Typed, strict configuration: YAML in, frozen models out, every error named by key path.

Rules every service file follows:

- Unknown keys, wrong types and out-of-range values are errors that name the key path,
  e.g. ``detector.detectors.hst.window_size: must be >= 1, got 0``.
- Environment variables override any key: ``IOTWATCH__`` then the key path in upper
  case with ``__`` between levels; the value is read as a YAML scalar or flow list.
  ``IOTWATCH__MQTT__PORT=1884`` sets ``mqtt.port``.
- Secrets (keys named ``password``, ``token``, ``secret``) never come from the YAML:
  set them through the environment (``IOTWATCH__MQTT__PASSWORD``) or point
  ``<key>_file`` at a file holding the value (``mqtt.password_file: /run/secrets/mqtt``).

>>> from pydantic import Field
>>> class Sample(StrictModel):
...     window_size: int = Field(default=8, ge=1)
>>> errors_of(Sample, {"window_size": 0})
['window_size: must be >= 1, got 0']
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from iotwatch import IotwatchError
from iotwatch.topics import SEGMENT  # re-exported: topic levels, one definition

ENV_PREFIX = "IOTWATCH__"
MAX_DEPTH = 50  # levels of nesting a configuration may have
SECRET_KEYS = frozenset({"password", "token", "secret"})

M = TypeVar("M", bound=BaseModel)


class ConfigError(IotwatchError):
    """Configuration that cannot be used; ``errors`` holds one ``key.path: message`` each."""

    def __init__(self, errors: list[str], source: str = "") -> None:
        self.errors = errors
        self.source = source
        super().__init__("\n".join(in_source(e, source) for e in errors))


def in_source(error: str, source: str) -> str:
    """``source: error``, unless the error is an environment variable's (it names itself).

    >>> in_source("mqtt.port: expected an integer", "config/detector.yaml")
    'config/detector.yaml: mqtt.port: expected an integer'
    >>> in_source("IOTWATCH__MQTT__PORT (environment, sets mqtt.port): bad", "x.yaml")
    'IOTWATCH__MQTT__PORT (environment, sets mqtt.port): bad'
    """
    return error if not source or error.startswith(ENV_PREFIX) else f"{source}: {error}"


class StrictModel(BaseModel):
    """Base of every configuration model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# ---------------------------------------------------------------------------
# Sections shared by the services
# ---------------------------------------------------------------------------


class TlsSettings(StrictModel):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify: bool = True


class MqttSettings(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    topic_prefix: str = "iotwatch"
    qos: Literal[0, 1] = 1
    max_inflight: int = Field(default=1000, ge=1, le=65535)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    tls: TlsSettings | None = None

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_levels(cls, value: str) -> str:
        if not value or any(not SEGMENT.match(level) for level in value.split("/")):
            raise ValueError(f"must be topic levels of [A-Za-z0-9_.-] joined by '/', got {value!r}")
        return value


class InfluxSettings(StrictModel):
    enabled: bool = True
    api: Literal["v1", "v2"] = "v1"
    url: str = "http://127.0.0.1:8086"
    # v1 API (InfluxDB 1.x)
    database: str = "iotwatch"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    # v2 API (InfluxDB 2.x, 3.x, Cloud, VictoriaMetrics)
    org: str = "iotwatch"
    bucket: str = "iotwatch"
    token: SecretStr | None = None
    measurement: str = "readings"
    alert_measurement: str = "alerts"
    # Unit of the timestamps written: us keeps readings of one stream a fraction of a
    # millisecond apart as separate points (at ms the later one would overwrite the first).
    precision: Literal["ms", "us", "ns"] = "us"
    batch_size: int = Field(default=5000, ge=1, le=100_000)
    flush_interval_s: float = Field(default=1.0, gt=0, le=60)
    timeout_s: float = Field(default=10.0, gt=0)
    gzip: bool = True
    verify_tls: bool = True


class HttpSettings(StrictModel):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)


class LogSettings(StrictModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

# Which model validates a file is chosen by its service section; the core imports
# no service until a file asks for it.
SERVICE_FILE_MODELS: dict[str, str] = {
    "publisher": "publisher.config:PublisherFile",
    "detector": "detector.config:DetectorFile",
    "alerting": "alerting.config:AlertingFile",
}


def load_config(path: str | os.PathLike[str], model: type[M] | None = None,
                environ: Mapping[str, str] | None = None) -> M:
    """Read ``path``, apply environment overrides and secrets, validate into ``model``.

    With no ``model`` the file's service section picks it (see SERVICE_FILE_MODELS).
    Raises ConfigError listing every problem.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"cannot read file: {exc.strerror}"], source) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text: {exc}"], source) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], source) from exc
    except RecursionError:
        raise ConfigError([f"not usable YAML: nested more than {MAX_DEPTH} levels deep"],
                          source) from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError([f"top level must be a mapping of sections, got {type(raw).__name__}"],
                          source)
    base_dir = Path(path).resolve().parent
    return build_config(raw, model, environ=os.environ if environ is None else environ,
                        source=source, base_dir=base_dir)


def build_config(raw: dict[str, Any], model: type[M] | None = None, *,
                 environ: Mapping[str, str] | None = None, source: str = "",
                 base_dir: Path | None = None) -> M:
    """Validate an already-parsed mapping the way ``load_config`` validates a file."""
    shape = _shape_problem(raw)
    if shape is not None:
        raise ConfigError([shape], source)
    errors = list(_literal_secret_errors(raw, ()))
    data, overridden = _apply_env_overrides(raw, environ or {})
    errors += _resolve_secret_files(data, (), base_dir or Path.cwd())
    if model is None:
        try:
            model = model_for(data)
        except ConfigError as exc:
            raise ConfigError(errors + exc.errors, source) from None
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        errors += [_blame_environment(e, overridden) for e in format_validation_errors(exc, model)]
    if errors:
        raise ConfigError(errors, source)
    return validated


def _blame_environment(error: str, overridden: dict[tuple[str, ...], str]) -> str:
    """An error about a key an environment variable set names the variable, not the file.

    >>> _blame_environment("mqtt.port: expected an integer, got 'abc'",
    ...                    {("mqtt", "port"): "IOTWATCH__MQTT__PORT"})
    "IOTWATCH__MQTT__PORT (environment, sets mqtt.port): expected an integer, got 'abc'"
    """
    dotted, sep, message = error.partition(": ")
    if not sep or not overridden:
        return error
    keys = tuple(dotted.split("."))
    for length in range(len(keys), 0, -1):  # the variable that set this key or a parent
        name = overridden.get(keys[:length])
        if name is not None:
            return f"{name} (environment, sets {dotted}): {message}"
    for path, name in overridden.items():  # ... or a child of it (a mapping where a value goes)
        if path[:len(keys)] == keys:
            return f"{name} (environment, sets {'.'.join(path)}): {dotted}: {message}"
    return error
def _shape_problem(raw: Any) -> str | None:
    """What makes ``raw`` unusable before any recursion over it: a YAML alias that
    contains itself (``a: &x [*x]``) or nesting beyond ``MAX_DEPTH``.

    >>> loop = []; loop.append(loop)
    >>> _shape_problem({"detector": {"input": loop}})
    'detector.input.0: a YAML alias refers to a value that contains it'
    """
    stack: list[tuple[Any, tuple[str, ...], frozenset[int]]] = [(raw, (), frozenset())]
    while stack:
        node, path, inside = stack.pop()
        if not isinstance(node, dict | list):
            continue
        if id(node) in inside:
            return f"{'.'.join(path)}: a YAML alias refers to a value that contains it"
        if len(path) > MAX_DEPTH:
            return f"{'.'.join(path[:5])}...: nested more than {MAX_DEPTH} levels deep"
        children = node.items() if isinstance(node, dict) else enumerate(node)
        within = inside | {id(node)}
        stack.extend((value, (*path, str(key)), within) for key, value in children)
    return None


def model_for(data: Mapping[str, Any]) -> type[BaseModel]:
    """The file model for a mapping, chosen by which service section it has."""
    services = [name for name in SERVICE_FILE_MODELS if name in data]
    if len(services) != 1:
        expected = ", ".join(SERVICE_FILE_MODELS)
        found = ", ".join(services) or "none"
        raise ConfigError([f"(top level): expected exactly one service section ({expected}), "
                           f"found {found}"])
    module_name, attr = SERVICE_FILE_MODELS[services[0]].split(":")
    return getattr(importlib.import_module(module_name), attr)


def errors_of(model: type[BaseModel], data: dict[str, Any]) -> list[str]:
    """Validation errors of ``data`` against ``model`` as ``key.path: message`` lines."""
    try:
        build_config(data, model, environ={})
    except ConfigError as exc:
        return exc.errors
    return []


def check_files(paths: list[str]) -> list[str]:
    """Validate each file; return ``FILE: key.path: message`` lines (empty when all valid)."""
    lines: list[str] = []
    for path in paths:
        try:
            load_config(path)
        except ConfigError as exc:
            lines += [in_source(error, path) for error in exc.errors]
    return lines


def _apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]
                         ) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The data with the overrides applied, and which variable set which key path."""
    data = _deep_copy(raw)
    overridden: dict[tuple[str, ...], str] = {}
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX):].split("__") if k]
        if not keys:
            continue
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        leaf = keys[-1]
        node[leaf] = text if leaf in SECRET_KEYS else _yaml_scalar(text)
        overridden[tuple(keys)] = name
    return data, overridden


def _yaml_scalar(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _literal_secret_errors(node: Any, path: tuple[str, ...]):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in SECRET_KEYS and value not in (None, ""):
                dotted = ".".join((*path, key))
                env = ENV_PREFIX + "__".join(p.upper() for p in (*path, key))
                yield (f"{dotted}: secrets must not be written in the YAML; set {env} "
                       f"or {dotted}_file")
            else:
                yield from _literal_secret_errors(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _literal_secret_errors(item, (*path, str(index)))


def _resolve_secret_files(node: Any, path: tuple[str, ...], base_dir: Path) -> list[str]:
    errors: list[str] = []
    if isinstance(node, dict):
        for key in list(node):
            if isinstance(key, str) and key.endswith("_file") and key[:-5] in SECRET_KEYS:
                secret_path = node.pop(key)
                if secret_path is None:
                    continue
                file = Path(str(secret_path))
                file = file if file.is_absolute() else base_dir / file
                try:
                    node[key[:-5]] = file.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    dotted = ".".join((*path, key))
                    errors.append(f"{dotted}: cannot read secret file {file}: {exc.strerror}")
            else:
                errors += _resolve_secret_files(node[key], (*path, str(key)), base_dir)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            errors += _resolve_secret_files(item, (*path, str(index)), base_dir)
    return errors


def _deep_copy(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _deep_copy(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_deep_copy(v) for v in node]
    return node


_COMPARISONS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
                "less_than": "<"}
_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false",
               "string": "a string", "dict": "a mapping", "list": "a list",
               "model": "a mapping", "model_attributes": "a mapping"}


def format_validation_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """Turn pydantic's errors into ``key.path: what is wrong, what is expected`` lines."""
    lines = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        # Union members add their type name to the location; drop those.
        loc = [part for part in loc if not _is_union_tag(part)]
        path = ".".join(loc) or "(top level)"
        lines.append(f"{path}: {_describe(error, model, loc)}")
    return sorted(set(lines), key=lines.index)


def _is_union_tag(part: str) -> bool:
    return part[:1].isupper() or "[" in part or part in {
        "int", "float", "str", "bool", "none", "list", "dict", "function-after", "tagged-union"}


def _describe(error: dict[str, Any], model: type[BaseModel], loc: list[str]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    if kind in _COMPARISONS:
        limit = next(iter(ctx.values()))
        shown = f"{limit:g}" if isinstance(limit, int | float) else limit
        return f"must be {_COMPARISONS[kind]} {shown}, got {got!r}"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {got!r}"
    for suffix in ("_type", "_parsing"):
        if kind.endswith(suffix):
            name = kind[: -len(suffix)]
            return f"expected {_TYPE_NAMES.get(name, name)}, got {got!r}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return f"{error['msg'].lower()}, got {got!r}"


def _allowed_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    current: Any = model
    key_next = False  # the next part is a key of a mapping field, not a field name
    for part in loc:
        if key_next or part.isdigit():
            # A value of dict[str, Model] or an item of a list of models: its model is
            # already current.
            key_next = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
        key_next = _is_mapping(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _is_mapping(annotation: Any) -> bool:
    """True for ``dict[...]``/``Mapping[...]``, also inside ``X | None``."""
    origin = get_origin(annotation)
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return True
    return origin in (Union, UnionType) and any(_is_mapping(a) for a in get_args(annotation))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None
