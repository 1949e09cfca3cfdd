"""Where one-at-a-time requests spend their time, from the services' own histograms, and which
process used the CPU meanwhile: for a bench phase that runs the worker and the gateway as
processes with their metrics ports on (gateway_bench.py).

The worker's histograms split a request at the worker: ``…_queue_duration_seconds`` (from the
record's timestamp, which the producer sets when the gateway sends it, in whole milliseconds,
to the worker taking it), ``…_request_duration_seconds`` (taken to answer ready) and, inside
that, ``…_predict_duration_seconds`` (the model container's part). The gateway's
``modelbus_gateway_request_seconds`` is its handler from request in to response. Means over
the phase are the differences of the histograms' sums and counts before and after it.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families
from soak_bench import Processes

QUEUE = "modelbus_request_queue_duration_seconds"
WORKER = "modelbus_request_duration_seconds"
PREDICT = "modelbus_request_predict_duration_seconds"
GATEWAY = "modelbus_gateway_request_seconds"


def histogram_totals(port: int, names: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """Per histogram in ``names``: its sum and count over all label sets, as served now."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    totals = {name: (0.0, 0.0) for name in names}
    for family in text_string_to_metric_families(text.decode()):
        if family.name not in totals:
            continue
        total, count = totals[family.name]
        for sample in family.samples:
            if sample.name == f"{family.name}_sum":
                total += sample.value
            elif sample.name == f"{family.name}_count":
                count += sample.value
        totals[family.name] = (total, count)
    return totals


def mean_ms(before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]],
            name: str) -> float:
    """The mean of histogram ``name``'s observations between two readings, in ms."""
    count = after[name][1] - before[name][1]
    return (after[name][0] - before[name][0]) / count * 1000 if count else float("nan")


@dataclass
class Reading:
    worker: dict[str, tuple[float, float]]
    gateway: dict[str, tuple[float, float]]
    cpu: dict[str, float]
    at: float


class TimeSplit:
    """Readings of the worker's and the gateway's histograms and the stack's processes' CPU;
    ``report`` says what happened between two of them."""

    def __init__(self, worker_port: int, gateway_port: int, processes: Processes) -> None:
        self.worker_port, self.gateway_port = worker_port, gateway_port
        self.processes = processes

    def read(self) -> Reading:
        return Reading(
            histogram_totals(self.worker_port, (QUEUE, WORKER, PREDICT)),
            histogram_totals(self.gateway_port, (GATEWAY,)),
            {name: cpu for name, (_, cpu) in self.processes.usage().items()},
            time.monotonic(),
        )

    @staticmethod
    def report(before: Reading, after: Reading, client_mean_ms: float) -> list[str]:
        """Lines: the means of each stage and the processes' CPU over the phase."""
        gateway = mean_ms(before.gateway, after.gateway, GATEWAY)
        queue = mean_ms(before.worker, after.worker, QUEUE)
        worker = mean_ms(before.worker, after.worker, WORKER)
        predict = mean_ms(before.worker, after.worker, PREDICT)
        seconds = after.at - before.at
        shares = sorted(((after.cpu[k] - before.cpu.get(k, 0.0)) / seconds * 100, k)
                        for k in after.cpu)
        stages = [
            ("HTTP between client and gateway (outside its handler)", client_mean_ms - gateway,
             ""),
            ("on the requests topic until the worker takes it", queue,
             "record timestamps are whole ms"),
            ("in the worker, taken to answer ready", worker,
             f"the model container's part {predict:.1f} ms"),
            ("the rest: the gateway's own work, the answer's way back", gateway - queue - worker,
             ""),
        ]
        return [
            *(f"  {what:<56} {ms:5.1f} ms" + (f"  ({note})" if note else "")
              for what, ms, note in stages),
            "  CPU meanwhile, % of one core: "
            + ", ".join(f"{name} {share:.0f}%" for share, name in reversed(shares)),
        ]
