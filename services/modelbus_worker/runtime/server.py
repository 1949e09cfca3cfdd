"""The in-container runtime: load one pyfunc model, answer framed requests on a unix socket.

Runs inside the model image as ``python -m modelbus_worker.runtime.server``; it imports
only the standard library, pyarrow, pandas and mlflow(-skinny) — never ``modelbus``.
A model exception is answered as an ``ERROR`` frame; the server keeps running.
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

from .protocol import Kind, ProtocolError, encode_error, recv_frame, send_frame


def _log(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}, default=str), file=sys.stderr, flush=True)


class ModelServer:
    """Holds the loaded model and serves each connection in its own thread."""

    def __init__(self, model: Any, load_s: float) -> None:
        self.model = model
        self.load_s = load_s
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
            info = {"pid": os.getpid(), "load_s": self.load_s}
            return Kind.PONG, json.dumps(info).encode()
        if kind != Kind.PREDICT:
            return Kind.ERROR, encode_error("ProtocolError", f"unexpected {kind.name}", "protocol")
        from .arrow_io import ipc_to_table, prediction_to_table, table_to_ipc

        stage = "input"
        try:
            frame = ipc_to_table(payload).to_pandas()
            stage = "predict"
            with self.predict_lock:
                prediction = self.model.predict(frame)
            stage = "output"
            return Kind.RESULT, table_to_ipc(prediction_to_table(prediction))
        except Exception as exc:
            _log("request_failed", stage=stage, error=repr(exc),
                 traceback=traceback.format_exc(limit=5))
            return Kind.ERROR, encode_error(type(exc).__name__, str(exc), stage)


def serve(model_dir: str, socket_path: str) -> None:
    """Load the model, then accept connections on ``socket_path`` forever."""
    started = time.monotonic()
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(model_dir)
    load_s = round(time.monotonic() - started, 3)
    server = ModelServer(model, load_s)
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Bind under a temporary name and rename, so the socket appears only when it listens.
    tmp_path = socket_path + ".tmp"
    if os.path.exists(tmp_path):
        os.unlink(tmp_path)
    listener.bind(tmp_path)
    os.chmod(tmp_path, 0o666)  # a non-root worker on the host must be able to connect
    listener.listen(64)
    os.rename(tmp_path, socket_path)
    _log("ready", load_s=load_s, socket=socket_path)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=server.handle, args=(conn,), daemon=True).start()


def _stop(signum: int, frame: FrameType | None) -> None:
    # As PID 1 the process ignores SIGTERM unless it handles it.
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``--model DIR --socket PATH``."""
    parser = argparse.ArgumentParser(description="modelbus in-container model runtime")
    parser.add_argument("--model", default="/model")
    parser.add_argument("--socket", default="/sock/model.sock")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        serve(args.model, args.socket)
    except Exception as exc:
        _log("load_failed", error=repr(exc), traceback=traceback.format_exc(limit=8))
        sys.exit(3)


if __name__ == "__main__":
    main()
