"""Azure Event Hubs connection strings: parsed and checked against the bootstrap servers (no I/O).

    Endpoint=sb://NAMESPACE.servicebus.windows.net/;SharedAccessKeyName=NAME;SharedAccessKey=KEY
    [;EntityPath=EVENT_HUB]

Errors name the part that is wrong and never repeat the key or the string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

AZURE_SUFFIX = ".servicebus.windows.net"
EVENT_HUBS_PORT = 9093
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_REQUIRED = ("Endpoint", "SharedAccessKeyName", "SharedAccessKey")


class ConnectionStringError(ValueError):
    """The connection string cannot be used; the message names the part and never the key."""


@dataclass(frozen=True)
class ConnectionString:
    """The parts of an Event Hubs connection string; the key is left out of the repr."""

    endpoint: str
    host: str
    key_name: str
    key: str = field(repr=False)
    entity_path: str | None = None

    @property
    def is_azure(self) -> bool:
        return self.host.endswith(AZURE_SUFFIX)

    @property
    def namespace(self) -> str:
        return self.host.removesuffix(AZURE_SUFFIX)


def parse_connection_string(text: str) -> ConnectionString:
    """Parse `Key=Value;...` (key names case-insensitive, values kept as given)."""
    parts: dict[str, str] = {}
    for item in text.strip().split(";"):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise ConnectionStringError(
                f"a part without '=' (part {len(parts) + 1}); expected Name=Value pairs"
                " separated by ';'"
            )
        parts[_canonical(name.strip())] = value.strip()
    missing = [name for name in _REQUIRED if not parts.get(name)]
    if missing:
        raise ConnectionStringError(f"missing {', '.join(missing)}")
    return ConnectionString(
        endpoint=parts["Endpoint"],
        host=_endpoint_host(parts["Endpoint"]),
        key_name=parts["SharedAccessKeyName"],
        key=parts["SharedAccessKey"],
        entity_path=parts.get("EntityPath") or None,
    )


def bootstrap_mismatches(conn: ConnectionString, bootstrap_servers: str) -> list[str]:
    """Why KAFKA_BOOTSTRAP_SERVERS does not lead to the connection string's namespace, if so.

    Azure: every server must be the Endpoint's host on port 9093. A local look-alike
    (Endpoint=sb://localhost/) matches a server of the same host or any loopback address.
    """
    problems = []
    for server in split_servers(bootstrap_servers):
        host, port = split_host_port(server)
        if not _same_host(conn.host, host):
            problems.append(f"{server} is not the Endpoint's host {conn.host}")
        elif conn.is_azure and port != EVENT_HUBS_PORT:
            problems.append(f"{server}: Event Hubs' Kafka endpoint listens on {EVENT_HUBS_PORT}")
    return problems


def split_servers(bootstrap_servers: str) -> list[str]:
    return [s.strip() for s in bootstrap_servers.split(",") if s.strip()]


def split_host_port(server: str) -> tuple[str, int | None]:
    """("host", port) from "host:port" or "[v6]:port"; port None when absent or not a number."""
    host, sep, port = server.rpartition(":")
    if not sep:
        return server, None
    host = host.strip("[]")
    return host, int(port) if port.isdigit() else None


def _same_host(endpoint_host: str, server_host: str) -> bool:
    if endpoint_host.lower() == server_host.lower():
        return True
    return endpoint_host.lower() == "localhost" and server_host.lower() in LOOPBACK


def _endpoint_host(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme != "sb" or not parts.hostname:
        raise ConnectionStringError(
            "Endpoint must look like sb://NAMESPACE.servicebus.windows.net/"
        )
    return parts.hostname


def _canonical(name: str) -> str:
    known = {n.lower(): n for n in (*_REQUIRED, "EntityPath")}
    return known.get(name.lower(), name)
