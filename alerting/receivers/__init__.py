"""Receiver integrations, registered by name: the core imports no concrete integration.

Each integration is a module with a class implementing ``base.Notifier``, built from its
settings section (``email:``, ``webhook:``), the link template and the external URL.
A receiver's ``email`` and ``webhook`` become separate delivery targets
(``ops/email``, ``ops/webhook``), each with its own worker, retries and log.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass

from alerting.config import ReceiverSettings
from alerting.notification import Target
from alerting.receivers.base import Notifier, NotifyError, redact_url
from alerting.templates import LinkTemplate

__all__ = ["INTEGRATIONS", "Notifier", "NotifyError", "TargetSpec", "build_targets",
           "redact_url"]

INTEGRATIONS: dict[str, str] = {
    "email": "alerting.receivers.email:EmailNotifier",
    "webhook": "alerting.receivers.webhook:WebhookNotifier",
}


@dataclass(frozen=True)
class TargetSpec:
    """A delivery target with its notifier and what it wants to be told."""

    target: Target
    notifier: Notifier
    send_resolved: bool
    max_alerts: int = 0


def build_targets(receivers: Mapping[str, ReceiverSettings], links: LinkTemplate,
                  external_url: str | None = None) -> dict[str, list[TargetSpec]]:
    """Receiver name -> its targets. Raises ValueError naming a receiver that cannot start."""
    built: dict[str, list[TargetSpec]] = {}
    for name, receiver in receivers.items():
        specs = []
        for integration, where in INTEGRATIONS.items():
            settings = getattr(receiver, integration)
            if settings is None:
                continue
            module_name, attr = where.split(":")
            factory = getattr(importlib.import_module(module_name), attr)
            try:
                notifier = factory(settings, links, external_url)
            except ValueError as exc:
                raise ValueError(f"alerting.receivers.{name}.{integration}: {exc}") from None
            specs.append(TargetSpec(Target(name, integration), notifier, settings.send_resolved,
                                    getattr(settings, "max_alerts", 0)))
        built[name] = specs
    return built
