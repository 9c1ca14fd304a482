"""Who may ask the web viewer: the Host check against DNS rebinding, and the token of network binds.

Two ways in, two locks:

- **DNS rebinding.** A web page anywhere can point its own name (``evil.example``) at
  127.0.0.1 after loading; the browser then treats the viewer as that page's origin and lets
  its script read ``/status.json`` (band powers, instrument state) and the painting. The
  browser still sends ``Host: evil.example``, so the viewer answers only to the names that
  are its own (the defence of Jupyter's and webpack-dev-server's "allowed hosts"): on a
  loopback bind ``localhost``, ``127.0.0.1`` and ``[::1]``; on a network bind any IP literal
  (an IP cannot be rebound), ``localhost``, this machine's host name (``studio-pc``,
  ``studio-pc.local``); in both cases the names given with ``allowed_hosts``
  (``--allow-host``). With or without the port. Anything else: 403.
- **Anyone on the network.** A viewer bound to a network address (``0.0.0.0``, a LAN IP,
  ``::``) needs a token: given, or made with :func:`secrets.token_urlsafe` and put in the URL
  the viewer prints (``?token=...``). A request carries it as the query ``token=``, as the
  cookie the page sets on its first authenticated load (``HttpOnly; SameSite=Strict``, one
  per port), or as ``Authorization: Bearer``; compared with :func:`secrets.compare_digest`.
  Without it: 401. On loopback no token is needed unless one is given.

Library code (:mod:`live.viewer` uses it); the viewer's docstring says what each route exposes.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import socket
import threading
from collections.abc import Mapping, Sequence
from http.cookies import CookieError, SimpleCookie

from neuropaint.validate import NeuropaintError

logger = logging.getLogger("live.viewer")  # One logger for everything the viewer says.

__all__ = ["LOOPBACK_HOSTS", "Guard", "check_allowed_hosts", "check_token", "host_name",
           "is_loopback", "new_token"]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")  # What a loopback bind answers to.
_TOKEN = re.compile(r"^[A-Za-z0-9._~-]{1,256}$")  # URL-safe: it goes in a query and a cookie.
_SHORT_TOKEN = 16  # Shorter tokens work but can be guessed: a warning says so.
# One DNS label: letters, digits and inner hyphens (RFC 1123).
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_MAX_LOGGED = 256  # Distinct refused hosts / clients logged; a flood of names logs no more.


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or a name, IPv6 with or without brackets) is this
    machine only: a loopback address, ``localhost``, or a name resolving only to loopback."""
    name = str(host).strip().removeprefix("[").removesuffix("]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback.
        return True
    try:
        address = ipaddress.ip_address(name.partition("%")[0])  # Without an IPv6 zone.
    except ValueError:
        pass
    else:
        mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is loopback too.
        return (mapped or address).is_loopback
    if not name:
        return False
    try:
        infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(is_loopback(info[4][0]) for info in infos)


def new_token() -> str:
    """A fresh token: 128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


def check_token(token: object) -> str | None:
    """``token`` if it can be a viewer token (None stays None), else a one-line error."""
    if token is None:
        return None
    if not isinstance(token, str) or not _TOKEN.match(token):
        shown = repr(token) if isinstance(token, str) else type(token).__name__
        raise NeuropaintError(f"'token' must be 1 to 256 letters, digits or '-', '_', '.', "
                              f"'~' (it goes in the URL), got {shown}.")
    if len(token) < _SHORT_TOKEN:
        logger.warning("the viewer token has %d characters: someone on the network could "
                       "guess it; leave --token out to get a random one.", len(token))
    return token


def check_allowed_hosts(names: Sequence[str] | None) -> tuple[str, ...]:
    """The ``allowed_hosts`` as lower-case names without a trailing dot (None: none), or a
    one-line error."""
    if names is None:
        return ()
    if isinstance(names, str):
        names = [names]
    out = []
    for name in names:
        if not isinstance(name, str):
            raise NeuropaintError(f"'allowed_hosts' must be host names, got "
                                  f"{type(name).__name__}.")
        clean = name.strip().rstrip(".").lower()
        labels = clean.split(".")
        if len(clean) > 253 or not all(_LABEL.match(label) for label in labels):
            try:
                clean = str(ipaddress.ip_address(clean.removeprefix("[").removesuffix("]")))
            except ValueError:
                raise NeuropaintError(f"'allowed_hosts' must be host names such as "
                                      f"studio-pc.local (no port, no scheme), got {name!r}."
                                      ) from None
        out.append(clean)
    return tuple(dict.fromkeys(out))


def host_name(header: str | None) -> str | None:
    """The name of a ``Host`` header, lower-case, without port and trailing dot, IPv6 without
    brackets; None when missing or malformed."""
    if header is None:
        return None
    value = header.strip().lower()
    if value.startswith("["):
        name, closed, rest = value[1:].partition("]")
        if not closed or (rest and not _is_port(rest)):
            return None
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
        return name
    name, colon, port = value.rpartition(":")
    if not colon:
        name = value
    elif not _is_port(":" + port) or ":" in name:  # A bare IPv6 address is not a Host.
        return None
    name = name.rstrip(".")
    return name or None


def _is_port(text: str) -> bool:
    """``:`` followed by nothing or digits (RFC 9110 allows an empty port)."""
    return text.startswith(":") and (text == ":" or (text[1:].isascii() and
                                                     text[1:].isdigit()))


def _machine_names() -> set[str]:
    """This machine's names as a browser on the LAN may write them (no DNS lookups: those
    can stall for seconds on a machine without DNS)."""
    host = socket.gethostname().lower().rstrip(".")
    short = host.partition(".")[0]
    return {name for name in (host, short, f"{short}.local") if name}


class Guard:
    """Decides, per request, whether the Host is the viewer's own and the token is right.

    Parameters
    ----------
    loopback : bool
        The viewer is bound to a loopback address only.
    bound : str
        The bound address (``127.0.0.1``, ``0.0.0.0``, ``::1``...).
    port : int
        The bound port: it names the token cookie, as cookies do not tell ports apart.
    token : str or None
        The token every request must carry; None: none needed.
    allowed_hosts : sequence of str
        More names to answer to (checked with :func:`check_allowed_hosts`).
    """

    def __init__(self, *, loopback: bool, bound: str, port: int, token: str | None,
                 allowed_hosts: Sequence[str] = ()) -> None:
        self.loopback = loopback
        self.token = token
        self.cookie_name = f"neuropaint_token_{port}"
        names = set(LOOPBACK_HOSTS) | set(check_allowed_hosts(allowed_hosts))
        if loopback:
            names.add(bound.lower())
        else:
            names |= _machine_names()
        self.names = frozenset(names)
        self._token_bytes = None if token is None else token.encode()
        self._lock = threading.Lock()
        self._refused_hosts: set[str] = set()
        self._refused_clients: set[str] = set()

    def host_allowed(self, header: str | None) -> bool:
        """True when ``header`` (the request's ``Host``) names this viewer; logs each
        distinct refused value once."""
        name = host_name(header)
        if name is not None:
            if name in self.names:
                return True
            if not self.loopback:
                try:
                    ipaddress.ip_address(name)
                    return True  # An IP literal cannot be rebound to another machine.
                except ValueError:
                    pass
        self._log_once(self._refused_hosts, repr(header)[:120],
                       "viewer: refused a request for host %s (only its own names are "
                       "answered, against DNS rebinding; --allow-host NAME adds one)")
        return False

    def authorized(self, query: Mapping[str, Sequence[str]], headers: Mapping[str, str],
                   client: str) -> bool:
        """True when no token is needed or the request carries it (query ``token``,
        this viewer's cookie, or ``Authorization: Bearer``)."""
        if self._token_bytes is None:
            return True
        offered = list(query.get("token", ()))[:1]
        cookie = _cookie(headers.get("Cookie"), self.cookie_name)
        if cookie is not None:
            offered.append(cookie)
        scheme, _, credentials = (headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() == "bearer":
            offered.append(credentials.strip())
        # compare_digest on bytes: a str with non-ASCII characters would raise.
        if any(secrets.compare_digest(value.encode(errors="replace"), self._token_bytes)
               for value in offered):
            return True
        self._log_once(self._refused_clients, client,
                       "viewer: refused %s without the right token (open the URL the viewer "
                       "printed, with ?token=...)", level=logging.INFO)
        return False

    def set_cookie(self) -> str:
        """The ``Set-Cookie`` value that lets a browser's later requests carry the token."""
        return f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"

    def _log_once(self, seen: set[str], key: str, message: str,
                  level: int = logging.WARNING) -> None:
        with self._lock:
            if key in seen or len(seen) >= _MAX_LOGGED:
                return
            seen.add(key)
        logger.log(level, message, key)


def _cookie(header: str | None, name: str) -> str | None:
    if not header:
        return None
    jar = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return None if morsel is None else morsel.value
