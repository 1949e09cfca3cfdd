"""What a record's task knows of the poll that brought it (the runtime sets it per record).

``ALONE_IN_POLL`` is true for a record that came alone: its poll fetched nothing else, so
no other request arrived with it. A batcher then has no company to gather for it and may
hand it to the model at once, without the turns of the event loop a batch takes to close
(in which the consumer's own fetching runs first).
"""

from __future__ import annotations

from contextvars import ContextVar

ALONE_IN_POLL: ContextVar[bool] = ContextVar("modelbus_alone_in_poll", default=False)
