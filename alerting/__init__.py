"""iotwatch alerting."""
