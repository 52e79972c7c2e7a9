"""``iotwatch demo``: the whole pipeline on one machine, shown working within a minute.

Orchestration only: it starts a broker, a point store, the alert receivers and the three
services as subprocesses, watches the traffic, and scores what was detected against the
faults the publisher injected. ``app.run_demo`` is the one place that wires it together.
"""
