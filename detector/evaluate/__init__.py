"""Offline evaluation: ``iotwatch evaluate`` runs the detection engine strictly online over
labelled recordings and measures it.

Modules, one job each: ``datasets`` (NAB, SKAB and publisher recordings in),
``runner`` (the engine over each file, files in parallel), ``nab`` (the NAB score),
``metrics`` (point-wise and event-wise metrics), ``summary`` (the JSON summary and the
table), ``results`` (NAB's results layout), ``report`` (HTML and PNG plots),
``progress`` (the progress line) and ``cli`` (the command). See ``docs/evaluation.md``.
"""
