"""``shoal user create``: a client certificate for a person, and a kubeconfig that uses it.

Run on a manager: the cluster CA's key is in its data dir and never leaves it. What the user may
do is RBAC's business (bind a role to the user's name or one of the groups), as in Kubernetes.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import click

from shoal.cli.cluster import DATA_DIR
from shoal.client import kubeconfig

_DURATION = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_lifetime(text: str) -> dt.timedelta:
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise click.BadParameter(
            f"{text!r}: expected a positive number of m, h or d, as 90d", param_hint="--lifetime"
        )
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@click.group()
def user() -> None:
    """Users with client certificates."""


@user.command("create")
@click.argument("name")
@click.option("--group", "groups", multiple=True, metavar="GROUP", help="A group of the user (repeatable).")
@click.option(
    "--lifetime", default="90d", show_default=True, help="How long the certificate is valid (m, h, d)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the user's kubeconfig (default: ./NAME.kubeconfig).",
)
@DATA_DIR
def create(name: str, groups: tuple[str, ...], lifetime: str, output: Path | None, data_dir: Path) -> None:
    """Issue a client certificate for user NAME and write a kubeconfig with it."""
    from shoal.security import pki  # the cryptography stack loads only for this command

    data_dir = data_dir.expanduser()
    pki_dir = data_dir / "pki"
    if not (pki_dir / "ca.key").is_file():
        raise click.ClickException(f"no cluster CA in {pki_dir}: run this on a manager, with its --data-dir")
    try:
        admin = kubeconfig.read(data_dir / "kubeconfig")
    except kubeconfig.KubeconfigError as err:
        raise click.ClickException(str(err)) from None
    try:
        ca = pki.load_or_create_ca(pki_dir)
        issued = pki.issue_client_certificate(ca, name, list(groups), parse_lifetime(lifetime))
    except pki.CertificateError as err:
        raise click.ClickException(f"user {name!r}: {err}") from None
    path = output or Path(f"{name}.kubeconfig")
    credentials = kubeconfig.Credentials(
        ca_pem=ca.certificate_pem, cert_pem=issued.certificate_pem, key_pem=issued.key_pem
    )
    kubeconfig.write(path, admin.server, credentials, user=name)
    until = issued.certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    groups_text = f" in groups {', '.join(groups)}" if groups else ""
    click.echo(f"user {name}{groups_text}: certificate valid until {until}; kubeconfig: {path}")
