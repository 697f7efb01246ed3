"""``shoal server``: run the API server in the foreground until Ctrl-C."""

from __future__ import annotations

import logging
from contextlib import suppress
from pathlib import Path

import click

from shoal.cli.context import Interrupted, run
from shoal.cli.output import object_name
from shoal.client.kubeconfig import DEFAULT_DATA_DIR
from shoal.client.manifests import Manifest

# The API's address and store, shared with `shoal init`.
LISTEN = click.option(
    "--listen",
    default="127.0.0.1:6443",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve the API on (HTTPS with client certificates); port 0 picks a free port.",
)
STORE = click.option(
    "--store",
    "store_url",
    default="",
    metavar="URL",
    help="The store: sqlite:///PATH or memory:// (default: sqlite in the data dir).",
)


def ready_line(url: str, kubeconfig: Path) -> str:
    return (
        f"shoal API server ready at {url}; kubeconfig: {kubeconfig} "
        f"(for kubectl: export KUBECONFIG={kubeconfig})"
    )


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default="$SHOAL_DATA_DIR or ~/.shoal",
    help="Where the state and the kubeconfig are kept.",
)
@LISTEN
@STORE
@click.option(
    "--apply",
    "apply_paths",
    multiple=True,
    metavar="FILE|DIR",
    help="Apply these manifests once the server is up (repeatable).",
)
def server(data_dir: Path, listen: str, store_url: str, apply_paths: tuple[str, ...]) -> None:
    """Run the API server; writes a kubeconfig for shoal and kubectl into the data dir."""
    from shoal.server.run import serve  # the server stack loads only for this command

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data_dir = data_dir.expanduser().absolute()
    kubeconfig = data_dir / "kubeconfig"

    def on_ready(url: str) -> None:
        click.echo(ready_line(url, kubeconfig))

    def on_applied(manifest: Manifest, action: str) -> None:
        click.echo(f"{object_name(manifest.kind, manifest.object)} {action}")

    # Once up, the server handles SIGINT/SIGTERM itself and returns; a Ctrl-C that comes
    # earlier (while the store opens) interrupts the runner instead: both end quietly.
    with suppress(Interrupted):
        run(
            serve(
                data_dir,
                listen,
                store_url,
                apply_paths,
                on_ready=on_ready,
                on_applied=on_applied,
            )
        )
