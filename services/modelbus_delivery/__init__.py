"""Kafka delivery, shared by every service and the client: it imports only the contract.

The consumer runtime (at-least-once, commit watermarks, concurrency per key, poison records
and quarantine), the writer, the catalog view, topics (made as planned or required; the
topic guard; the admin calls of ``modelbus topics`` and the plan's findings), fetch pacing,
connection options (TLS, SASL), the ops endpoint (metrics, health), structured logs, and
the one service life cycle the worker, catalog and discovery run on. Services, the client
and the composition may import it; it imports none of them.
"""
