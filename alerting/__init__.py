"""The iotwatch alerting service: alerts from MQTT to e-mail and webhooks.

Alertmanager's pipeline (route, group, mute, de-duplicate, notify) with a durable SQLite
outbox in front of the notifiers. ``app.run`` wires it; docs/alerting.md explains it.
"""
