"""Kafka connection options: PLAINTEXT by default, TLS contexts that really verify the
broker, SASL only with its credentials, and readable errors for every bad combination.

Certificates are generated here (``cryptography``, an MLflow dependency); the TLS checks
handshake over a local socket pair, no broker involved.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr, ValidationError

from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.kafka_config import (
    KafkaConfigError,
    as_options,
    connection_options,
    servers_of,
)

SECURITY_VARIABLES = (
    "MODELBUS_KAFKA_BOOTSTRAP_SERVERS",
    "MODELBUS_KAFKA_SECURITY_PROTOCOL",
    "MODELBUS_KAFKA_SASL_MECHANISM",
    "MODELBUS_KAFKA_SASL_USERNAME",
    "MODELBUS_KAFKA_SASL_PASSWORD",
    "MODELBUS_KAFKA_SSL_CAFILE",
    "MODELBUS_KAFKA_SSL_CERTFILE",
    "MODELBUS_KAFKA_SSL_KEYFILE",
    "MODELBUS_KAFKA_SSL_PASSWORD",
    "MODELBUS_KAFKA_SSL_CHECK_HOSTNAME",
)
KEY_PASSWORD = "key-pass-7"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECURITY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def settings(**values: Any) -> ModelbusSettings:
    return ModelbusSettings(**values)


# -- certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path  # encrypted with KEY_PASSWORD


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey],
    *, ca: bool = False, hosts: tuple[str, ...] = (),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer[0]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False),
            critical=True,
        ).add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    if hosts:
        names: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts if h[0].isalpha()]
        names += [x509.IPAddress(ipaddress.ip_address(h)) for h in hosts if not h[0].isalpha()]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer[1], hashes.SHA256())


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: str | None = None) -> Path:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password else serialization.NoEncryption()
    )
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for localhost/127.0.0.1 it signed, a client certificate
    with an encrypted key, and an unrelated CA."""
    root = tmp_path_factory.mktemp("pki")
    ca_key, other_key, server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()) for _ in range(4)
    )
    ca = ("modelbus test CA", ca_key)
    return Pki(
        ca=_write_cert(root / "ca.pem", _certificate(ca[0], ca_key, ca, ca=True)),
        other_ca=_write_cert(
            root / "other-ca.pem",
            _certificate("another CA", other_key, ("another CA", other_key), ca=True),
        ),
        server_cert=_write_cert(
            root / "server.pem",
            _certificate("localhost", server_key, ca, hosts=("localhost", "127.0.0.1")),
        ),
        server_key=_write_key(root / "server.key", server_key),
        client_cert=_write_cert(root / "client.pem", _certificate("client", client_key, ca)),
        client_key=_write_key(root / "client.key", client_key, KEY_PASSWORD),
    )


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[int]:
    """The port of a one-connection TLS server on 127.0.0.1 with the CA-signed certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        # A refused handshake is the client's failure to report, not the server's.
        with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    thread.join(timeout=10)


def _handshake(context: ssl.SSLContext, port: int, server_hostname: str) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        return tls.recv(2)


# -- defaults -----------------------------------------------------------------------------


def test_plaintext_is_the_default_and_carries_nothing_else() -> None:
    assert connection_options(settings()) == {
        "bootstrap_servers": "localhost:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_as_options_and_servers_of_never_show_credentials() -> None:
    options = connection_options(settings(
        kafka_bootstrap_servers="b1:9093,b2:9093", kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="svc", kafka_sasl_password=SecretStr("kafka-s3cret"),
    ))
    assert as_options(options) is options
    assert as_options("h:1") == {"bootstrap_servers": "h:1"}
    assert servers_of(options) == "b1:9093,b2:9093"
    assert servers_of("h:1") == "h:1"


# -- TLS ----------------------------------------------------------------------------------


def test_ssl_builds_a_verifying_context_from_the_ca_file(pki: Pki) -> None:
    options = connection_options(settings(
        kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki.ca)
    ))
    context = options["ssl_context"]
    assert options["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in options
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    subjects = [dict(item[0] for item in cert["subject"]) for cert in context.get_ca_certs()]
    assert {"commonName": "modelbus test CA"} in subjects


def test_the_context_trusts_a_broker_signed_by_the_ca(
    pki: Pki, tls_server: int
) -> None:
    port = tls_server
    context = connection_options(settings(
        kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki.ca)
    ))["ssl_context"]
    assert _handshake(context, port, "localhost") == b"ok"


def test_the_context_refuses_a_broker_signed_by_another_ca(
    pki: Pki, tls_server: int
) -> None:
    port = tls_server
    context = connection_options(settings(
        kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki.other_ca)
    ))["ssl_context"]
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
        _handshake(context, port, "localhost")


def test_the_context_refuses_a_broker_with_another_name(
    pki: Pki, tls_server: int
) -> None:
    port = tls_server
    context = connection_options(settings(
        kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki.ca)
    ))["ssl_context"]
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _handshake(context, port, "kafka.example.com")


def test_check_hostname_false_turns_verification_off(
    pki: Pki, tls_server: int
) -> None:
    port = tls_server
    context = connection_options(settings(
        kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki.other_ca),
        kafka_ssl_check_hostname=False,
    ))["ssl_context"]
    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_NONE
    assert _handshake(context, port, "kafka.example.com") == b"ok"


def test_a_client_certificate_with_an_encrypted_key_is_loaded(pki: Pki) -> None:
    options = connection_options(settings(
        kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki.ca),
        kafka_ssl_certfile=str(pki.client_cert), kafka_ssl_keyfile=str(pki.client_key),
        kafka_ssl_password=SecretStr(KEY_PASSWORD),
    ))
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_a_wrong_key_password_is_a_readable_error_without_the_password(pki: Pki) -> None:
    with pytest.raises(KafkaConfigError, match=r"^Kafka TLS settings unusable: ") as caught:
        connection_options(settings(
            kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki.ca),
            kafka_ssl_certfile=str(pki.client_cert), kafka_ssl_keyfile=str(pki.client_key),
            kafka_ssl_password=SecretStr("not-the-password"),
        ))
    assert "not-the-password" not in str(caught.value)


def test_a_missing_ca_file_is_a_readable_error(tmp_path: Path) -> None:
    with pytest.raises(KafkaConfigError, match=r"^Kafka TLS settings unusable: .*No such file"):
        connection_options(settings(
            kafka_security_protocol="SSL", kafka_ssl_cafile=str(tmp_path / "absent.pem")
        ))


def test_a_ca_file_that_is_not_a_certificate_is_a_readable_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(KafkaConfigError, match=r"^Kafka TLS settings unusable: "):
        connection_options(settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(junk)))


# -- SASL ---------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize(
    "credentials",
    [{}, {"kafka_sasl_username": "svc"}, {"kafka_sasl_password": SecretStr("pw-1234")}],
    ids=["none", "username only", "password only"],
)
def test_sasl_needs_a_username_and_a_password(
    pki: Pki, protocol: str, credentials: dict[str, Any]
) -> None:
    with pytest.raises(KafkaConfigError) as caught:
        connection_options(settings(
            kafka_security_protocol=protocol, kafka_ssl_cafile=str(pki.ca), **credentials
        ))
    assert str(caught.value) == (
        f"MODELBUS_KAFKA_SECURITY_PROTOCOL={protocol} needs "
        "MODELBUS_KAFKA_SASL_USERNAME and MODELBUS_KAFKA_SASL_PASSWORD"
    )
    assert "pw-1234" not in str(caught.value)


def test_sasl_plaintext_defaults_to_the_plain_mechanism() -> None:
    options = connection_options(settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="svc", kafka_sasl_password=SecretStr("kafka-s3cret"),
    ))
    assert options == {
        "bootstrap_servers": "localhost:9092",
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "kafka-s3cret",
    }


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_has_the_mechanism_the_credentials_and_a_context(
    pki: Pki, mechanism: str
) -> None:
    options = connection_options(settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="svc", kafka_sasl_password=SecretStr("kafka-s3cret"),
        kafka_ssl_cafile=str(pki.ca),
    ))
    assert options["sasl_mechanism"] == mechanism
    assert options["sasl_plain_username"] == "svc"
    assert options["sasl_plain_password"] == "kafka-s3cret"
    assert isinstance(options["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
def test_a_mechanism_without_a_sasl_protocol_is_refused(pki: Pki, protocol: str) -> None:
    with pytest.raises(KafkaConfigError) as caught:
        connection_options(settings(
            kafka_security_protocol=protocol, kafka_sasl_mechanism="SCRAM-SHA-256",
            kafka_ssl_cafile=str(pki.ca),
        ))
    assert str(caught.value) == (
        "MODELBUS_KAFKA_SASL_MECHANISM is set but MODELBUS_KAFKA_SECURITY_PROTOCOL is "
        f"{protocol}: use SASL_PLAINTEXT or SASL_SSL"
    )


# -- from the environment -----------------------------------------------------------------


def test_settings_read_every_security_variable_from_the_environment(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "MODELBUS_KAFKA_BOOTSTRAP_SERVERS": "broker-1:9093",
        "MODELBUS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "MODELBUS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "MODELBUS_KAFKA_SASL_USERNAME": "svc",
        "MODELBUS_KAFKA_SASL_PASSWORD": "kafka-s3cret",
        "MODELBUS_KAFKA_SSL_CAFILE": str(pki.ca),
        "MODELBUS_KAFKA_SSL_CERTFILE": str(pki.client_cert),
        "MODELBUS_KAFKA_SSL_KEYFILE": str(pki.client_key),
        "MODELBUS_KAFKA_SSL_PASSWORD": KEY_PASSWORD,
        "MODELBUS_KAFKA_SSL_CHECK_HOSTNAME": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    loaded = ModelbusSettings()
    assert loaded.kafka_bootstrap_servers == "broker-1:9093"
    assert loaded.kafka_security_protocol == "SASL_SSL"
    assert loaded.kafka_sasl_mechanism == "SCRAM-SHA-512"
    assert loaded.kafka_sasl_username == "svc"
    assert loaded.kafka_sasl_password is not None
    assert loaded.kafka_sasl_password.get_secret_value() == "kafka-s3cret"
    assert loaded.kafka_ssl_cafile == str(pki.ca)
    assert loaded.kafka_ssl_certfile == str(pki.client_cert)
    assert loaded.kafka_ssl_keyfile == str(pki.client_key)
    assert loaded.kafka_ssl_password is not None
    assert loaded.kafka_ssl_password.get_secret_value() == KEY_PASSWORD
    assert loaded.kafka_ssl_check_hostname is False
    # Secrets stay secret when the settings are printed.
    assert "kafka-s3cret" not in repr(loaded) and KEY_PASSWORD not in str(loaded)
    options = connection_options(loaded)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["ssl_context"].verify_mode == ssl.CERT_NONE


def test_ssl_check_hostname_defaults_to_true() -> None:
    assert ModelbusSettings().kafka_ssl_check_hostname is True


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MODELBUS_KAFKA_SECURITY_PROTOCOL", "TLS"),
        ("MODELBUS_KAFKA_SASL_MECHANISM", "GSSAPI"),
        ("MODELBUS_KAFKA_SSL_CHECK_HOSTNAME", "maybe"),
    ],
)
def test_unknown_values_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        ModelbusSettings()
    [error] = caught.value.errors()
    assert error["loc"] == (variable.removeprefix("MODELBUS_").lower(),)
