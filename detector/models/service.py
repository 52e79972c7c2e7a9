"""The detector service's edge for trained models: load the configured files, check that
each fits where it is used, and register it as detector ``model:<name>``.

The engine never opens a file: it asks the registry for ``model:<name>`` and gets a
:class:`ModelDetector` around the model loaded here. Every problem is one
:class:`ModelError` line naming the file and the mismatch, raised before the service
connects to anything.

A stream model may be used where its training target covers the rule's pattern (a model
trained on ``plant/boiler/temp`` fits the rule ``plant/boiler/temp``; one trained on
``+/+/temp`` fits any temperature rule); a device model only in a rule for
``<site>/<device>/_device`` of its device.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from detector.engine import registry
from detector.engine.settings import MODEL_PREFIX, EngineSettings
from detector.engine.streams import matches
from detector.models.artifact import ModelError, TrainedModel, load

DEVICE_LEVEL = "_device"


def load_configured(directory: Path, files: Mapping[str, str]) -> dict[str, TrainedModel]:
    """Load every configured model from ``directory``; errors for all of them at once."""
    root = directory.resolve()
    loaded: dict[str, TrainedModel] = {}
    errors: list[str] = []
    for name, file in files.items():
        path = (directory / file)
        if path.resolve().parent != root:
            errors.append(f"models.files.{name}: {file} is not inside {directory}")
            continue
        try:
            loaded[name] = load(path)
        except ModelError as exc:
            errors.append(f"models.files.{name}: {exc}")
    if errors:
        raise ModelError("\n".join(errors))
    return loaded


def check_usage(settings: EngineSettings, models: Mapping[str, TrainedModel],
                paths: Mapping[str, Path]) -> None:
    """Refuse a model used where its metadata says it does not belong."""
    errors: list[str] = []
    uses: list[tuple[str, str, Iterable[str]]] = [("enabled", "#", settings.enabled)]
    uses += [(f"streams.{i}.enabled", rule.match, rule.enabled or ())
             for i, rule in enumerate(settings.streams)]
    for where, pattern, names in uses:
        for name in names:
            if not name.startswith(MODEL_PREFIX):
                continue
            model = models[name[len(MODEL_PREFIX):]]
            problem = _misfit(model, pattern)
            if problem:
                errors.append(f"{where}: {name} ({paths[name[len(MODEL_PREFIX):]]}, "
                              f"{model.kind}) {problem}")
    if errors:
        raise ModelError("\n".join(errors))


def _misfit(model: TrainedModel, pattern: str) -> str | None:
    device_rule = pattern.split("/")[-1] == DEVICE_LEVEL
    if model.scope == "device":
        wanted = f"{model.target}/{DEVICE_LEVEL}"
        if pattern != wanted:
            return (f"was trained for device {model.target} (metrics "
                    f"{', '.join(model.metrics)}); use it in a rule matching {wanted!r}, "
                    f"not {pattern!r}")
        return None
    if device_rule:
        return f"is a stream model (trained for {model.target}); a _device rule needs a device model"
    if not matches(model.target, pattern):
        return f"was trained for streams {model.target!r}, which does not cover {pattern!r}"
    return None


def register(models: Mapping[str, TrainedModel], files: Mapping[str, str] | None = None) -> None:
    """Make each model available to the engine as ``model:<name>``."""
    from detector.models.detector import ModelDetector

    for name, model in models.items():
        def factory(settings: Any, context: Any, model: TrainedModel = model) -> ModelDetector:
            return ModelDetector(model)

        summary = f"trained {model.kind} for {model.target}"
        if files and name in files:
            summary += f" ({files[name]})"
        registry.register_model(f"{MODEL_PREFIX}{name}", model.scope, summary, factory)


def prepare(settings: Any) -> dict[str, TrainedModel]:
    """Load, check and register the models of a ``detector:`` section (with ``models:``)."""
    section = settings.models
    if not section.files:
        return {}
    models = load_configured(section.directory, section.files)
    check_usage(settings, models, {name: section.directory / file
                                   for name, file in section.files.items()})
    register(models, section.files)
    return models
