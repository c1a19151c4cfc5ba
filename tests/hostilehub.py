"""A hostile fake Hub: the loopback fake Hub with answers the tests rewrite (crafted ids, paths, sizes, encodings and
slow or endless bodies), to prove what hfmem does with whatever an endpoint sends.

    hub = HostileHub().start()
    hub.add_repo(repo)
    hub.tamper("info", lambda call, reply: json_reply({"sha": "../../x", ...}))

A tamper is (route, path part, function of the request and the honest reply); the first that matches answers.
Bodies are generated as they are sent, so a gigabyte answer costs the test no memory.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

from .fakehub import FakeHub, _Call, _json, _Reply

Tamper = Callable[[_Call, _Reply], _Reply]
GiB = 2**30
ENDLESS = 2**50  # a Content-Length no client will ever reach


class HostileHub(FakeHub):
    def __init__(self) -> None:
        super().__init__()
        self.tampers: list[tuple[str, str, Tamper]] = []

    def tamper(self, route: str, answer: Tamper, *, path: str = "") -> None:
        """Answer requests of `route` whose URL path contains `path` with `answer(call, honest_reply)`."""
        self.tampers.append((route, path, answer))

    def reset(self) -> None:
        super().reset()
        self.tampers.clear()

    def _route(self, call: _Call) -> tuple[str | None, _Reply]:
        route, reply = super()._route(call)
        for tampered, path, answer in self.tampers:
            if tampered == route and path in call.path:
                return route, answer(call, reply)
        return route, reply


def json_reply(obj: Any) -> _Reply:
    return _json(obj)


def raw_reply(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, {"Content-Type": "application/json", **(headers or {})}, [body], len(body))


def endless(chunk: bytes = b" " * 65536, *, headers: dict[str, str] | None = None) -> _Reply:
    """A body that never ends (it claims 2^50 bytes and keeps sending `chunk`)."""

    def body() -> Iterator[bytes]:
        while True:
            yield chunk

    return _Reply(200, {"Content-Type": "application/json", **(headers or {})}, body(), ENDLESS)


def slow(body: bytes, per_byte: float) -> _Reply:
    """`body`, one byte every `per_byte` seconds (each byte resets a read timeout)."""

    def trickle() -> Iterator[bytes]:
        for i in range(len(body)):
            time.sleep(per_byte)
            yield body[i : i + 1]

    return _Reply(200, {"Content-Type": "application/json"}, trickle(), len(body))


@cache
def gzip_bomb(decoded_bytes: int = 256 * 2**20) -> bytes:
    """`decoded_bytes` of spaces, gzip-compressed (about 1,000 : 1)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1 << 20)
    parts = [packer.compress(block) for _ in range(decoded_bytes // len(block))]
    return b"".join(parts) + packer.flush()


def bomb_reply() -> _Reply:
    body = gzip_bomb()
    return _Reply(200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, [body], len(body))


def streamed_json(head: bytes, item: Callable[[int], bytes], count: int, tail: bytes) -> _Reply:
    """`head item(0),item(1),... tail`, generated while sent: a JSON document of any size."""

    def body() -> Iterator[bytes]:
        yield head
        for i in range(count):
            yield (b"," if i else b"") + item(i)
        yield tail

    return _Reply(200, {"Content-Type": "application/json"}, body(), ENDLESS)
