"""Models trained on recorded normal data, scored online like any detector.

``features`` defines the windowed features (online and offline), ``kinds`` the four
model kinds, ``calibration`` turns raw scores into false-alarm rates on held-out normal
data, ``train`` fits and calibrates, ``artifact`` saves and loads model files with their
metadata, ``detector`` is the scoring-only detector the engine runs. See docs/models.md.
"""
