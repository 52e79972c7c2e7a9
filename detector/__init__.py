"""iotwatch detector."""
