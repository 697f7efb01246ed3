"""``shoal logs POD``: a container's output, as ``kubectl logs`` prints it.

The manager proxies the pod's ``log`` subresource from the node's agent; this command only
streams the bytes to stdout as they arrive (``-f`` until the container exits or Ctrl-C).
"""

from __future__ import annotations

import sys

import click

from shoal.api.kinds import POD
from shoal.cli.context import Settings, pass_settings, run
from shoal.cli.resources import namespace_option
from shoal.client._interface import object_path


@click.command()
@click.argument("pod", metavar="POD")
@click.option(
    "-c", "--container", default="", metavar="NAME", help="The container (needed when the pod has several)."
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing what the container writes until it exits.")
@click.option(
    "--tail", type=click.IntRange(min=-1), default=-1, metavar="N", help="Only the last N lines (-1: all)."
)
@namespace_option
@pass_settings
def logs(
    settings: Settings, pod: str, container: str, follow: bool, tail: int, namespace: str | None
) -> None:
    """Print the logs of a container of POD."""
    params = {"follow": "true" if follow else "false"}
    if container:
        params["container"] = container
    if tail >= 0:
        params["tailLines"] = str(tail)
    run(
        _logs(
            settings, object_path(POD, settings.namespace(namespace), pod.removeprefix("pod/"), "log"), params
        )
    )


async def _logs(settings: Settings, path: str, params: dict[str, str]) -> None:
    out = sys.stdout.buffer
    async with settings.client() as client:
        async for chunk in client.stream(path, params):
            out.write(chunk)
            out.flush()
