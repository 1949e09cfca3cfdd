"""The client commands of the ``modelbus`` CLI: predict, catalog (the listing) and results,
and the operator tools tail and dlq (list, replay).

``commands`` and ``operator_commands`` hold the click commands, which ``modelbus.cli``
registers on its group; the other modules read and write table files, keep the spool of a
resumable ``predict -o`` run, write the results topic to Parquet, show any record decoded
(``record_view``), group and replay dead letters (``dlq_reasons``, ``dlq_replay``: pure) and
read topics and the ledger without a consumer group (``topic_records``, ``dlq_io``). They use
the SDK one level up and click and tqdm.

Every command that talks to Kafka takes ``-b``/``-X`` through the ``kafka_options``
decorator (``kafka_options.py``) and builds its settings with ``settings.load_settings()``,
which applies them over the ``MODELBUS_*`` variables.
"""
