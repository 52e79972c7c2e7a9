"""Shared plumbing for the iotwatch services: configuration, message contracts,
topic layout, time parsing, MQTT connection set-up, retries and the command line.

Nothing here knows about detection or delivery; services import from here, never
the other way round.
"""

__version__ = "0.1.0"


class IotwatchError(Exception):
    """Base of every error iotwatch raises on purpose."""
