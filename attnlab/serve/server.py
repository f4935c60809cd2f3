"""Running the explorer on uvicorn: on a socket bound here, in the foreground or in a thread.

Binding the socket ourselves lets port 0 pick a free port and tells us which one before the
first request (tests, benchmarks). Each connection runs ``TimedProtocol``: uvicorn's HTTP/1.1
protocol with a deadline for every part of a request (``Timeouts``), so that a client that
sends slowly, or not at all, cannot hold a connection open.
"""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import threading
import time
from dataclasses import dataclass

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import SecurityHeaders


@dataclass(frozen=True)
class Timeouts:
    """Seconds a client has: to send a request's headers (from its first byte on), its body
    (from the end of the headers on) and, between requests, to begin the next one. When one
    runs out, the server answers 408 if it can and closes the connection."""

    headers: float = 10.0
    body: float = 30.0
    idle: float = 5.0

    def __post_init__(self):
        for name in ("headers", "body", "idle"):
            if not getattr(self, name) > 0:
                raise ValueError(f"the {name} timeout must be > 0 seconds, got {getattr(self, name)}")


def raw_error(status: int, reason: str, message: str) -> bytes:
    """A complete ``{"error": message}`` response that closes the connection, as bytes: for the
    answers the server gives before (or instead of) the app."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close"), *SecurityHeaders.HEADERS]
    head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return f"HTTP/1.1 {status} {reason}\r\n".encode() + head + b"\r\n" + body


class TimedProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with one deadline per phase of a connection: ``idle`` (no
    request begun), ``headers`` (a request begun, its headers incomplete) and ``body`` (headers
    read, the body not yet). A deadline starts when its phase does; bytes that trickle in do
    not move it. While the app answers a request it has read, no deadline runs."""

    def __init__(self, *args, timeouts: Timeouts, **kwargs):
        super().__init__(*args, **kwargs)
        self.timeouts = timeouts
        self._phase: str | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._follow_phase()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_phase()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_phase()

    def connection_lost(self, exc) -> None:
        self._set_timer(None)
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:  # a request h11 cannot parse
        self.transport.write(raw_error(400, "Bad Request", "the request is not valid HTTP/1.1"))
        self.transport.close()

    def _phase_now(self) -> str | None:
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            return "body"
        if state is h11.IDLE:
            return "headers" if self.conn.trailing_data[0] else "idle"
        return None  # the request is read (the app answers it) or the connection is closing

    def _follow_phase(self) -> None:
        phase = self._phase_now()
        if phase != self._phase:
            self._set_timer(phase)

    def _set_timer(self, phase: str | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._phase, self._timer = phase, None
        if phase is not None and not self.transport.is_closing():
            self._timer = self.loop.call_later(getattr(self.timeouts, phase), self._expire, phase)

    def _expire(self, phase: str) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        seconds = f"{getattr(self.timeouts, phase):g} s"
        if phase == "headers":
            self.transport.write(raw_error(408, "Request Timeout", f"the request headers did not arrive within {seconds}"))
        elif phase == "body" and self.cycle is not None and not self.cycle.response_started:
            self.transport.write(raw_error(408, "Request Timeout", f"the request body did not arrive within {seconds}"))
            self.cycle.disconnected = True  # the app, still reading, sees a client that went away
            self.cycle.message_event.set()
        self.transport.close()


def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one (see ``sock.getsockname()``)."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP (not 0): asyncio then turns Nagle's algorithm off on every accepted
    # connection; with it on, a response written as headers + body waits ~40 ms for the
    # client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(app, *, log_level: str = "warning", access_log: bool = False, timeouts: Timeouts = Timeouts()):
    """A uvicorn server for ``app`` whose connections keep to ``timeouts``."""
    import uvicorn

    # uvicorn's annotations ask for a protocol class and whole seconds; it calls ``http`` as a
    # factory (a partial works) and hands the keep-alive seconds to asyncio (any float works)
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, lifespan="off",
                            http=functools.partial(TimedProtocol, timeouts=timeouts),  # type: ignore[arg-type]
                            timeout_keep_alive=timeouts.idle)  # type: ignore[arg-type]
    return uvicorn.Server(config)


class ServerThread:
    """``with ServerThread(app) as url: ...``: uvicorn on 127.0.0.1 and a free port, in a thread."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning",
                 timeouts: Timeouts = Timeouts()):
        self.sock = bind_socket(host, port)
        self.url = url_of(self.sock)
        self.server = make_server(app, log_level=log_level, timeouts=timeouts)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, timeout: float = 10.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.01)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
