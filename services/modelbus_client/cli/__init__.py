"""The client commands of the ``modelbus`` CLI: predict, catalog (the listing) and results.

``commands`` holds the click commands, which ``modelbus.cli`` registers on its group; the
other modules read and write table files, keep the spool of a resumable ``predict -o`` run
and write the results topic to Parquet. They use the SDK one level up and click and tqdm.

Every command that talks to Kafka takes ``-b``/``-X`` through the ``kafka_options``
decorator (``kafka_options.py``) and builds its settings with ``settings.load_settings()``,
which applies them over the ``MODELBUS_*`` variables.
"""
