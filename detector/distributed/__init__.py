"""The detector's distributed mode: several instances share the streams through NATS JetStream.

See docs/scale-out.md. ``detector.distributed.app.run`` wires it; ``detector.app.run``
stays the single-node service.
"""
