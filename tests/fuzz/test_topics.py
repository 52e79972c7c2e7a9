"""Every topic either parses into valid levels (that build the same topic again) or
raises Rejected."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from iotwatch.contracts import Rejected
from iotwatch.topics import SEGMENT, Topics

from .strategies import SEGMENT_TEXT

TOPICS = Topics("iotwatch")
LEVELS = st.lists(SEGMENT_TEXT, min_size=0, max_size=5)
TEXT = st.one_of(LEVELS.map(lambda ls: "iotwatch/readings/" + "/".join(ls)),
                 LEVELS.map(lambda ls: "iotwatch/alerts/" + "/".join(ls)),
                 st.text(max_size=120))


@given(TEXT)
@example("iotwatch/readings/site-1/dev-1/temperature\n")  # "$" let the newline through
def test_a_reading_topic_parses_into_valid_levels_or_is_rejected(topic):
    try:
        site, device, metric = TOPICS.parse_reading(topic)
    except Rejected:
        return
    levels = [site, device] + ([] if metric is None else [metric])
    assert all(SEGMENT.fullmatch(level) for level in levels), levels
    assert TOPICS.reading(site, device, metric) == topic


@given(TEXT)
def test_an_alert_topic_parses_into_valid_levels_or_is_rejected(topic):
    try:
        levels = TOPICS.parse_alert(topic)
    except Rejected:
        return
    assert all(SEGMENT.fullmatch(level) for level in levels), levels
    assert TOPICS.alert(*levels) == topic
