"""Background preparation: a worker gets the versions whose requests it owns ready before
anyone asks (files, images, a warm container or a standby runtime) and reports each
version's serving state to the catalog.

``plan`` decides what to prepare (pure), ``reports`` tells the catalog, ``preparer`` runs
the preparations under the policy's caps. It sits beside the pool and the request path:
it uses the pool through the ``Preparation`` port and reads the worker's catalog view.
"""
