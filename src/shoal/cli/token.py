"""``shoal token show|rotate``: the join token machines present to join the cluster."""

from __future__ import annotations

import click

from shoal.cli.context import Settings, pass_settings, run
from shoal.security import tokens as join_tokens

ROLE = click.argument("role", type=click.Choice(join_tokens.ROLES), default="worker")


@click.group()
def token() -> None:
    """Show or rotate the cluster's join tokens."""


@token.command()
@ROLE
@pass_settings
def show(settings: Settings, role: str) -> None:
    """Print the current join token and the command that joins a machine with it."""

    async def body() -> None:
        async with settings.client() as client:
            current = (await join_tokens.tokens(client))[role]
        click.echo(current)
        click.echo(
            f"join a machine as a {role}: shoal join {settings.connection().server} --token {current}",
            err=True,
        )

    run(body())


@token.command()
@ROLE
@pass_settings
def rotate(settings: Settings, role: str) -> None:
    """Replace the join token; the old one is refused from now on (nodes already joined stay)."""

    async def body() -> None:
        async with settings.client() as client:
            fresh = await join_tokens.rotate(client, role)
        click.echo(fresh)
        click.echo(f"the previous {role} token no longer works", err=True)

    run(body())
