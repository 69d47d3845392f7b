"""Fetching over HTTP, and turning HTML (whole pages or feed fragments) into article text.

:class:`Fetcher` is the one way newsbot reads a remote source. Every fetch is bounded:

- a deadline over the whole exchange (connect, redirects, headers, body), so a server that
  trickles a byte every few seconds cannot hold a caller longer than ``timeout_s``. httpx's
  own timeouts apply per network operation, so the deadline is enforced with
  ``asyncio.timeout`` around an async request (the sync API runs it in a private event loop);
- a size cap: a declared Content-Length over ``max_bytes`` is refused before the body is
  read, and the streamed body is cut off as soon as it passes the cap. A gzip or deflate
  body is inflated a bounded piece at a time, so one that expands a thousandfold stops at
  the cap too; other codings (zstd, br) are not asked for and refused when sent;
- an address guard: only http(s), and only hosts whose every address is public. Loopback,
  private, link-local (cloud metadata), multicast and reserved addresses are refused before
  any request is sent, on the first URL and on every redirect hop, unless the Fetcher is
  built with ``allow_private=True`` (NEWSBOT_ALLOW_PRIVATE_URLS, for feeds on a LAN). The
  connection itself resolves the name once more, checks those addresses too and connects
  only to them (TLS still verifies the name), so a name that answers differently between
  the check and the connect (DNS rebinding) reaches nothing it must not. With a proxy named
  in the environment (HTTP(S)_PROXY, ALL_PROXY) httpx's own transport is used, for the
  proxied requests and any it sends directly (NO_PROXY): the host is checked before each
  request instead, and a rebinding name is not caught there.

Results are values, never exceptions::

    fetcher = Fetcher(timeout_s=settings.fetch_timeout_s, max_bytes=settings.max_feed_bytes)
    got = fetcher.get(url, etag=stored_etag, last_modified=stored_last_modified)
    match got:
        case Page():        # 2xx: got.body, got.content_type, got.etag, got.last_modified
        case NotModified(): # 304: keep what you have; got.etag/last_modified to store
        case Failure():     # got.reason ("HTTP 404", "timed out after 15 s", ...),
                            # got.permanent (404/410, a malformed URL), got.retry_after_s

A Fetcher holds only settings and is safe to share between threads. Its methods block and
must not be called on a thread that runs an event loop: from async code, call them through
``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
import threading
import time
import urllib.request
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import anyio
import httpcore
import httpx
import lxml.html
import trafilatura
from lxml import etree
from trafilatura.settings import Document

from retrieval.articles import Article, ArticleError, build_article, canonical_url
from retrieval.sources import Skipped

USER_AGENT = "newsbot/0.1 (+https://github.com/newsbot)"
DEFAULT_TIMEOUT_S = 15.0
DEFAULT_MAX_BYTES = 10_000_000  # as NEWSBOT_MAX_FEED_BYTES
DEFAULT_CONCURRENCY = 4  # pages fetched at once by get_many: polite to one host, still quick
MAX_REDIRECTS = 10
# As anyio's connect_tcp: the next of a host's addresses is tried after this many seconds.
HAPPY_EYEBALLS_DELAY = 0.25
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's defaults

# Shorter than a couple of sentences is a menu or a cookie notice, not a story.
MIN_PAGE_TEXT = 80
NO_ARTICLE = "an HTML page with no article text"

# A missing page stays missing; anything else (5xx, 429, 403, timeouts) may pass.
_PERMANENT_STATUSES = (404, 410)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml")
_ACCEPT = ("application/rss+xml, application/atom+xml, application/xml;q=0.9, "
           "text/html;q=0.9, */*;q=0.5")
# Content codings inflated here, a bounded piece at a time. httpx's own decoders inflate
# each network read whole (64 KB of gzip is 64 MB, of zstd gigabytes) before the size cap
# can look at it, so they are not used: no other coding is asked for, and one a server
# sends unasked is refused.
_ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
_INFLATE_STEP = 1 << 16  # bytes inflated at a time
# Elements whose text a reader never sees.
_INVISIBLE_TAGS = ("script", "style", "noscript", "template", "head")
# Elements that start a new paragraph (or line) when HTML is flattened to text.
_BLOCK_TAGS = ("p", "div", "section", "article", "aside", "header", "footer", "blockquote", "pre",
               "ul", "ol", "li", "dl", "dt", "dd", "table", "tr", "figure", "figcaption",
               "h1", "h2", "h3", "h4", "h5", "h6", "hr")
# htmldate gives only the day by default; the time helps order same-day stories. Its
# extensive search takes any date in the text for the page's (a copyright year, the day's
# date in a site's header, so often the day it was fetched): only the page's markup and
# bylines are read, and a page that states no date stays undated.
_DATE_PARAMS = {"outputformat": "%Y-%m-%dT%H:%M:%S%z", "original_date": True,
                "extensive_search": False}


@dataclass(frozen=True)
class Page:
    """A successful (2xx) response, read whole."""

    url: str
    """The final URL, after redirects."""
    content_type: str
    """The media type only, lower-case ("" when the server sent none)."""
    charset: str | None
    body: bytes
    etag: str | None = None
    """The response's validators, to send back on the next fetch of the same URL."""
    last_modified: str | None = None

    @property
    def is_html(self) -> bool:
        return self.content_type in _HTML_TYPES or not self.content_type


@dataclass(frozen=True)
class NotModified:
    """A 304: the resource is unchanged since the validators sent.

    ``etag`` and ``last_modified`` are what to store now: the response's own when it sent
    any, else the ones the request carried.
    """

    url: str
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True)
class Failure:
    """Why a fetch (or the parsing of what it fetched) gave nothing usable."""

    reason: str
    """One short line: "HTTP 404", "timed out after 15 s", "too large (>10 MB)"."""
    permanent: bool = False
    """True when asking again cannot help (HTTP 404 or 410, a malformed URL)."""
    status: int | None = None
    """The HTTP status, when a response arrived."""
    retry_after_s: float | None = None
    """The server's Retry-After (on a 429 or 503), in seconds."""

    def __str__(self) -> str:
        return self.reason


Fetched = Page | NotModified | Failure


def _size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Gives the addresses a host name resolves to (host, port) -> ["93.184.215.14", ...]."""
AddressPolicy = Callable[[str], str | None]
"""What keeps an address out of reach ("loopback", "private", ...), or None to allow it."""

ALLOW_PRIVATE_HINT = "(set NEWSBOT_ALLOW_PRIVATE_URLS=true to allow)"


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (what the connection itself will use)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def non_public(address: str) -> str | None:
    """What keeps ``address`` off the public internet ("loopback", "private", ...), or None."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "unparsable"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1
    for kind, flag in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                       ("multicast", ip.is_multicast), ("unspecified", ip.is_unspecified),
                       ("private", ip.is_private), ("reserved", ip.is_reserved)):
        if flag:
            return kind
    # is_global also excludes shared (carrier-grade NAT) space, which is not "private".
    return None if ip.is_global else "non-public"


class _Blocked(Exception):
    """Raised from the request hook or the connection to stop a fetch; carries the Failure."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


class _Inflater:
    """Inflates a gzip or deflate body at most :data:`_INFLATE_STEP` bytes at a time, so a
    body that expands a thousandfold is stopped at the cap, not after it is held whole.

    "deflate" is the zlib format by the standard, raw deflate from some servers: as httpx
    does, raw is tried when the first bytes are not zlib. Concatenated gzip members are read
    one after the other.
    """

    def __init__(self, coding: str) -> None:
        self._wbits = _WBITS[coding]
        self._raw_ok = coding == "deflate"
        self._started = False
        self._inflater = zlib.decompressobj(self._wbits)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The inflated pieces of ``data``; raises zlib.error on a malformed body."""
        while data:
            try:
                out = self._inflater.decompress(data, _INFLATE_STEP)
            except zlib.error:
                if self._started or not self._raw_ok:
                    raise
                self._raw_ok = False
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            self._started = True
            if out:
                yield out
            if self._inflater.eof:
                # Another gzip member may follow; anything after a deflate stream is junk.
                data = self._inflater.unused_data if self._wbits & 16 else b""
                if data:
                    self._inflater = zlib.decompressobj(self._wbits)
            else:
                data = self._inflater.unconsumed_tail

    def end(self) -> bytes:
        """What is left once the body has ended; raises zlib.error when it was cut short."""
        if self._started and not self._inflater.eof:
            raise zlib.error("the compressed body ended early")
        return self._inflater.flush()


async def _check_port(request: httpx.Request) -> None:
    """Stop a URL (or a redirect's) whose port no socket can have: httpx lets it through
    and the connection fails with an error of its own rather than one httpx reports."""
    if not 0 < (request.url.port or 80) <= 65535:
        raise _Blocked(Failure("invalid URL (port out of range)", permanent=True))


async def _checked_addresses(host: str, port: int, resolver: Resolver,
                             policy: AddressPolicy) -> list[str]:
    """``host``'s addresses if ``policy`` allows every one of them; else raises _Blocked."""
    try:
        addresses = [str(ipaddress.ip_address(host))]
        literal = True
    except ValueError:
        literal = False
        try:
            addresses = await resolver(host, port)
        except (OSError, UnicodeError):  # UnicodeError: a name IDNA cannot encode ("a..b")
            raise _Blocked(Failure(f"cannot resolve {host}")) from None
    if not addresses:
        raise _Blocked(Failure(f"cannot resolve {host}"))
    for address in addresses:
        kind = policy(address)
        if kind is not None:
            article = "an" if kind[0] in "aeiou" else "a"
            where = f"{host} is" if literal else f"{host} resolves to"
            raise _Blocked(Failure(f"refused: {where} {article} {kind} address "
                                   f"{ALLOW_PRIVATE_HINT}", permanent=True))
    return addresses


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Opens connections only to addresses the policy allows, resolved at connect time.

    httpcore would resolve the name itself; resolving it here and connecting to those very
    addresses leaves no second answer for a rebinding name to change. TLS is unaffected:
    httpcore verifies the certificate against the request's host, not the address.
    """

    def __init__(self, resolver: Resolver, policy: AddressPolicy) -> None:
        self._resolver = resolver
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        """A connection to the first of the host's addresses to answer.

        As anyio does for a name (happy eyeballs, RFC 6555): each address gets an attempt,
        the next one starting when the last fails or after :data:`HAPPY_EYEBALLS_DELAY`, so
        an address that never answers (IPv6 that silently drops) costs a quarter of a
        second, not the whole timeout."""
        addresses = await _checked_addresses(host, port, self._resolver, self._policy)
        connected: httpcore.AsyncNetworkStream | None = None
        failures: list[httpcore.ConnectError | httpcore.ConnectTimeout] = []

        async def attempt(address: str, done: anyio.Event) -> None:
            nonlocal connected
            try:
                stream = await self._inner.connect_tcp(address, port, timeout=timeout,
                                                       local_address=local_address,
                                                       socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failures.append(exc)
            else:
                if connected is None:
                    connected = stream
                    attempts.cancel_scope.cancel()
                else:
                    await stream.aclose()
            finally:
                done.set()

        try:
            async with anyio.create_task_group() as attempts:
                for address in _interleaved(addresses):
                    done = anyio.Event()
                    attempts.start_soon(attempt, address, done)
                    with anyio.move_on_after(HAPPY_EYEBALLS_DELAY):
                        await done.wait()
        except BaseException:
            # Cancelled from outside (the fetch's deadline) just as an attempt connected.
            if connected is not None:
                with anyio.CancelScope(shield=True):
                    await connected.aclose()
            raise
        if connected is None:
            raise failures[0]
        return connected

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _interleaved(addresses: list[str]) -> list[str]:
    """The first IPv6 address, then the first IPv4, then the rest in order (as anyio does),
    so that an IPv4 address does not wait behind several IPv6 ones that never answer."""
    first6 = next((a for a in addresses if ":" in a), None)
    first4 = next((a for a in addresses if ":" not in a), None)
    head = [a for a in (first6, first4) if a is not None]
    return head + [a for a in addresses if a not in head]


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over :class:`_PinnedBackend` (httpx does not take a backend)."""

    def __init__(self, backend: _PinnedBackend, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context)
        limits = _LIMITS
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=backend)


def _proxied() -> bool:
    """Whether a proxy is named in the environment (httpx then sends some or all requests
    through it, and a client of ours with its own transport would not)."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


def _connect_failure(exc: httpx.ConnectError) -> Failure:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            # Resolved by the connection itself (private hosts allowed, or a proxy's host):
            # as the address check says it, not as a host that refused the connection.
            try:
                host = exc.request.url.host
            except RuntimeError:  # raised outside a client: no request to name
                host = "the host"
            return Failure(f"cannot resolve {host}")
        if isinstance(cause, ssl.SSLCertVerificationError):
            return Failure(f"TLS certificate not trusted: {cause.verify_message}")
        if isinstance(cause, ssl.SSLError):
            return Failure("TLS handshake failed")
        cause = cause.__cause__ or cause.__context__
    return Failure("cannot connect to host")


class Fetcher:
    """GETs URLs within a deadline and a size cap; failures come back as :class:`Failure`.

    ``timeout_s`` bounds each fetch as a whole; ``max_bytes`` caps each body;
    ``concurrency`` is how many pages :meth:`get_many` fetches at once. Hosts that resolve
    to an address ``policy`` refuses (by default any non-public one) are refused unless
    ``allow_private``; ``resolver`` is how host names are resolved for the check and the
    connection (the system's by default).
    """

    def __init__(self, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_bytes: int = DEFAULT_MAX_BYTES, user_agent: str = USER_AGENT,
                 concurrency: int = DEFAULT_CONCURRENCY, allow_private: bool = False,
                 resolver: Resolver = system_resolver,
                 policy: AddressPolicy = non_public) -> None:
        if timeout_s <= 0 or max_bytes <= 0 or concurrency < 1:
            raise ValueError("timeout_s and max_bytes must be positive, concurrency at least 1")
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.user_agent = user_agent
        self.concurrency = concurrency
        self.allow_private = allow_private
        self.resolver = resolver
        self.policy = policy
        self._ssl: ssl.SSLContext | None = None
        self._ssl_lock = threading.Lock()

    def get(self, url: str, *, etag: str | None = None,
            last_modified: str | None = None) -> Fetched:
        """One URL; the validators stored from an earlier fetch make the request conditional."""
        async def run() -> Fetched:
            async with self._client() as client:
                return await self._fetch(client, url, etag, last_modified)

        return asyncio.run(run())

    def get_many(self, urls: Sequence[str], *, budget_s: float | None = None) -> list[Fetched]:
        """Several URLs, ``concurrency`` at a time, each within ``timeout_s``; in input order.

        With ``budget_s``, fetches still running or waiting when it runs out are abandoned
        and reported as a Failure "not fetched in time".
        """
        if not urls:
            return []

        async def run() -> list[Fetched]:
            gate = asyncio.Semaphore(self.concurrency)
            async with self._client() as client:
                async def one(url: str) -> Fetched:
                    async with gate:
                        return await self._fetch(client, url, None, None)

                tasks = [asyncio.create_task(one(url)) for url in urls]
                _, pending = await asyncio.wait(tasks, timeout=budget_s)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                late = Failure("not fetched in time")
                return [t.result() if t not in pending else late for t in tasks]

        return asyncio.run(run())

    def _ssl_context(self) -> ssl.SSLContext:
        # Loading the CA bundle takes tens of milliseconds: once per Fetcher, not per fetch.
        with self._ssl_lock:
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()
            return self._ssl

    def _client(self) -> httpx.AsyncClient:
        # A client per call: an async client belongs to the event loop it was used on.
        # Through a proxy the proxy connects, so the request hook checks the host instead
        # (a transport of our own would also stop httpx from honouring the proxy).
        # Pinned, the connection checks the addresses; a scheme other than http(s) is
        # httpx's UnsupportedProtocol, on the first URL or a redirect.
        pinned = not self.allow_private and not _proxied()
        transport = (_PinnedTransport(_PinnedBackend(self.resolver, self.policy),
                                      self._ssl_context()) if pinned else None)
        hooks = [_check_port] + ([] if self.allow_private or pinned else [self._check_address])
        return httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(self.timeout_s),
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": self.user_agent, "Accept": _ACCEPT,
                     "Accept-Encoding": _ACCEPT_ENCODING},
            verify=self._ssl_context(),
            # httpx runs request hooks before every hop, redirects included.
            event_hooks={"request": hooks},
        )

    async def _check_address(self, request: httpx.Request) -> None:
        """With a proxy in the environment (httpx's own transport): stop the request unless
        its host is http(s) at allowed addresses only."""
        url = request.url
        if url.scheme not in ("http", "https"):
            raise _Blocked(Failure("not an http(s) URL", permanent=True))
        await _checked_addresses(url.host, url.port or (443 if url.scheme == "https" else 80),
                                 self.resolver, self.policy)

    def _too_large(self) -> Failure:
        return Failure(f"too large (>{_size(self.max_bytes)})")

    async def _fetch(self, client: httpx.AsyncClient, url: str, etag: str | None,
                     last_modified: str | None) -> Fetched:
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(client, url, headers, etag, last_modified)
        except _Blocked as blocked:
            return blocked.failure
        except (TimeoutError, httpx.TimeoutException):
            return Failure(f"timed out after {self.timeout_s:g} s")
        except httpx.ConnectError as exc:
            return _connect_failure(exc)
        except httpx.TooManyRedirects:
            return Failure("too many redirects")
        except httpx.UnsupportedProtocol:
            return Failure("not an http(s) URL", permanent=True)
        except httpx.InvalidURL:
            return Failure("invalid URL", permanent=True)
        except (httpx.DecodingError, zlib.error):
            return Failure("undecodable response body")
        except httpx.RemoteProtocolError:
            return Failure("the server broke off the response")
        except httpx.HTTPError as exc:
            return Failure(f"could not fetch: {type(exc).__name__}")

    async def _exchange(self, client: httpx.AsyncClient, url: str, headers: dict[str, str],
                        etag: str | None, last_modified: str | None) -> Fetched:
        async with client.stream("GET", url, headers=headers) as resp:
            final = str(resp.url)
            if resp.status_code == 304:
                return NotModified(final, resp.headers.get("etag") or etag,
                                   resp.headers.get("last-modified") or last_modified)
            if not resp.is_success:
                return Failure(f"HTTP {resp.status_code}",
                               permanent=resp.status_code in _PERMANENT_STATUSES,
                               status=resp.status_code,
                               retry_after_s=_retry_after(resp.headers.get("retry-after")))
            declared = resp.headers.get("content-length", "").strip()
            if declared.isdigit() and int(declared) > self.max_bytes:
                return self._too_large()
            codings = [c.strip().lower() for c in
                       resp.headers.get("content-encoding", "").split(",")]
            codings = [c for c in codings if c and c != "identity"]
            if len(codings) > 1 or (codings and codings[0] not in _WBITS):
                # The server's words, kept short: they end up in moderators' alerts.
                return Failure(f"unsupported content encoding: {', '.join(codings)[:40]}")
            inflater = _Inflater(codings[0]) if codings else None
            chunks: list[bytes] = []
            size = 0
            async for raw in resp.aiter_raw():
                for chunk in inflater.feed(raw) if inflater else (raw,):
                    size += len(chunk)
                    if size > self.max_bytes:
                        return self._too_large()
                    chunks.append(chunk)
            if inflater is not None:
                chunks.append(tail := inflater.end())
                if size + len(tail) > self.max_bytes:
                    return self._too_large()
            media_type = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            return Page(final, media_type, resp.charset_encoding, b"".join(chunks),
                        etag=resp.headers.get("etag"),
                        last_modified=resp.headers.get("last-modified"))


def html_to_text(html: str) -> str:
    """Flatten an HTML fragment (feed content) to plain text, one paragraph per block."""
    if not html.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return ""
    for el in list(root.iter(*_INVISIBLE_TAGS)):
        el.drop_tree()
    for el in root.iter("br"):
        el.tail = "\n" + (el.tail or "")
    for el in root.iter(*_BLOCK_TAGS):
        if el is not root:
            el.tail = "\n\n" + (el.tail or "")
            el.text = "\n\n" + (el.text or "")
    return str(root.text_content()).strip()


def plain_text(value: str) -> str:
    """``value`` flattened to text if it contains HTML elements, else unchanged.

    Exports often carry HTML bodies; a stray "<" in prose must not be taken for markup.
    """
    if "<" not in value or ">" not in value:
        return value
    try:
        root = lxml.html.fragment_fromstring(value, create_parent="div")
    except (etree.ParserError, ValueError):
        return value
    return html_to_text(value) if len(root) else value


def _load_tree(page: Page) -> lxml.html.HtmlElement | None:
    content: bytes | str = page.body
    if page.charset:
        # A charset in the header beats guessing from the bytes.
        with contextlib.suppress(LookupError):  # an unknown charset name: let lxml guess
            content = page.body.decode(page.charset, errors="replace")
    try:
        return trafilatura.load_html(content)
    except (etree.LxmlError, ValueError):
        return None


def _canonical_link(tree: lxml.html.HtmlElement, base: str) -> str | None:
    for link in tree.iter("link"):
        rels = (link.get("rel") or "").lower().split()
        href = (link.get("href") or "").strip()
        if "canonical" in rels and href:
            return canonical_url(_joined(base, href))
    return None


def _joined(base: str, href: str) -> str | None:
    """``href`` read against ``base``; None when the page's link is malformed."""
    try:
        return urljoin(base, href)
    except ValueError:  # an unclosed IPv6 bracket
        return None


def feed_links(page: Page) -> list[str]:
    """The feeds an HTML page announces (``<link rel="alternate" type="application/rss+xml">``)."""
    if not page.is_html:
        return []
    tree = _load_tree(page)
    found: list[str] = []
    for link in tree.iter("link") if tree is not None else ():
        rels = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").split(";")[0].strip().lower()
        href = (link.get("href") or "").strip()
        if "alternate" in rels and kind in _FEED_TYPES and href:
            url = _joined(page.url, href)
            if url and url.startswith(("http://", "https://")) and url not in found:
                found.append(url)
    return found


def _extract(tree: lxml.html.HtmlElement, *, with_metadata: bool) -> Document | None:
    try:
        doc = trafilatura.bare_extraction(
            tree, with_metadata=with_metadata, favor_precision=True, include_comments=False,
            date_extraction_params=_DATE_PARAMS,
        )
    except (etree.LxmlError, ValueError):
        return None
    return doc if isinstance(doc, Document) else None


def _paragraphs(text: str | None, *titles: str | None) -> str:
    """trafilatura puts one block per line; make each a paragraph and drop a repeated headline."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    headlines = {t.strip().casefold() for t in titles if t}
    if lines and lines[0].casefold() in headlines:
        lines = lines[1:]
    return "\n\n".join(lines)


def page_text(page: Page, title: str | None = None) -> str:
    """The main text of an HTML page without its headline (or ``title``); "" when none."""
    if not page.is_html:
        return ""
    tree = _load_tree(page)
    doc = _extract(tree, with_metadata=True) if tree is not None else None
    return _paragraphs(doc.text, doc.title, title) if doc is not None else ""


def page_article(page: Page, *, name: str, source: str) -> Article | Skipped:
    """An article from an HTML page (text and metadata via trafilatura), or why there is none."""
    if not page.is_html:
        return Skipped(name, f"unsupported content type: {page.content_type}")
    tree = _load_tree(page)
    if tree is None:
        return Skipped(name, NO_ARTICLE)
    # Read before extraction, which prunes the tree in place.
    link = _canonical_link(tree, page.url)
    doc = _extract(tree, with_metadata=True)
    text = _paragraphs(doc.text, doc.title) if doc is not None else ""
    if doc is None or len(text) < MIN_PAGE_TEXT:
        return Skipped(name, NO_ARTICLE)
    if link is None and doc.url:
        link = canonical_url(_joined(page.url, doc.url))
    host = urlsplit(page.url).hostname or ""
    try:
        return build_article(
            title=doc.title,
            text=text,
            url=link or page.url,
            published_at=doc.date,
            outlet=doc.sitename or host.removeprefix("www.") or None,
            author=doc.author,
            source=source,
        )
    except ArticleError as err:
        return Skipped(name, str(err))
