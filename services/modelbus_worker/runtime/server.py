"""The in-container runtime: a standby process that loads one pyfunc model on ``LOAD``.

Runs inside the runtime image as ``python -m modelbus_worker.runtime.server``; it imports
only the standard library, pyarrow, pandas and mlflow(-skinny) — never ``modelbus``.
It imports its libraries and listens at once (``PING`` answers ``state: standby``), so a
container can be started before anyone knows which model it will serve. ``LOAD`` then
loads the model from a directory the worker placed in the bind-mounted socket directory;
after that it answers ``PREDICT``. A model exception is answered as an ``ERROR`` frame;
the server keeps running.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from types import FrameType
from typing import Any

from .arrow_io import ipc_to_table, prediction_to_table, table_to_ipc
from .protocol import (
    Kind,
    ProtocolError,
    decode_json,
    encode_error,
    encode_json,
    recv_frame,
    send_frame,
)
from .tensors import model_tensor_sides, table_to_tensors, tensors_to_table

STANDBY, LOADING, READY, FAILED = "standby", "loading", "ready", "failed"


def _log(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}, default=str), file=sys.stderr, flush=True)


def _error_with_tail(exc: BaseException, frames: int = 3) -> str:
    """The exception's message and the last frames of its traceback and of its causes'
    (where it came from: a model's own code is usually in a cause)."""
    tail = "".join(traceback.format_exception(exc, limit=-frames)).strip()
    return f"{exc}\n{tail}"


class ModelServer:
    """Holds the model (once loaded) and serves each connection in its own thread."""

    def __init__(self, model: Any | None = None, load_s: float | None = None) -> None:
        self.model = model
        self.load_s = load_s
        self.tensors_in, self.tensors_out = model_tensor_sides(model)
        self.model_dir: str | None = None
        self.state = STANDBY if model is None else READY
        self.load_lock = threading.Lock()
        self.predict_lock = threading.Lock()  # pyfunc models are not promised thread-safe

    def handle(self, conn: socket.socket) -> None:
        """Answer frames on one connection until the peer closes it."""
        with conn:
            while True:
                try:
                    kind, payload = recv_frame(conn)
                except (EOFError, ConnectionError):
                    return
                except ProtocolError as exc:
                    _log("protocol_error", error=str(exc))
                    return
                reply_kind, reply = self.answer(kind, payload)
                try:
                    send_frame(conn, reply_kind, reply)
                except (BrokenPipeError, ConnectionError):
                    return

    def answer(self, kind: Kind, payload: bytes) -> tuple[Kind, bytes]:
        """The reply to one request frame."""
        if kind == Kind.PING:
            info = {"state": self.state, "pid": os.getpid(), "load_s": self.load_s,
                    "model": self.model_dir}
            return Kind.PONG, encode_json(info)
        if kind == Kind.LOAD:
            return self.load(decode_json(payload).get("model"))
        if kind != Kind.PREDICT:
            return Kind.ERROR, encode_error("ProtocolError", f"unexpected {kind.name}", "protocol")
        model = self.model
        if model is None:
            return Kind.ERROR, encode_error(
                "ModelNotLoaded", f"no model is loaded (state {self.state})", "protocol"
            )
        return self.predict(model, payload)

    def load(self, model_dir: Any) -> tuple[Kind, bytes]:
        """Load the pyfunc model in ``model_dir`` — once; a second ``LOAD`` is refused."""
        if not isinstance(model_dir, str) or not model_dir:
            return Kind.ERROR, encode_error("ProtocolError", "LOAD needs {\"model\": DIR}", "load")
        with self.load_lock:
            if self.state != STANDBY:
                return Kind.ERROR, encode_error(
                    "ProtocolError", f"cannot load {model_dir}: runtime is {self.state}", "load"
                )
            self.state = LOADING
            started = time.monotonic()
            try:
                import mlflow.pyfunc

                model = mlflow.pyfunc.load_model(model_dir)
            except (Exception, SystemExit) as exc:  # a model's import may call sys.exit
                self.state = FAILED  # half-imported modules may stay behind: never reused
                _log("load_failed", model=model_dir, error=repr(exc),
                     traceback=traceback.format_exc(limit=-8))
                return Kind.ERROR, encode_error(type(exc).__name__, _error_with_tail(exc), "load")
            self.load_s = round(time.monotonic() - started, 3)
            self.tensors_in, self.tensors_out = model_tensor_sides(model)
            self.model, self.model_dir, self.state = model, model_dir, READY
        _log("loaded", model=model_dir, load_s=self.load_s)
        return Kind.LOADED, encode_json({"load_s": self.load_s, "pid": os.getpid()})

    def predict(self, model: Any, payload: bytes) -> tuple[Kind, bytes]:
        """Arrow table in, the model's prediction as an Arrow table out (or an ``ERROR``)."""
        stage = "input"
        try:
            table = ipc_to_table(payload)
            data = (table.to_pandas() if self.tensors_in is None
                    else table_to_tensors(table, self.tensors_in))
            stage = "predict"
            with self.predict_lock:
                prediction = model.predict(data)
            stage = "output"
            return Kind.RESULT, table_to_ipc(self.output_table(prediction))
        except Exception as exc:
            _log("request_failed", stage=stage, error=repr(exc),
                 traceback=traceback.format_exc(limit=5))
            return Kind.ERROR, encode_error(type(exc).__name__, str(exc), stage)

    def output_table(self, prediction: Any) -> Any:
        """The prediction as a table: arrays as tensor columns when the model's signature
        has output tensors, anything else as columns."""
        side = self.tensors_out
        table = tensors_to_table(prediction, side) if side is not None else None
        return table if table is not None else prediction_to_table(prediction)


def warm_up() -> float:
    """Import what loading and serving any model needs; seconds taken."""
    started = time.monotonic()
    import mlflow.pyfunc  # noqa: F401  (pandas, pyarrow and numpy came with arrow_io)

    # load_model checks the model's requirements against the installed packages; the map
    # of installed packages it builds first (once per process) is most of a small model's
    # load time. A private helper: if it moved, loading just takes longer.
    try:
        from mlflow.utils import requirements_utils

        requirements_utils._init_modules_to_packages_map()  # type: ignore[no-untyped-call]
    except Exception as exc:
        _log("warm_up_incomplete", error=repr(exc))
    return round(time.monotonic() - started, 3)


def listen(socket_path: str) -> socket.socket:
    """A listening unix socket that appears at ``socket_path`` only once it listens."""
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp_path = socket_path + ".tmp"
    if os.path.exists(tmp_path):
        os.unlink(tmp_path)
    listener.bind(tmp_path)
    os.chmod(tmp_path, 0o666)  # a non-root worker on the host must be able to connect
    listener.listen(64)
    os.rename(tmp_path, socket_path)
    return listener


def serve(socket_path: str) -> None:
    """Import the libraries, then accept connections on ``socket_path`` forever."""
    import_s = warm_up()
    server = ModelServer()
    listener = listen(socket_path)
    _log("standby", import_s=import_s, socket=socket_path)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=server.handle, args=(conn,), daemon=True).start()


def _stop(signum: int, frame: FrameType | None) -> None:
    # As PID 1 the process ignores SIGTERM unless it handles it.
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``--socket PATH`` (the model comes later, in a ``LOAD`` frame)."""
    parser = argparse.ArgumentParser(description="modelbus in-container model runtime")
    parser.add_argument("--socket", default="/sock/model.sock")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        serve(args.socket)
    except Exception as exc:
        _log("start_failed", error=repr(exc), traceback=traceback.format_exc(limit=8))
        sys.exit(3)


if __name__ == "__main__":
    main()
