"""Fetching over HTTP and turning HTML (whole pages or feed fragments) into article text."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urljoin, urlsplit

import httpx
import lxml.html
import trafilatura
from lxml import etree
from trafilatura.settings import Document

from retrieval.articles import Article, ArticleError, build_article, canonical_url
from retrieval.sources import Skipped

USER_AGENT = "newsbot/0.1 (+https://github.com/newsbot)"
TIMEOUT_S = 15.0
MAX_BYTES = 5 * 1024 * 1024

# Shorter than a couple of sentences is a menu or a cookie notice, not a story.
MIN_PAGE_TEXT = 80

_HTML_TYPES = ("text/html", "application/xhtml+xml")
_ACCEPT = ("application/rss+xml, application/atom+xml, application/xml;q=0.9, "
           "text/html;q=0.9, */*;q=0.5")
# Elements whose text a reader never sees.
_INVISIBLE_TAGS = ("script", "style", "noscript", "template", "head")
# Elements that start a new paragraph (or line) when HTML is flattened to text.
_BLOCK_TAGS = ("p", "div", "section", "article", "aside", "header", "footer", "blockquote", "pre",
               "ul", "ol", "li", "dl", "dt", "dd", "table", "tr", "figure", "figcaption",
               "h1", "h2", "h3", "h4", "h5", "h6", "hr")
# htmldate gives only the day by default; the time helps order same-day stories.
_DATE_PARAMS = {"outputformat": "%Y-%m-%dT%H:%M:%S%z", "original_date": True}


@dataclass(frozen=True)
class Page:
    """A successfully fetched HTTP response body."""

    url: str
    """The final URL, after redirects."""
    content_type: str
    """The media type only, lower-case ("" when the server sent none)."""
    charset: str | None
    body: bytes

    @property
    def is_html(self) -> bool:
        return self.content_type in _HTML_TYPES or not self.content_type


def new_client() -> httpx.Client:
    """An HTTP client with the settings every remote source is fetched with."""
    return httpx.Client(
        timeout=httpx.Timeout(TIMEOUT_S),
        follow_redirects=True,
        headers={"User-Agent": USER_AGENT, "Accept": _ACCEPT},
    )


class Fetcher:
    """GETs URLs with a size guard; reports failures as short reasons instead of raising.

    The client is created on first use (loading a JSON file needs none) and closed on exit
    unless the caller supplied it.
    """

    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client
        self._owned = client is None

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._owned and self._client is not None:
            self._client.close()
            self._client = None

    def get(self, url: str) -> Page | str:
        """The fetched page, or a reason such as "HTTP 404" or "could not connect: ..."."""
        if self._client is None:
            self._client = new_client()
        try:
            with self._client.stream("GET", url, follow_redirects=True) as resp:
                if not resp.is_success:
                    return f"HTTP {resp.status_code}"
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_BYTES:
                    return "response too large"
                chunks: list[bytes] = []
                size = 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > MAX_BYTES:
                        return "response too large"
                    chunks.append(chunk)
                media_type = resp.headers.get("content-type", "").split(";")[0].strip().lower()
                return Page(str(resp.url), media_type, resp.charset_encoding, b"".join(chunks))
        except httpx.TimeoutException:
            return "timed out"
        except httpx.ConnectError as exc:
            return f"could not connect: {exc}"
        except httpx.TooManyRedirects:
            return "too many redirects"
        except httpx.HTTPError as exc:
            return f"could not fetch: {exc}"
        except httpx.InvalidURL as exc:
            return f"invalid URL: {exc}"


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
            return canonical_url(urljoin(base, href))
    return None


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
    """An article from an HTML page: text and metadata via trafilatura."""
    if not page.is_html:
        return Skipped(name, f"unsupported content type: {page.content_type}")
    tree = _load_tree(page)
    if tree is None:
        return Skipped(name, "no article text found")
    # Read before extraction, which prunes the tree in place.
    link = _canonical_link(tree, page.url)
    doc = _extract(tree, with_metadata=True)
    text = _paragraphs(doc.text, doc.title) if doc is not None else ""
    if doc is None or len(text) < MIN_PAGE_TEXT:
        return Skipped(name, "no article text found")
    if link is None and doc.url:
        link = canonical_url(urljoin(page.url, doc.url))
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
