"""The managers this agent may fail over to: learnt from the manager it talks to, kept on disk.

An agent joins through one manager; every few seconds it asks for the current list
(``GET /shoal/v1/managers``) and hands it to its client, which moves to the next manager when
its own stops answering. The list is saved in the agent's state dir, so an agent restarted
while the manager it joined through is down still finds the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from shoal.api.errors import ApiError
from shoal.client.http import HttpClient
from shoal.security import pki

log = logging.getLogger(__name__)

FILE_NAME = "managers.json"
REFRESH_SECONDS = 10.0


def saved(state_dir: Path) -> list[str]:
    """The manager URLs saved by an earlier run (none when there is no usable file)."""
    with contextlib.suppress(OSError, ValueError):
        urls = json.loads((state_dir / FILE_NAME).read_text())
        if isinstance(urls, list):
            return [u for u in urls if isinstance(u, str)]
    return []


async def follow(client: HttpClient, state_dir: Path) -> None:
    """Keep ``client``'s fail-over list current until cancelled."""
    known = saved(state_dir)
    while True:
        try:
            answer = await client.get_json("/shoal/v1/managers")
        except ApiError as err:
            log.debug("cannot refresh the manager list: %s", err.message)
        else:
            urls = [
                str(m["url"]) for m in answer.get("managers") or [] if isinstance(m, dict) and m.get("url")
            ]
            if urls and urls != known:
                client.use_servers(urls)
                pki.write_atomic(state_dir / FILE_NAME, json.dumps(urls).encode())
                known = urls
                log.info("managers: %s", ", ".join(urls))
        await asyncio.sleep(REFRESH_SECONDS)  # a refresh period, not a wait for something
