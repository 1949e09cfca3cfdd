"""The catalog: turns discovery events and each version's MLmodel into catalog entries.

A pure handler decides what to publish (``handler``); the service runs it on the delivery
runtime with the registry read retried (``retrying_reader``), failures told apart by type
(``errors``). It imports the contract and delivery layers, never discovery, the worker or
the client; ``modelbus.wiring`` builds its adapters (the MLflow reader, writer, view,
runtime and life cycle).
"""
