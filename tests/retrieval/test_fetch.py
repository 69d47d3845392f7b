"""The Fetcher against a real HTTP server on 127.0.0.1: validators, deadlines, size caps, errors.

Timeouts here are short (a second or less) so the slow-server cases stay cheap; whether the
deadline held is read from what happened (a timeout while bytes kept arriving faster than
any per-read timeout), never from the clock.
"""

from __future__ import annotations

import socket
import tracemalloc
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from retrieval.sources.web import Failure, Fetcher, NotModified, Page
from tests.support.http import StaticServer

FIFTY_MB = 50 << 20


def local(**options: Any) -> Fetcher:
    """A Fetcher allowed to reach the local server (127.0.0.1 is refused by default)."""
    return Fetcher(allow_private=True, **options)


@pytest.fixture
def server() -> Iterator[StaticServer]:
    with StaticServer() as srv:
        yield srv


def fifty_megabytes() -> Iterator[bytes]:
    block = b"<item><title>filler</title></item>" * 1024
    for _ in range(FIFTY_MB // len(block)):
        yield block


def test_page_carries_body_type_and_validators(server: StaticServer) -> None:
    url = server.add("/feed", b"<rss/>", content_type="application/rss+xml; charset=utf-8",
                     etag='"v1"', last_modified="Mon, 03 Jun 2024 08:00:00 GMT")
    got = local().get(url)
    assert got == Page(url, "application/rss+xml", "utf-8", b"<rss/>", etag='"v1"',
                       last_modified="Mon, 03 Jun 2024 08:00:00 GMT")


def test_etag_gives_not_modified(server: StaticServer) -> None:
    url = server.add("/feed", b"<rss/>", etag='"v1"')
    fetcher = local()
    first = fetcher.get(url)
    assert isinstance(first, Page)
    again = fetcher.get(url, etag=first.etag)
    assert again == NotModified(url, '"v1"', None)
    assert server.requests[1].headers["if-none-match"] == '"v1"'
    # The resource changes: the old validator now gets the new body and the new validator.
    server.add("/feed", b"<rss>new</rss>", etag='"v2"')
    changed = fetcher.get(url, etag='"v1"')
    assert isinstance(changed, Page) and changed.body == b"<rss>new</rss>"
    assert changed.etag == '"v2"'


def test_last_modified_gives_not_modified(server: StaticServer) -> None:
    stamp = "Tue, 04 Jun 2024 09:30:00 GMT"
    url = server.add("/feed", b"<rss/>", last_modified=stamp)
    got = local().get(url, etag='"old"', last_modified=stamp)
    # The 304 carried no ETag: the one the caller holds stays the one to store.
    assert got == NotModified(url, '"old"', stamp)
    assert server.requests[0].headers["if-modified-since"] == stamp


def test_no_validators_no_conditional_headers(server: StaticServer) -> None:
    url = server.add("/feed", b"<rss/>", etag='"v1"')
    assert isinstance(local().get(url), Page)
    headers = server.requests[0].headers
    assert "if-none-match" not in headers and "if-modified-since" not in headers


def test_trickling_body_is_cut_off_at_the_deadline(server: StaticServer) -> None:
    # A byte every 0.1 s never lets a per-read timeout of 0.6 s fire; only a deadline can.
    url = server.add("/slow", b"x" * 200, trickle_s=0.1)
    got = local(timeout_s=0.6).get(url)
    assert got == Failure("timed out after 0.6 s")
    assert not got.permanent
    assert 0 < server.sent["/slow"] < 200 + 200  # head sent whole, body cut off early


def test_trickling_headers_are_cut_off_at_the_deadline(server: StaticServer) -> None:
    url = server.add("/slow-head", b"<rss/>", trickle_s=0.1, trickle_head=True)
    assert local(timeout_s=0.6).get(url) == Failure("timed out after 0.6 s")


def test_declared_length_over_the_cap_is_refused_unread(server: StaticServer) -> None:
    url = server.add("/huge", content_type="application/rss+xml", chunks=fifty_megabytes,
                     length=FIFTY_MB)
    assert local(max_bytes=1_000_000).get(url) == Failure("too large (>1 MB)")
    # The client hung up at the headers; only what the socket buffers took was sent.
    assert server.sent.get("/huge", 0) < FIFTY_MB // 2


def test_chunked_body_over_the_cap_is_cut_off(server: StaticServer) -> None:
    url = server.add("/huge", content_type="application/rss+xml", chunks=fifty_megabytes,
                     chunked=True)
    assert local(max_bytes=1_000_000).get(url) == Failure("too large (>1 MB)")
    assert server.sent.get("/huge", 0) < FIFTY_MB // 2


def test_a_body_at_the_cap_is_read(server: StaticServer) -> None:
    url = server.add("/exact", b"y" * 2048, chunked=True)
    got = local(max_bytes=2048).get(url)
    assert isinstance(got, Page) and len(got.body) == 2048


@pytest.mark.parametrize(("status", "permanent"), [(404, True), (410, True), (500, False),
                                                   (403, False), (429, False)])
def test_http_errors(server: StaticServer, status: int, permanent: bool) -> None:
    url = server.add("/x", b"no", status=status)
    assert local().get(url) == Failure(f"HTTP {status}", permanent=permanent, status=status)


def test_retry_after_is_reported(server: StaticServer) -> None:
    url = server.add("/busy", b"busy", status=503, headers={"Retry-After": "120"})
    got = local().get(url)
    assert isinstance(got, Failure) and got.retry_after_s == 120.0 and not got.permanent


def test_connection_refused_is_transient() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    got = local().get(f"http://127.0.0.1:{port}/feed")  # nothing listens there any more
    assert got == Failure("cannot connect to host")


def test_a_host_that_does_not_resolve_is_named_when_private_hosts_are_allowed() -> None:
    """Not taken for a host that refused the connection (the name has no address at all)."""
    assert local().get("http://harbour.invalid/feed") == Failure(
        "cannot resolve harbour.invalid")
    assert Fetcher().get("http://harbour.invalid/feed") == Failure(
        "cannot resolve harbour.invalid")


def test_malformed_urls_are_permanent() -> None:
    assert Fetcher().get("ftp://127.0.0.1/feed") == Failure("not an http(s) URL", permanent=True)
    assert Fetcher().get("http://[::1/feed") == Failure("invalid URL", permanent=True)


def test_redirect_gives_the_final_url(server: StaticServer) -> None:
    target = server.add("/new-home", b"<rss/>")
    url = server.redirect("/old-home", "/new-home", status=308)
    got = local().get(url)
    assert isinstance(got, Page) and got.url == target


def test_redirect_loop(server: StaticServer) -> None:
    server.redirect("/a", "/b")
    url = server.redirect("/b", "/a")
    assert local().get(url) == Failure("too many redirects")


def test_get_many_keeps_order_and_its_budget(server: StaticServer) -> None:
    fast = [server.add(f"/p{i}", f"page {i}") for i in range(5)]
    slow = server.add("/slow", b"x" * 100, trickle_s=0.1)
    got = local(timeout_s=5, concurrency=2).get_many([*fast[:3], slow, *fast[3:]],
                                                      budget_s=1.0)
    assert [g.body for g in got if isinstance(g, Page)] == [f"page {i}".encode()
                                                             for i in range(5)]
    assert got[3] == Failure("not fetched in time")


def test_fetcher_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        Fetcher(timeout_s=0)
    with pytest.raises(ValueError):
        Fetcher(max_bytes=0)


@pytest.mark.parametrize("allow_private", [True, False])
def test_a_port_no_socket_can_have_is_a_failure_not_a_crash(
        server: StaticServer, allow_private: bool) -> None:
    # Typed by an admin, or where a hostile server redirects: httpx passes it to the socket.
    bad = Failure("invalid URL (port out of range)", permanent=True)
    assert Fetcher(allow_private=allow_private).get("http://192.0.2.1:99999/x") == bad
    url = server.redirect("/moved", "http://127.0.0.1:70000/story")
    assert local().get(url) == bad


def _deflated(size: int, wbits: int) -> bytes:
    """``size`` zero bytes compressed with zlib's ``wbits`` (31: gzip, 15: zlib, -15: raw)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(size >> 20)) + packer.flush()


def test_a_compressed_body_is_capped_as_it_is_inflated(server: StaticServer) -> None:
    # 100 MB of zeros in 100 KB of gzip: a body under any cap that inflates a thousandfold.
    url = server.add("/bomb", _deflated(100 << 20, 31), content_type="application/rss+xml",
                     headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        got = local(max_bytes=1_000_000).get(url)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == Failure("too large (>1 MB)")
    # Inflated a network read at a time, one read held 64 MB before the cap was looked at.
    assert peak < 16_000_000


@pytest.mark.parametrize(("coding", "wbits"), [("gzip", 31), ("x-gzip", 31), ("deflate", 15),
                                               ("deflate", -15)])
def test_compressed_bodies_are_read(server: StaticServer, coding: str, wbits: int) -> None:
    text = b"<rss><channel><title>Harbour Herald</title></channel></rss>" * 400
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    url = server.add("/feed", packer.compress(text) + packer.flush(),
                     content_type="application/rss+xml", headers={"Content-Encoding": coding})
    got = local(max_bytes=len(text)).get(url)
    assert isinstance(got, Page) and got.body == text


def test_only_codings_read_within_the_cap_are_asked_for_or_taken(server: StaticServer) -> None:
    # 64 KB of zstd can hold gigabytes that its decoder returns in one piece; a server may
    # send it unasked.
    url = server.add("/zstd", b"(\xb5/\xfd\x00X\x00\x00", content_type="application/rss+xml",
                     headers={"Content-Encoding": "zstd"})
    assert local().get(url) == Failure("unsupported content encoding: zstd")
    assert server.requests[0].headers["accept-encoding"] == "gzip, deflate"
    broken = server.add("/broken", b"not gzip at all", headers={"Content-Encoding": "gzip"})
    assert local().get(broken) == Failure("undecodable response body")
