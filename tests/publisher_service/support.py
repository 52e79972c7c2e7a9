"""Small fleets, contract validation and a publisher subprocess for the publisher's tests."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import yaml
from referencing import Registry, Resource

PROJECT = Path(__file__).resolve().parents[2]
CONTRACTS = PROJECT / "config" / "contracts"
_SCHEMAS = {p.name: json.loads(p.read_text()) for p in CONTRACTS.glob("*.schema.json")}
_REGISTRY = Registry().with_resources(
    (name, Resource.from_contents(schema)) for name, schema in _SCHEMAS.items())
START = "2026-01-20T00:00:00Z"
START_TS = 1_768_867_200.0

_FLEET: dict[str, Any] = {
    "templates": {
        "boiler": {
            "interval_s": 10, "jitter_s": 0.5,
            "metrics": {
                "supply_temp": {"unit": "C", "baseline": 80, "noise": 0.3, "spread": 1.0,
                                "daily": {"amplitude": 3, "peak_hour": 7},
                                "drift": {"std": 0.5, "tau_h": 6}, "resolution": 0.1,
                                "range": [0, 120]},
                "pressure": {"unit": "bar", "baseline": 2.0, "noise": 0.02, "resolution": 0.01,
                             "range": [0, 6]},
            },
        },
        "pump": {
            "interval_s": 20,
            "metrics": {"power": {"unit": "kW", "baseline": 15, "noise": 0.5, "resolution": 0.1,
                                  "range": [0, 40]}},
        },
    },
    "sites": {"plant-1": {"devices": [{"name": "boiler-{n}", "template": "boiler", "count": 2},
                                      {"name": "pump-1", "template": "pump"}]}},
    "faults": {"scheduled": [], "random": {"rate_per_stream_per_hour": 0.0}},
}


def fleet(**changes: Any) -> dict[str, Any]:
    """A fresh copy of a small fleet (5 streams): top-level keys replaced by ``changes``."""
    data = copy.deepcopy(_FLEET)
    data.update(copy.deepcopy(changes))
    return data


def faults(*scheduled: dict[str, Any], rate: float = 0.0, **random: Any) -> dict[str, Any]:
    return {"scheduled": list(scheduled),
            "random": {"rate_per_stream_per_hour": rate, **random}}


def validate(schema_name: str, payload: bytes) -> None:
    """Raise jsonschema.ValidationError unless ``payload`` satisfies the contract."""
    validator = jsonschema.Draft202012Validator(_SCHEMAS[schema_name], registry=_REGISTRY)
    validator.validate(orjson.loads(payload))


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_publisher(args: list[str], *, cwd: Path, env: dict[str, str] | None = None,
                  timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python -m publisher ARGS`` to completion, output captured."""
    return subprocess.run([sys.executable, "-m", "publisher", *args], cwd=cwd,
                          env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
                          capture_output=True, text=True, timeout=timeout, check=False)


def read_csv_rows(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    assert lines[0] == "ts,site,device,metric,value"
    return [line.split(",") for line in lines[1:]]


def read_labels(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
