"""Network addresses as rigs, CLIs and ready lines write them: "HOST:PORT" (HOST may be an IP, a name, or a node).

>>> parse_hostport("198.18.2.2:20007"), parse_hostport(":5000"), parse_hostport("terminal", default_port=20007)
(('198.18.2.2', 20007), ('0.0.0.0', 5000), ('terminal', 20007))
"""

from __future__ import annotations


class AddressError(ValueError):
    """Text that is not HOST:PORT; the message names it and shows the form."""


def parse_hostport(text: str, *, default_port: int | None = None, what: str = "address",
                   default_host: str = "0.0.0.0") -> tuple[str, int]:
    """(host, port) from "HOST:PORT" (":PORT" means any address; "HOST" alone takes `default_port`)."""
    raw = str(text).strip()
    host, sep, port = raw.rpartition(":")
    if not sep:
        host, port = raw, "" if default_port is None else str(default_port)
    if not port.isdigit() or not 0 <= int(port) < 65536:
        example = f"127.0.0.1:{default_port or 5000}"
        raise AddressError(f"{what} {text!r}: expected HOST:PORT with a port 0-65535, e.g. {example}")
    return host or default_host, int(port)


def port_of(text: str | None, default: int) -> int:
    """The port of "NODE:PORT" (a rig's `address`), or `default` when it names none."""
    if not text:
        return default
    _, sep, port = str(text).rpartition(":")
    return int(port) if sep and port.isdigit() else default

