"""Hypothesis profiles for the property-based fuzzing in tests/fuzz.

``ci`` (the default): 200 examples per property, derandomized (the same
examples every run, so a red test is reproducible and never flaky), no example
database, no deadline (the machine is shared). ``explore``: many more random examples,
for hunting locally:  HYPOTHESIS_PROFILE=explore python -m pytest tests/fuzz
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=200, derandomize=True, database=None,
                          deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", max_examples=20_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
