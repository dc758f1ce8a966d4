"""Event Hubs connection strings: parsed into their parts, checked against the bootstrap servers."""

from __future__ import annotations

import pytest

from coderunner.event_hubs import (
    ConnectionStringError,
    bootstrap_mismatches,
    parse_connection_string,
)

KEY = "c2VjcmV0LWtleS12YWx1ZQ=="  # base64: ends with '=', which must survive parsing
AZURE = (
    "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
    f"SharedAccessKey={KEY}"
)


def test_parses_the_parts_of_an_azure_string() -> None:
    conn = parse_connection_string(AZURE)
    assert conn.host == "acme.servicebus.windows.net"
    assert conn.namespace == "acme"
    assert conn.is_azure
    assert conn.key_name == "RootManageSharedAccessKey"
    assert conn.key == KEY
    assert conn.entity_path is None


def test_entity_path_trailing_semicolon_and_key_case_are_accepted() -> None:
    conn = parse_connection_string(AZURE.replace("Endpoint", "endpoint") + ";EntityPath=hub;")
    assert conn.entity_path == "hub"
    assert conn.host == "acme.servicebus.windows.net"


def test_the_key_is_not_in_the_repr() -> None:
    assert KEY not in repr(parse_connection_string(AZURE))


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "Endpoint"),
        ("Endpoint=sb://acme.servicebus.windows.net/", "SharedAccessKeyName, SharedAccessKey"),
        (AZURE.replace(f"SharedAccessKey={KEY}", "SharedAccessKey="), "SharedAccessKey"),
        (AZURE.replace("sb://", "https://"), "sb://"),
        (AZURE + ";garbage", "without '='"),
    ],
)
def test_a_bad_string_names_the_part_and_never_the_key(text: str, names: str) -> None:
    with pytest.raises(ConnectionStringError) as caught:
        parse_connection_string(text)
    assert names in str(caught.value)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    "servers", ["acme.servicebus.windows.net:9093", "ACME.servicebus.windows.net:9093"]
)
def test_bootstrap_on_the_namespace_port_9093_matches(servers: str) -> None:
    assert bootstrap_mismatches(parse_connection_string(AZURE), servers) == []


def test_bootstrap_of_another_namespace_or_port_is_reported() -> None:
    conn = parse_connection_string(AZURE)
    problems = bootstrap_mismatches(
        conn, "other.servicebus.windows.net:9093, acme.servicebus.windows.net:9092"
    )
    assert len(problems) == 2
    assert "not the Endpoint's host acme.servicebus.windows.net" in problems[0]
    assert "9093" in problems[1]


@pytest.mark.parametrize("servers", ["127.0.0.1:9093", "localhost:9093", "[::1]:9093"])
def test_a_local_look_alike_endpoint_matches_loopback(servers: str) -> None:
    local = parse_connection_string(AZURE.replace("acme.servicebus.windows.net", "localhost"))
    assert bootstrap_mismatches(local, servers) == []
    assert bootstrap_mismatches(local, "10.0.0.5:9093") != []
