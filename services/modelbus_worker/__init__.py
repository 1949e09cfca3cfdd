"""The worker: answers prediction requests by running model versions in containers.

Its modules are layered; each imports only from the contract, the delivery layer and the
worker's own floors below it (``tests/unit/test_layering.py`` checks this):

1. ``ports`` (what the parts know of one another), ``settings``, ``quantities``,
   ``failures``; and ``runtime/`` (runs inside the container, the contract only).
2. ``images/``; the pieces of one request and its answer (``request``, ``answer`` (the
   typed ``Answer`` the handler returns), ``replies`` (the records and the result
   encoding), ``input_plans``, ``schema_check``, ``progress_notices``, ``quarantine``,
   ``metrics``, ...).
3. The parts, each on the ports and none on another: ``pool/``, ``handler`` (decides the
   ``Answer``), ``answering`` (headers read once; the records made from the ``Answer``),
   ``batching``, ``tracing`` and ``measured`` (read the ``Answer``), ``preparation/``.
4. ``service``: its life cycle. ``modelbus.wiring.assemble_worker`` builds the parts and
   the handler stack (Answering → tracing → metrics → RequestHandler → predictor wrappers
   → batching → the container pool).
"""
