"""The composition, at the top of the layering: the ``modelbus`` CLI and what it runs.

``wiring`` is the one composition root: each service's adapters (settings, Kafka writer,
catalog view, runtime, life cycle, Docker client, MLflow reader, webhook receiver) and the
worker's handler stack are built there and injected. Beside it: the service runner, the
embedded stack (broker, MLflow, Docker) with ``modelbus up``, ``modelbus topics`` (the plan
as text, the rule that prunes reply topics), the demo, and ``client``,
which re-exports the client package's public names. It may import every package below;
none imports it.
"""
