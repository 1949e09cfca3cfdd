"""The public message contract, at the bottom of the layering: it imports nothing of modelbus.

Messages and their JSON Schemas (read tolerantly: unknown fields and message types are
skipped), the error codes, request and result headers, the Arrow IPC codec and the bounds
that judge an untrusted stream before it is decoded, catalog lookup and version resolution,
the channel table (topics, AsyncAPI), the topic plan (partitions and configs of every
topic) and the settings every service and client reads.
Everything else in ``services/`` may import it.
"""
