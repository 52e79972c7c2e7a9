"""Matchers and the routing tree, as tables (pure: no servers, no clock)."""

from __future__ import annotations

import pytest

from alerting.config import RouteSettings
from alerting.matchers import parse_matcher
from alerting.routing import build_routes

LABELS = {"site": "plant-1", "device": "boiler-1", "metric": "temperature",
          "rule": "anomaly", "severity": "critical"}


@pytest.mark.parametrize(("text", "labels", "expected"), [
    ("site=plant-1", LABELS, True),
    ('site="plant-1"', LABELS, True),
    ("site = plant-1", LABELS, True),
    ("site!=plant-1", LABELS, False),
    ("site=~plant-.*", LABELS, True),
    ("site=~plant", LABELS, False),            # anchored: the whole value must match
    ('device!~"pump-.*"', LABELS, True),
    ("detector=hst", LABELS, False),           # a missing label is the empty string
    ("detector=", LABELS, True),
    ("detector!=", LABELS, False),
    ('summary="say \\"hi\\""', {"summary": 'say "hi"'}, True),
    ("severity=~warning|critical", LABELS, True),
])
def test_matchers(text, labels, expected):
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize(("text", "message"), [
    ("severity", "must look like label=value"),
    ("=critical", "must look like label=value"),
    ("1site=a", "must look like label=value"),
    ("site=~plant-(", "invalid regular expression"),
])
def test_bad_matchers_say_what_is_expected(text, message):
    with pytest.raises(ValueError, match=message):
        parse_matcher(text)


TREE = RouteSettings.model_validate({
    "receiver": "default", "group_by": ["site"], "group_wait_s": 30,
    "routes": [
        {"matchers": ["severity=critical"], "receiver": "pager", "continue": True,
         "group_by": ["site", "device"], "repeat_interval_s": 600},
        {"matchers": ["site=~plant-.*"], "receiver": "plants",
         "routes": [{"matchers": ["device=~pump-.*"], "receiver": "pumps",
                     "group_wait_s": 5}]},
        {"matchers": ["metric=power"], "receiver": "energy"},
    ]})


@pytest.mark.parametrize(("labels", "receivers"), [
    (LABELS, ["pager", "plants"]),                                   # continue, then match
    ({**LABELS, "severity": "warning"}, ["plants"]),
    ({**LABELS, "device": "pump-2", "severity": "warning"}, ["pumps"]),  # deepest match
    ({**LABELS, "site": "office", "severity": "warning"}, ["default"]),  # no child: root
    ({**LABELS, "site": "office", "metric": "power", "severity": "warning"}, ["energy"]),
    ({**LABELS, "metric": "power", "severity": "warning"}, ["plants"]),  # first match stops
    ({**LABELS, "site": "office"}, ["pager"]),                       # continue, no further
])
def test_routing_tree(labels, receivers):
    assert [r.receiver for r in build_routes(TREE).match(labels)] == receivers


def test_children_inherit_what_they_do_not_set():
    root = build_routes(TREE)
    pager, plants, energy = root.routes
    pumps = plants.routes[0]
    assert (root.group_wait_s, root.group_interval_s, root.repeat_interval_s) == \
        (30.0, 300.0, 14_400.0)
    assert pager.group_by == ("site", "device") and pager.repeat_interval_s == 600.0
    assert pumps.receiver == "pumps" and pumps.group_wait_s == 5.0
    assert pumps.group_by == ("site",) and pumps.repeat_interval_s == 14_400.0
    assert energy.group_wait_s == 30.0


@pytest.mark.parametrize(("group_by", "key"), [
    ([], "{}:{}"),
    (["site"], '{}:{site="plant-1"}'),
    (["device", "site"], '{}:{device="boiler-1",site="plant-1"}'),
    (["site", "missing"], '{}:{site="plant-1"}'),
    (["..."], '{}:{device="boiler-1",metric="temperature",rule="anomaly",'
              'severity="critical",site="plant-1"}'),
])
def test_group_keys(group_by, key):
    root = build_routes(RouteSettings(receiver="r", group_by=group_by))
    assert root.group_key(LABELS) == key


def test_route_ids_differ_between_siblings_and_are_stable():
    first, second = build_routes(TREE), build_routes(TREE)
    ids = [route.id for route in first.walk()]
    assert len(set(ids)) == len(ids)
    assert ids == [route.id for route in second.walk()]
