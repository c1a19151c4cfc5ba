"""Run the PyPI tool hf-mem (0.5.x) over a list of models on the fake Hub, concurrently, for bench/audit.py.

hf-mem hard-codes https://huggingface.co (it ignores HF_ENDPOINT), so its HTTP client is patched at run time to send
every huggingface.co request to the fake Hub instead. Its own Python API (`arun`) is used, one task per model with
at most JOBS at once: the best case for hf-mem, which has no batch mode of its own.

    python bench/hf_mem_fakehub.py URL JOBS < models.txt     # prints one JSON line per model
"""

from __future__ import annotations

import asyncio
import json
import sys
from urllib.parse import urlsplit

import httpx2
from hf_mem.run import arun


def point_at(url: str) -> None:
    target = urlsplit(url)
    send = httpx2.AsyncClient.send

    async def redirected(self: httpx2.AsyncClient, request: httpx2.Request, **kwargs: object) -> httpx2.Response:
        if request.url.host == "huggingface.co":
            request.url = request.url.copy_with(scheme=target.scheme, host=target.hostname, port=target.port)
        return await send(self, request, **kwargs)

    httpx2.AsyncClient.send = redirected  # type: ignore[method-assign]


async def audit(models: list[str], jobs: int) -> None:
    slots = asyncio.Semaphore(jobs)

    async def one(model: str) -> dict[str, object]:
        async with slots:
            try:
                await arun(model_id=model)
                return {"model": model, "error": None}
            except Exception as e:  # hf-mem raises bare RuntimeErrors and httpx errors
                return {"model": model, "error": f"{e.__class__.__name__}: {e}"[:200]}

    for row in await asyncio.gather(*(one(m) for m in models)):
        print(json.dumps(row))


def main() -> None:
    url, jobs = sys.argv[1], int(sys.argv[2])
    point_at(url)
    asyncio.run(audit([line.strip() for line in sys.stdin if line.strip()], jobs))


if __name__ == "__main__":
    main()
