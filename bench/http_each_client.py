"""The seed's way of calling an API without a batch endpoint, for
bench/http_each.sh: N GET requests with one aiohttp session, either all
at once under a semaphore of C, or with asyncio.gather in groups of C.
Prints one JSON line: requests/s, p99 (of each request's own time) and
failures."""

import asyncio
import json
import sys
import time

import aiohttp


async def main(url, n, c, how):
    times, failed = [], 0
    connector = aiohttp.TCPConnector(limit=c)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one():
            nonlocal failed
            t = time.perf_counter()
            try:
                async with session.get(url) as r:
                    await r.read()
                    if r.status != 200:
                        failed += 1
            except aiohttp.ClientError:
                failed += 1
            times.append(time.perf_counter() - t)

        start = time.perf_counter()
        if how == "semaphore":
            sem = asyncio.Semaphore(c)

            async def gated():
                async with sem:
                    await one()

            await asyncio.gather(*(gated() for _ in range(n)))
        else:
            for first in range(0, n, c):
                await asyncio.gather(*(one() for _ in range(min(c, n - first))))
        took = time.perf_counter() - start
    times.sort()
    print(json.dumps({
        "requests_per_sec": n / took,
        "p99_ms": times[int(len(times) * 0.99) - 1] * 1000,
        "failed": failed,
    }))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
