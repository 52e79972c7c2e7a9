"""Every configuration file either loads into a valid model or raises ConfigError.

Files are built from the real sections and keys of the three services (so hypothesis
reaches deep into them) with values of any YAML type, plus YAML and bytes of any kind.
"""

from __future__ import annotations

import tempfile
import typing
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from iotwatch.config import SERVICE_FILE_MODELS, ConfigError, load_config, model_for

from .strategies import JSON_VALUES, NUMBERS

WORKDIR = Path(tempfile.mkdtemp(prefix="iotwatch-fuzz-config-"))


def key_names(model: type[BaseModel], depth: int = 0) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        names.add(field.alias or name)
        if depth < 4:
            for part in (field.annotation, *typing.get_args(field.annotation)):
                if isinstance(part, type) and issubclass(part, BaseModel):
                    names |= key_names(part, depth + 1)
    return names


MODELS = [model_for({name: {}}) for name in SERVICE_FILE_MODELS]
KEYS = sorted(set().union(*(key_names(m) for m in MODELS)) | {"password_file", "x"})
VALUES = st.one_of(NUMBERS.filter(lambda x: x == x), JSON_VALUES.filter(lambda v: v == v),
                   st.sampled_from(["", "0", "-1", "1e400", "yes", "null", "~", "[]", "{}",
                                    "iotwatch/readings/#", "+/+/t", "a\n"]))
TREES = st.recursive(VALUES, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)), max_leaves=20)
FILES = st.one_of(
    st.fixed_dictionaries({}, optional={
        "mqtt": TREES, "influxdb": TREES, "http": TREES, "log": TREES,
        "detector": TREES, "alerting": TREES, "publisher": TREES}).map(
            lambda tree: yaml.safe_dump(tree, allow_unicode=True).encode()),
    st.text(max_size=200).map(str.encode),
    st.sampled_from([b"a: &x [*x]", b"detector: &x {a: *x}", b"? [a, b]\n: 1", b"\xff\xfe",
                     b"detector: !!python/object:os.system x", b"- 1\n- 2", b"1: 2",
                     b"detector: {input: {queue_size: 1e400}}", b"[" * 5000,
                     b"detector:\n" + b"  - " * 2000 + b"1"]),
    st.binary(max_size=100))


@given(FILES)
def test_a_config_file_loads_or_raises_config_error(content):
    path = WORKDIR / "config.yaml"
    path.write_bytes(content)
    try:
        config = load_config(path, environ={})
    except ConfigError as exc:
        assert exc.errors and all(isinstance(e, str) for e in exc.errors)
        return
    assert isinstance(config, tuple(MODELS))
