"""The routing tree: which receivers an alert goes to, and how its notifications are grouped.

Alertmanager's semantics: an alert enters at the root and descends depth-first into the
first child route whose matchers match; ``continue: true`` on a child lets matching go
on to its later siblings. A route with no matching child is itself the match. Children
inherit the receiver and grouping options they do not set.

>>> from alerting.config import RouteSettings
>>> root = build_routes(RouteSettings.model_validate({
...     "receiver": "ops", "group_by": ["site", "device"],
...     "routes": [{"matchers": ["severity=critical"], "receiver": "pager", "continue": True},
...                {"matchers": ["site=plant-1"], "receiver": "plant1", "group_wait_s": 5}]}))
>>> [r.receiver for r in root.match({"severity": "critical", "site": "plant-1"})]
['pager', 'plant1']
>>> [r.receiver for r in root.match({"severity": "warning", "site": "plant-2"})]
['ops']
>>> route = root.match({"site": "plant-1", "device": "boiler-1"})[0]
>>> route.group_wait_s, route.group_interval_s, route.group_key({"site": "plant-1", "device": "boiler-1"})
(5.0, 300.0, '{}/{site="plant-1"}#1:{device="boiler-1",site="plant-1"}')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from alerting.config import RouteSettings
from alerting.matchers import Matcher, matches_all, parse_matchers

DEFAULT_GROUP_WAIT_S = 30.0
DEFAULT_GROUP_INTERVAL_S = 300.0
DEFAULT_REPEAT_INTERVAL_S = 4 * 3600.0
GROUP_BY_ALL = "..."


@dataclass(frozen=True)
class Route:
    """One node of the tree with every option resolved (inherited or default)."""

    id: str
    receiver: str
    matchers: tuple[Matcher, ...]
    group_by: tuple[str, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float
    continue_: bool = False
    routes: tuple[Route, ...] = ()

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes an alert with ``labels`` goes to (empty if this route does not match)."""
        if not matches_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(labels)
            if matched:
                found += matched
                if not child.continue_:
                    break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that define the alert's group on this route (sorted by name)."""
        if GROUP_BY_ALL in self.group_by:
            return dict(sorted(labels.items()))
        return {name: labels[name] for name in sorted(self.group_by) if name in labels}

    def group_key(self, labels: Mapping[str, str]) -> str:
        """A stable key of the alert's group: route id and group labels."""
        inside = ",".join(f'{k}="{_escape(v)}"' for k, v in self.group_labels(labels).items())
        return f"{self.id}:{{{inside}}}"

    def walk(self):
        yield self
        for child in self.routes:
            yield from child.walk()


def build_routes(settings: RouteSettings, parent: Route | None = None,
                 index: int | None = None) -> Route:
    """Resolve ``settings`` (a validated route tree) into ``Route`` objects."""
    matchers = parse_matchers(settings.matchers)
    if parent is None:
        route_id = "{}"
    else:
        route_id = f"{parent.id}/{{{','.join(str(m) for m in matchers)}}}#{index}"

    def pick(own, inherited, default):
        if own is not None:
            return own
        return inherited if parent is not None else default

    route = Route(
        id=route_id,
        receiver=pick(settings.receiver, parent and parent.receiver, settings.receiver),
        matchers=matchers,
        group_by=tuple(pick(settings.group_by, parent and parent.group_by, ())),
        group_wait_s=float(pick(settings.group_wait_s, parent and parent.group_wait_s,
                                DEFAULT_GROUP_WAIT_S)),
        group_interval_s=float(pick(settings.group_interval_s,
                                    parent and parent.group_interval_s,
                                    DEFAULT_GROUP_INTERVAL_S)),
        repeat_interval_s=float(pick(settings.repeat_interval_s,
                                     parent and parent.repeat_interval_s,
                                     DEFAULT_REPEAT_INTERVAL_S)),
        continue_=settings.continue_,
    )
    children = tuple(build_routes(child, route, i) for i, child in enumerate(settings.routes))
    return replace(route, routes=children)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
