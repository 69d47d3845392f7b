"""The Fetcher refuses hosts on non-public addresses, on the first URL, on every redirect and
at the connection itself.

The local server listens on 127.0.0.1, itself a refused address. To stand it in for a public
host, the guard is given a policy that allows 127.0.0.1 alone (every other address is judged
as in production) and a resolver that answers 127.0.0.1 for "news.example", a name the
system cannot resolve: reaching the server through it shows the connection goes to the
address that was checked.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from retrieval.sources import Skipped, load_source
from retrieval.sources.web import (
    Failure,
    Fetcher,
    Page,
    _interleaved,
    non_public,
    system_resolver,
)
from tests.support.feeds import Item, article_page, rss, story_paragraphs
from tests.support.http import StaticServer

HINT = "(set NEWSBOT_ALLOW_PRIVATE_URLS=true to allow)"
PUBLIC = "93.184.215.14"  # a public address; never connected to, only checked
LOCAL = "127.0.0.1"  # the local server's address, allowed by ``standing_in``


def standing_in(address: str) -> str | None:
    """The production policy, except that the local server's address counts as public."""
    return None if address == LOCAL else non_public(address)


def table_resolver(names: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    """Resolves the names in ``names`` as given, others as the system does."""
    async def resolve(host: str, port: int) -> list[str]:
        if host in names:
            return names[host]
        return await system_resolver(host, port)

    return resolve


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy set where the tests run would take the fetches past the pinned connection."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def server() -> Iterator[StaticServer]:
    with StaticServer() as srv:
        yield srv


@pytest.mark.parametrize(("url", "what"), [
    ("http://127.0.0.1:9/feed", "127.0.0.1 is a loopback address"),
    ("http://10.0.0.7/feed", "10.0.0.7 is a private address"),
    ("http://192.168.1.20/feed", "192.168.1.20 is a private address"),
    ("http://172.16.4.1/feed", "172.16.4.1 is a private address"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
    ("http://[::1]:8080/feed", "::1 is a loopback address"),
    ("http://[fe80::1]/feed", "fe80::1 is a link-local address"),
    ("http://[::ffff:127.0.0.1]/feed", "::ffff:127.0.0.1 is a loopback address"),
    ("http://224.0.0.251/feed", "224.0.0.251 is a multicast address"),
    ("http://0.0.0.0:80/feed", "0.0.0.0 is an unspecified address"),
    ("http://100.64.0.1/feed", "100.64.0.1 is a non-public address"),
])
def test_non_public_addresses_are_refused(url: str, what: str) -> None:
    assert Fetcher().get(url) == Failure(f"refused: {what} {HINT}", permanent=True)


def test_the_local_server_is_refused_unasked_and_reached_when_allowed(
        server: StaticServer) -> None:
    url = server.add("/feed.xml", b"<rss/>", content_type="application/rss+xml")
    got = Fetcher().get(url)
    assert isinstance(got, Failure) and got.reason.startswith("refused: 127.0.0.1 is a loopback")
    assert server.requests == []  # refused before any connection
    assert isinstance(Fetcher(allow_private=True).get(url), Page)


def test_names_are_checked_by_what_they_resolve_to(server: StaticServer) -> None:
    resolver = table_resolver({"example.internal": ["10.1.2.3"],
                               "mixed.example": [PUBLIC, "192.168.0.9"]})
    fetcher = Fetcher(resolver=resolver)
    assert fetcher.get("https://example.internal/feed") == Failure(
        f"refused: example.internal resolves to a private address {HINT}", permanent=True)
    # One non-public address among public ones is enough: the connection may pick any.
    assert fetcher.get("http://mixed.example/").reason.startswith(  # type: ignore[union-attr]
        "refused: mixed.example resolves to a private address")
    # The system resolver: localhost is loopback.
    url = server.add("/x", "x").replace("127.0.0.1", "localhost")
    assert Fetcher().get(url) == Failure(
        f"refused: localhost resolves to a loopback address {HINT}", permanent=True)
    assert server.requests == []


def test_every_redirect_hop_is_checked(server: StaticServer) -> None:
    fetcher = Fetcher(resolver=table_resolver({"news.example": [LOCAL],
                                               "metadata.internal": ["169.254.169.254"]}),
                      policy=standing_in)
    base = server.base_url.replace(LOCAL, "news.example")
    server.add("/story", "the story")
    server.redirect("/moved", "/story")
    server.redirect("/to-loopback", server.url("/secret").replace(LOCAL, "127.0.0.2"))
    server.redirect("/to-metadata", "http://metadata.internal/latest/meta-data/")
    server.redirect("/to-file", "file:///etc/passwd")
    server.add("/secret", "internal only")

    # A redirect between allowed hosts is followed.
    got = fetcher.get(base + "/moved")
    assert isinstance(got, Page) and got.body == b"the story"
    assert fetcher.get(base + "/to-loopback") == Failure(
        f"refused: 127.0.0.2 is a loopback address {HINT}", permanent=True)
    assert fetcher.get(base + "/to-metadata") == Failure(
        f"refused: metadata.internal resolves to a link-local address {HINT}", permanent=True)
    assert fetcher.get(base + "/to-file") == Failure("not an http(s) URL", permanent=True)
    assert "/secret" not in server.paths()


def test_a_feed_cannot_send_the_bot_to_private_pages(server: StaticServer) -> None:
    base = server.base_url.replace(LOCAL, "news.example")
    teaser = Item(title="Pier reopens after repairs",
                  link=server.url("/internal/admin").replace(LOCAL, "127.0.0.2"),
                  guid="p-1", description="The pier reopened.",
                  pub_date="Mon, 03 Jun 2024 08:00:00 GMT")
    server.add("/feed.xml", rss([teaser]), content_type="application/rss+xml")
    server.add("/internal/admin", article_page("Admin", story_paragraphs(1)))
    fetcher = Fetcher(resolver=table_resolver({"news.example": [LOCAL]}), policy=standing_in)
    items = list(load_source(base + "/feed.xml", fetcher=fetcher))
    # The teaser stays the feed's own text: its page on a loopback address was not fetched.
    assert [i.text for i in items if not isinstance(i, Skipped)] == ["The pier reopened."]
    assert "/internal/admin" not in server.paths()


def test_the_connection_goes_only_to_the_checked_addresses(server: StaticServer) -> None:
    """A name that answers differently from one lookup to the next (DNS rebinding, a TTL of
    zero) is resolved once per connection, and that answer is both checked and used."""
    server.add("/story", "the story")
    answers = [[LOCAL], ["10.9.8.7"]] * 3
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[len(asked) - 1]

    fetcher = Fetcher(resolver=rebinding, policy=standing_in, timeout_s=5)
    url = server.base_url.replace(LOCAL, "news.example") + "/story"
    got = [fetcher.get(url) for _ in range(4)]
    refused = Failure(f"refused: news.example resolves to a private address {HINT}",
                      permanent=True)
    # Never "cannot connect" or a timeout: 10.9.8.7 was refused, not tried.
    assert got[1] == got[3] == refused
    assert isinstance(got[0], Page) and isinstance(got[2], Page)
    assert got[0].body == b"the story"
    assert asked == ["news.example"] * 4
    assert [r.headers.get("host") for r in server.requests] == [
        server.base_url.replace("http://" + LOCAL, "news.example")] * 2


def test_through_a_proxy_the_host_is_checked_before_the_request(
        server: StaticServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The proxy (here the local server) connects, so the guard checks the name before
    # anything is sent to it; an allowed host's request goes to the proxy.
    monkeypatch.setenv("HTTP_PROXY", server.base_url)
    server.add("http://news.example/feed", "via the proxy")
    fetcher = Fetcher(resolver=table_resolver({"example.internal": ["10.1.2.3"],
                                               "news.example": [PUBLIC]}))
    assert fetcher.get("http://example.internal/feed") == Failure(
        f"refused: example.internal resolves to a private address {HINT}", permanent=True)
    assert server.requests == []
    got = fetcher.get("http://news.example/feed")
    assert isinstance(got, Page) and got.body == b"via the proxy"
    assert server.paths() == ["http://news.example/feed"]  # the absolute form a proxy gets


def test_an_address_that_never_answers_costs_a_moment_not_the_timeout(
        server: StaticServer) -> None:
    # A host's first address swallows connections (a full backlog: its SYNs go unanswered,
    # as with IPv6 that silently drops); the next one answers, as happy eyeballs has it.
    silent_address = "127.0.0.9"
    port = int(server.base_url.rsplit(":", 1)[1])
    with contextlib.ExitStack() as stack:
        silent = stack.enter_context(socket.socket())
        silent.bind((silent_address, port))
        silent.listen(0)
        for _ in range(3):  # fill the backlog; later connections hang
            waiting = stack.enter_context(socket.socket())
            waiting.setblocking(False)
            waiting.connect_ex((silent_address, port))
        server.add("/story", "the story")
        fetcher = Fetcher(resolver=table_resolver({"news.example": [silent_address, LOCAL]}),
                          policy=lambda a: None if a in (silent_address, LOCAL) else "private",
                          timeout_s=10)
        got = fetcher.get(server.url("/story").replace(LOCAL, "news.example"))
    assert isinstance(got, Page) and got.body == b"the story"
    assert len(server.requests) == 1


def test_a_name_that_cannot_be_encoded_is_a_failure_not_an_exception() -> None:
    assert Fetcher().get("http://a..b/feed") == Failure("cannot resolve a..b")


def test_tls_is_verified_against_the_name_not_the_address(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A certificate for news.example alone; the connection goes to 127.0.0.1.
    ca = trustme.CA()
    served = ca.issue_cert("news.example")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # httpx's context trusts it
    resolver = table_resolver({"news.example": [LOCAL], "other.example": [LOCAL]})
    with StaticServer(tls=context) as server:
        server.add("/story", "the story")
        port = server.base_url.rsplit(":", 1)[1]
        fetcher = Fetcher(resolver=resolver, policy=standing_in, timeout_s=5)
        got = fetcher.get(f"https://news.example:{port}/story")
        assert isinstance(got, Page) and got.body == b"the story"
        wrong = fetcher.get(f"https://other.example:{port}/story")
        assert isinstance(wrong, Failure)
        assert wrong.reason.startswith("TLS certificate not trusted: Hostname mismatch")


def test_addresses_are_tried_one_of_each_family_first() -> None:
    # As anyio orders them: an IPv4 address does not wait behind every IPv6 one.
    assert _interleaved(["2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.2"]) == [
        "2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2"]
    assert _interleaved(["192.0.2.1", "2001:db8::1"]) == ["2001:db8::1", "192.0.2.1"]
