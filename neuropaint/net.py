"""``HOST:PORT`` as users type it, checked once for every option that takes one (the viewer's
``--serve``, OSC's ``--osc-out`` and ``--osc-in``)."""

from __future__ import annotations

import ipaddress
import re

from neuropaint.validate import NeuropaintError

__all__ = ["split_host_port"]

_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")  # one DNS label


def split_host_port(text: object, option: str, *, example_port: int,
                    min_port: int = 0) -> tuple[str, int]:
    """Split ``HOST:PORT`` into ``(host, port)``; a one-line error naming ``option`` otherwise.

    Accepted: ``127.0.0.1:8765``, ``:8765`` (this machine: 127.0.0.1), ``0.0.0.0:8765``,
    ``localhost:8765``, ``[::1]:8765`` (IPv6 in brackets, returned without them). The host is
    an IP address or a syntactically valid host name (not resolved here); the port is a
    number from ``min_port`` to 65535.
    """
    if not isinstance(text, str):
        raise NeuropaintError(f"{option} must be a string HOST:PORT, got {type(text).__name__}.")
    value = text.strip()
    examples = (f"127.0.0.1:{example_port}, :{example_port}, 0.0.0.0:{example_port} or "
                f"[::1]:{example_port}")

    def bad(why: str) -> NeuropaintError:
        return NeuropaintError(f"{option} must be HOST:PORT such as {examples}; got {text!r}: "
                               f"{why}.")

    if value.startswith("["):
        host, closed, rest = value[1:].partition("]")
        if not closed or not rest.startswith(":"):
            raise bad("an IPv6 address in brackets must be followed by :PORT")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad(f"{host!r} is not an IPv6 address") from None
    else:
        host, colon, port_text = value.rpartition(":")
        if not colon:
            raise bad("no port (write :PORT for this machine only)")
        if ":" in host:
            raise bad(f"an IPv6 address goes in brackets, e.g. [::1]:{example_port}")
        host = host or "127.0.0.1"
        labels = host.rstrip(".").split(".")
        if all(label.isdigit() for label in labels):  # Looks numeric: it must be a real IPv4.
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise bad(f"{host!r} is not an IPv4 address") from None
        elif len(host) > 253 or not all(_LABEL.match(label) for label in labels):
            raise bad(f"{host!r} is not a host name or IP address")
    if not (port_text.isascii() and port_text.isdigit()) or not (
            min_port <= int(port_text) <= 65535):
        raise bad(f"the port must be a number from {min_port} to 65535, not {port_text!r}")
    return host, int(port_text)
