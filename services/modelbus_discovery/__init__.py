"""Discovery: lists the registry's ``datagrok``-tagged models and publishes what changed.

Found, updated and removed events on the discovered topic, from polling, webhooks and the
short watch list of recently registered models. It imports the contract and delivery
layers, never the catalog, the worker or the client; ``modelbus.wiring`` builds its
adapters (the MLflow registry, the webhook receiver, its writer and life cycle).
"""
