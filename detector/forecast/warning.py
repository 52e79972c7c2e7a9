"""Early warning: one stream, one rule; fires when its forecast crosses the limit in time.

States: ``normal`` -> ``firing`` when a forecast's expected value crosses ``limit``
(``above`` or ``below``) at a step at most ``within_s`` after the reading it was made
at. A firing warning resolves when ``resolve_forecasts`` forecasts in a row no longer
cross (hysteresis), or when the real thing takes over: the reading itself crosses the
limit, or the stream's anomaly alert fires. Then it is ``held`` (no new warning) until
``resolve_forecasts`` forecasts in a row stay within the limit, with the reading back
within it and the anomaly alert over: a value hovering at the limit is one episode and
one warning. The alert carries the predicted crossing time.

>>> from detector.forecast.model import Point
>>> from detector.forecast.settings import WarningRule
>>> machine = WarningMachine(WarningRule(match="#", limit=90, within_s=600), "p", "b", "t")
>>> machine.forecast(0.0, 85.0, [Point(300.0, 88.0, 86, 90), Point(600.0, 91.0, 89, 93)]).state
'firing'
>>> machine.forecast(60.0, 86.0, [Point(360.0, 89.0, 87, 91)]) is None   # still firing
True
>>> alert = machine.observe(120.0, 90.5, anomaly_event=None)
>>> alert.state, alert.annotations["summary"]
('resolved', 't on p/b crossed 90 (90.5): the limit was reached')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from detector.forecast.model import Point
from detector.forecast.settings import WarningRule
from iotwatch.contracts import Alert, alert_fingerprint
from iotwatch.timeparse import format_rfc3339


class WarningMachine:
    """The early-warning state of one (stream, rule)."""

    __slots__ = ("rule", "site", "device", "metric", "fingerprint", "state", "started_at",
                 "quiet", "predicted_at", "predicted_value", "anomaly_open")

    def __init__(self, rule: WarningRule, site: str, device: str, metric: str) -> None:
        self.rule = rule
        self.site, self.device, self.metric = site, device, metric
        self.fingerprint = alert_fingerprint(site, device, metric, rule.rule)
        self.state = "normal"
        self.started_at = 0.0
        self.quiet = 0                 # forecasts in a row without a crossing, while firing
        self.predicted_at = 0.0
        self.predicted_value = 0.0
        self.anomaly_open = False      # the stream's anomaly alert is firing

    def _crosses(self, value: float) -> bool:
        return value > self.rule.limit if self.rule.direction == "above" \
            else value < self.rule.limit

    def forecast(self, ts: float, value: float, points: Sequence[Point]) -> Alert | None:
        """Advance on a new forecast made at reading time ``ts``."""
        crossing = next((p for p in points if p.ts - ts <= self.rule.within_s
                         and self._crosses(p.value)), None)
        if self.state == "held":  # re-armed by forecasts in a row that stay within the limit
            calm = crossing is None and not self._crosses(value) and not self.anomaly_open
            self.quiet = self.quiet + 1 if calm else 0
            if self.quiet >= self.rule.resolve_forecasts:
                self.state, self.quiet = "normal", 0
            return None
        if self.state == "normal":
            if crossing is None:
                return None
            self.state, self.started_at, self.quiet = "firing", ts, 0
            self.predicted_at, self.predicted_value = crossing.ts, crossing.value
            return self._alert("firing", ts, value, self._firing_summary(ts))
        if crossing is not None:
            self.quiet = 0
            self.predicted_at, self.predicted_value = crossing.ts, crossing.value
            return None
        self.quiet += 1
        if self.quiet < self.rule.resolve_forecasts:
            return None
        self.state = "normal"
        return self._alert("resolved", ts, value,
                           f"{self._subject()}: the forecast no longer "
                           f"{self._verb()} {self.rule.limit:g}")

    def observe(self, ts: float, value: float, anomaly_event: str | None) -> Alert | None:
        """Advance on a reading (and the anomaly alert's transition on it, if any)."""
        if anomaly_event is not None:
            self.anomaly_open = anomaly_event == "firing"
        anomaly_firing = self.anomaly_open
        crossed = self._crosses(value)
        if self.state == "firing" and (crossed or anomaly_firing):
            self.state, self.quiet = "held", 0
            why = (f"crossed {self.rule.limit:g} ({value:.6g}): the limit was reached"
                   if crossed else "its anomaly alert fired and takes over")
            return self._alert("resolved", ts, value, f"{self._subject()} {why}")
        return None

    def _subject(self) -> str:
        return f"{self.metric} on {self.site}/{self.device}"

    def _verb(self) -> str:
        return "exceeds" if self.rule.direction == "above" else "falls below"

    def _firing_summary(self, ts: float) -> str:
        minutes = (self.predicted_at - ts) / 60
        verb = "exceed" if self.rule.direction == "above" else "fall below"
        return (f"{self._subject()} will {verb} {self.rule.limit:g} within "
                f"{self.rule.within_s / 60:g} min: forecast {self.predicted_value:.6g} at "
                f"{format_rfc3339(self.predicted_at)} (in {minutes:.0f} min)")

    def _alert(self, state: str, ts: float, value: float, summary: str) -> Alert:
        return Alert(
            fingerprint=self.fingerprint, state=state,  # type: ignore[arg-type]
            severity=self.rule.severity, site=self.site, device=self.device,
            metric=self.metric, rule=self.rule.rule, value=value, score=1.0,
            threshold=self.rule.limit, starts_at=self.started_at, ts=ts,
            ends_at=ts if state == "resolved" else None,
            annotations={"summary": summary,
                         "predicted_crossing": format_rfc3339(self.predicted_at),
                         "predicted_value": f"{self.predicted_value:.6g}",
                         "lead_s": f"{max(0.0, self.predicted_at - ts):.0f}",
                         "limit": f"{self.rule.limit:g}", "direction": self.rule.direction})

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state, "started_at": self.started_at, "quiet": self.quiet,
                "predicted_at": self.predicted_at, "predicted_value": self.predicted_value,
                "anomaly_open": self.anomaly_open}

    def load_state(self, state: dict[str, Any]) -> None:
        self.state = str(state["state"])
        self.started_at = float(state["started_at"])
        self.quiet = int(state["quiet"])
        self.predicted_at = float(state["predicted_at"])
        self.predicted_value = float(state["predicted_value"])
        self.anomaly_open = bool(state["anomaly_open"])
