"""iotwatch publisher."""
