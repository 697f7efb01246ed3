"""``shoal token show|rotate``: the join token machines present to join the cluster;
``shoal token create --user NAME``: a bearer token for a script (``security.usertokens``)."""

from __future__ import annotations

import re

import click

from shoal.cli.context import Settings, pass_settings, run
from shoal.security import tokens as join_tokens

ROLE = click.argument("role", type=click.Choice(join_tokens.ROLES), default="worker")


_TTL = re.compile(r"^(\d+)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``7d``: seconds."""
    match = _TTL.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise click.BadParameter(
            f"{text!r}: expected a positive number of s, m, h or d, as 1h", param_hint="--ttl"
        )
    return float(int(match.group(1)) * _SECONDS[match.group(2)])


@click.group()
def token() -> None:
    """Show or rotate the cluster's join tokens; make bearer tokens for users."""


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


@token.command()
@click.option(
    "--user", "user_name", required=True, metavar="NAME", help="The user the token authenticates as."
)
@click.option("--group", "groups", multiple=True, metavar="GROUP", help="A group of the user (repeatable).")
@click.option(
    "--ttl",
    default=None,
    metavar="DURATION",
    help="How long it is valid (s, m, h, d: 1h); default: until deleted.",
)
@pass_settings
def create(settings: Settings, user_name: str, groups: tuple[str, ...], ttl: str | None) -> None:
    """Make a bearer token for user NAME (``Authorization: Bearer <token>``) and print it: it is
    shown this once; the cluster keeps only its hash. What the user may do is RBAC's business."""
    from shoal.security import usertokens

    if not user_name.strip():
        raise click.BadParameter("the user name is empty", param_hint="--user")
    ttl_seconds = parse_ttl(ttl) if ttl is not None else None

    async def body() -> None:
        async with settings.client() as client:
            made = await usertokens.create_token(client, user_name, tuple(groups), ttl_seconds)
        click.echo(made)
        groups_text = f" in groups {', '.join(groups)}" if groups else ""
        validity = f"valid for {ttl}" if ttl is not None else "valid until deleted"
        click.echo(f"token for user {user_name}{groups_text}, {validity}; it is not shown again", err=True)

    run(body())
