"""``-X key=value``: kcat's and librdkafka's property names onto modelbus's Kafka settings,
and from there onto aiokafka's options; any other name is refused with the closest one."""

from __future__ import annotations

import pytest

from modelbus_contract.settings import ModelbusSettings
from modelbus_delivery.kafka_config import connection_options
from modelbus_delivery.kafka_properties import (
    PROPERTIES,
    PropertyError,
    property_settings,
    split_property,
)


def test_key_value_splits_at_the_first_equals_sign() -> None:
    assert split_property("sasl.password=a=b") == ("sasl.password", "a=b")
    assert split_property("client.id=") == ("client.id", "")
    for bad in ("security.protocol", "=SSL", ""):
        with pytest.raises(PropertyError, match="is not KEY=VALUE"):
            split_property(bad)


def test_properties_set_the_kafka_settings_as_the_settings_read_them() -> None:
    assert property_settings([
        ("bootstrap.servers", "b1:9093,b2:9093"),
        ("security.protocol", "sasl_ssl"),
        ("sasl.mechanisms", "scram-sha-512"),
        ("sasl.username", "svc"),
        ("sasl.password", "s3cret"),
        ("ssl.ca.location", "/etc/ca.pem"),
        ("ssl.endpoint.identification.algorithm", "none"),
        ("client.id", "nightly-scoring"),
        ("request.timeout.ms", "60000"),
    ]) == {
        "kafka_bootstrap_servers": ("bootstrap.servers", "b1:9093,b2:9093"),
        "kafka_security_protocol": ("security.protocol", "SASL_SSL"),
        "kafka_sasl_mechanism": ("sasl.mechanisms", "SCRAM-SHA-512"),
        "kafka_sasl_username": ("sasl.username", "svc"),
        "kafka_sasl_password": ("sasl.password", "s3cret"),
        "kafka_ssl_cafile": ("ssl.ca.location", "/etc/ca.pem"),
        "kafka_ssl_check_hostname": ("ssl.endpoint.identification.algorithm", "false"),
        "kafka_client_id": ("client.id", "nightly-scoring"),
        "kafka_request_timeout_ms": ("request.timeout.ms", "60000"),
    }


def test_the_later_of_two_properties_of_one_setting_wins() -> None:
    assert property_settings([("sasl.mechanism", "plain"), ("sasl.mechanisms", "scram-sha-256")]) \
        == {"kafka_sasl_mechanism": ("sasl.mechanisms", "SCRAM-SHA-256")}


def test_an_unknown_property_is_refused_with_the_closest_known_one() -> None:
    with pytest.raises(PropertyError) as caught:
        property_settings([("ssl.ca.locaton", "/etc/ca.pem")])
    assert str(caught.value) == (
        "ssl.ca.locaton: not a Kafka client property modelbus can set "
        "(did you mean ssl.ca.location?)"
    )
    with pytest.raises(PropertyError, match=r"^linger\.ms: .*\(known: bootstrap\.servers, "):
        property_settings([("linger.ms", "5")])


def test_host_name_checking_is_https_or_none() -> None:
    assert property_settings([("ssl.endpoint.identification.algorithm", "HTTPS")]) == {
        "kafka_ssl_check_hostname": ("ssl.endpoint.identification.algorithm", "true")
    }
    with pytest.raises(PropertyError, match="is not https or none"):
        property_settings([("ssl.endpoint.identification.algorithm", "dns")])


def test_every_property_names_a_setting() -> None:
    assert {p.setting for p in PROPERTIES.values()} <= set(ModelbusSettings.model_fields)


def test_client_id_and_request_timeout_reach_every_kafka_client() -> None:
    values = {setting: value for setting, (_, value) in property_settings(
        [("client.id", "nightly"), ("request.timeout.ms", "60000")]
    ).items()}
    options = connection_options(ModelbusSettings(**values))
    assert options["client_id"] == "nightly" and options["request_timeout_ms"] == 60000
    assert "client_id" not in connection_options(ModelbusSettings())
