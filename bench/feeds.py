"""Feed polling speed, against feeds and pages served from 127.0.0.1.

    python -m bench.feeds [--repeat N]

Prints, as the median and the fastest of N runs:
(a) one poll (fetch + parse, no page fetched) of a 100-item and of a 10,000-item feed;
(b) a conditional poll answered 304;
(c) one poll of a 100-item teaser feed, then completing all 100 entries from their pages;
(d) how long refusing hostile input takes: a billion-laughs feed, and a 50 MB feed refused
    by the size cap.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator

from retrieval.articles import Article
from retrieval.sources.feeds import Feed, complete_entries, poll_feed
from retrieval.sources.web import Failure, Fetcher, NotModified
from tests.support.feeds import article_page, numbered_items, rss, story_paragraphs
from tests.support.http import StaticServer

LAUGHS = ('<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY l0 "ha">'
          + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
          + ']><rss version="2.0"><channel><title>&l9;</title></channel></rss>').encode()


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Median and fastest wall time of ``fn`` over ``repeat`` runs, and its last result."""
    times: list[float] = []
    result: object = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), result


def show(label: str, median: float, best: float, note: str) -> None:
    print(f"  {label:<44} median {median * 1000:8.1f} ms   best {best * 1000:8.1f} ms   {note}")


def fifty_megabytes() -> Iterator[bytes]:
    block = b"<item><title>x</title></item>" * 2048
    for _ in range((50 << 20) // len(block)):
        yield block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    fetcher = Fetcher(timeout_s=30, allow_private=True)  # the feeds are served on 127.0.0.1
    with StaticServer() as server:
        base = server.base_url
        for n in (100, 10_000):
            url = server.add(f"/feed{n}.xml", rss(numbered_items(0, n, base=base)),
                             content_type="application/rss+xml", etag=f'"v{n}"')
            size = len(server.routes[f"/feed{n}.xml"].body)
            median, best, got = timed(lambda u=url: poll_feed(fetcher, u), args.repeat)
            assert isinstance(got, Feed) and len(got.entries) == n, got
            show(f"poll, {n:,} items ({size / 1e6:.2f} MB)", median, best,
                 f"{n / median:,.0f} items/s")
        url = server.url("/feed100.xml")
        median, best, got = timed(lambda: poll_feed(fetcher, url, etag='"v100"'), args.repeat)
        assert isinstance(got, NotModified), got
        show("conditional poll answered 304", median, best, "")

        teasers = numbered_items(0, 100, base=base)
        for it in teasers:
            path = it.link.removeprefix(base) if it.link else ""
            n = int(path.rsplit("/", 1)[1])
            server.add(path, article_page(it.title or "", story_paragraphs(n)))
        url = server.add("/teasers.xml", rss(teasers), content_type="application/rss+xml")

        def poll_and_complete() -> list[object]:
            feed = poll_feed(fetcher, url)
            assert isinstance(feed, Feed)
            return list(complete_entries(fetcher, feed.entries))

        median, best, items = timed(poll_and_complete, args.repeat)
        full = sum(isinstance(a, Article) and len(a.text) > 500 for a in items)  # type: ignore[attr-defined]
        show("poll + full text of 100 teasers", median, best,
             f"{full}/100 completed, {fetcher.concurrency} pages at a time")

        url = server.add("/laughs.xml", LAUGHS, content_type="application/rss+xml")
        median, best, got = timed(lambda: poll_feed(fetcher, url), args.repeat)
        assert isinstance(got, Failure), got
        show("billion laughs, refused", median, best, got.reason)
        url = server.add("/huge.xml", content_type="application/rss+xml", chunked=True,
                         chunks=fifty_megabytes)
        median, best, got = timed(lambda: poll_feed(fetcher, url), args.repeat)
        assert isinstance(got, Failure), got
        sent = server.sent.get("/huge.xml", 0) / args.repeat
        show("50 MB chunked feed, refused", median, best,
             f"{got.reason}; {sent / 1e6:.1f} MB sent per try")


if __name__ == "__main__":
    main()
