"""Where a file prediction keeps its answered chunks until the output is written.

Beside the output ``OUT`` sits ``OUT.parts/``: one Arrow file per answered chunk and
``manifest.jsonl``, a header line (which input, model, chunk size) and one line per chunk,
appended after its part file is complete. A run killed at any point leaves a manifest whose
lines all name complete parts (a torn last line is ignored), so the next run with the same
output sends only the chunks without a line.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

MANIFEST = "manifest.jsonl"
FORMAT = 1


class SpoolMismatch(ValueError):
    """The spool beside the output belongs to another input, model or chunk plan."""


@dataclass(frozen=True)
class JobIdentity:
    """What must be the same for a run to continue another one."""

    input: str
    input_size: int
    input_mtime_ns: int
    model: str
    version: str | None

    @classmethod
    def of(cls, input_path: Path, model: str, version: str | None) -> JobIdentity:
        stat = input_path.stat()
        return cls(str(input_path.resolve()), stat.st_size, stat.st_mtime_ns, model, version)


@dataclass(frozen=True)
class DoneChunk:
    index: int
    start: int
    rows: int


@dataclass
class Spool:
    """The parts directory of one output: its plan and the chunks answered so far."""

    directory: Path
    identity: JobIdentity
    chunk_id: str
    rows_per_chunk: int
    total_rows: int | None
    pinned_version: str | None = None
    done: dict[int, DoneChunk] = field(default_factory=dict)

    @staticmethod
    def beside(output: Path) -> Path:
        return output.with_name(output.name + ".parts")

    @classmethod
    def create(cls, directory: Path, identity: JobIdentity, chunk_id: str, rows_per_chunk: int,
               total_rows: int | None) -> Spool:
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        spool = cls(directory, identity, chunk_id, rows_per_chunk, total_rows)
        spool._append({
            "kind": "job", "format": FORMAT, "identity": asdict(identity), "chunk_id": chunk_id,
            "rows_per_chunk": rows_per_chunk, "total_rows": total_rows,
        })
        return spool

    @classmethod
    def load(cls, directory: Path, identity: JobIdentity) -> Spool | None:
        """The spool in ``directory``; None when there is none; SpoolMismatch when it was
        made for another input or model."""
        lines = _lines(directory / MANIFEST)
        if not lines or lines[0].get("kind") != "job" or lines[0].get("format") != FORMAT:
            return None
        head = lines[0]
        theirs = JobIdentity(**head["identity"])
        if theirs != identity:
            raise SpoolMismatch(_difference(theirs, identity))
        spool = cls(directory, identity, str(head["chunk_id"]), int(head["rows_per_chunk"]),
                    head["total_rows"])
        for line in lines[1:]:
            if line.get("kind") == "pinned":
                spool.pinned_version = str(line["model_version"])
            elif line.get("kind") == "done":
                chunk = DoneChunk(int(line["index"]), int(line["start"]), int(line["rows"]))
                if spool.part_path(chunk.index).is_file():
                    spool.done[chunk.index] = chunk
        return spool

    @property
    def done_rows(self) -> int:
        return sum(chunk.rows for chunk in self.done.values())

    def part_path(self, index: int) -> Path:
        return self.directory / f"part-{index:09d}.arrow"

    def pin(self, version: str) -> None:
        if self.pinned_version is None and version:
            self.pinned_version = version
            self._append({"kind": "pinned", "model_version": version})

    def save_part(self, index: int, start: int, rows: int, table: pa.Table) -> None:
        """Write a chunk's answer, then record it (so a recorded part is always whole)."""
        path = self.part_path(index)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        self._append({"kind": "done", "index": index, "start": start, "rows": rows})
        self.done[index] = DoneChunk(index, start, rows)

    def read_part(self, index: int) -> pa.Table:
        with pa.memory_map(str(self.part_path(index))) as source:
            return pa.ipc.open_file(source).read_all()

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _append(self, line: dict[str, Any]) -> None:
        with (self.directory / MANIFEST).open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out: list[dict[str, Any]] = []
    for text in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            line = json.loads(text)
        except ValueError:  # a line torn by a kill: everything after it is unsure
            break
        if not isinstance(line, dict):
            break
        out.append(line)
    return out


def _difference(theirs: JobIdentity, ours: JobIdentity) -> str:
    changed = [
        name for name in ("input", "input_size", "input_mtime_ns", "model", "version")
        if getattr(theirs, name) != getattr(ours, name)
    ]
    what = {"input": "input file", "input_size": "input's size",
            "input_mtime_ns": "input's modification time", "model": "model",
            "version": "--version"}
    return ", ".join(what[name] for name in changed)
