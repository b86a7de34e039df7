"""Which ``Host`` headers the sandbox answers: loopback names only (DNS rebinding).

A web page the user opens can make the browser send requests to any name its author
controls; after that name is re-pointed at 127.0.0.1 ("DNS rebinding"), the page could
read and change the sandbox, whose ``/_sandbox`` routes need no token. Such a request
still names the author's host in its ``Host`` header, so answering only requests that
name a loopback host closes it, for the API routes and the control routes alike.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def host_name(header: str) -> str | None:
    """The host part of a ``Host`` header (port removed, brackets of IPv6 removed), or None
    when it is not shaped like one."""
    header = header.strip().lower()
    if header.startswith("["):
        host, bracket, rest = header[1:].partition("]")
        if not bracket or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return None
        return host
    host, colon, port = header.partition(":")
    if colon and not port.isdigit():
        return None  # an IPv6 address without brackets, or garbage
    return host.removesuffix(".")


def host_allowed(header: str | None, *, any_ip: bool = False) -> bool:
    """True for ``localhost`` and loopback addresses; with ``any_ip`` (a sandbox listening
    beyond loopback) also for any IP address, which no DNS trick can stand for."""
    host = host_name(header) if header else None
    if not host:
        return False
    if host == "localhost":
        return True
    address = _ip(host)
    return address is not None and (address.is_loopback or any_ip)


def loopback_hosts_only(*, any_ip: bool = False) -> Middleware:
    """An aiohttp middleware answering 421 to a request whose Host is not allowed."""

    @web.middleware
    async def check_host(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not host_allowed(request.headers.get("Host"), any_ip=any_ip):
            allowed = "localhost or a loopback address" + (" or an IP address" if any_ip else "")
            body = {"error": True, "code": "MISDIRECTED_REQUEST",
                    "message": f"this sandbox answers only requests addressed to {allowed} "
                               "(the Host header); refused against DNS rebinding"}
            return web.Response(status=421, text=json.dumps(body),
                                content_type="application/json")
        return await handler(request)

    return check_host
