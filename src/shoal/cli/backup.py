"""``shoal backup FILE`` and ``shoal restore FILE``: a cluster into one file, and back.

``backup`` asks the running manager (the kubeconfig's, with its credentials: only a cluster
admin may) for ``/shoal/v1/backup``, checks what came as a restore would, and only then puts
it at FILE (a temporary file renamed, mode 0600: it holds the CA key).

``restore`` loads FILE into a new data dir and an empty store (``backup.restore``), then starts
the cluster from it as ``shoal init`` would: it takes init's options (the same option objects)
and calls init itself, so the two cannot drift apart. ``--no-start`` stops after the restore.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import click

from shoal.cli import cluster
from shoal.cli.context import Settings, pass_settings, run
from shoal.client.kubeconfig import KubeconfigError

BACKUP_PATH = "/shoal/v1/backup"


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    help="An admin's kubeconfig for the manager to back up (default: shoal's global --kubeconfig).",
)
@pass_settings
def backup(settings: Settings, file: Path, kubeconfig: Path | None) -> None:
    """Save the whole cluster (every object, the CA, the admin certificate and the key that
    encrypts Secrets) into FILE, from the running manager. FILE is as secret as the manager's
    data dir: it holds the CA key."""
    from shoal.backup import archive
    from shoal.backup.restore import fsync_dir

    if kubeconfig is not None:
        settings = Settings(kubeconfig=kubeconfig, server=settings.server)
    try:
        server = settings.connection().server
    except KubeconfigError as err:
        raise click.ClickException(str(err)) from None
    file = file.expanduser()
    if not file.parent.is_dir():
        raise click.ClickException(f"{file.parent}: no such directory to write {file.name} in")
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")

    async def fetch() -> int:
        size = 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            async with settings.client() as client:
                async for chunk in client.stream(BACKUP_PATH):
                    out.write(chunk)
                    size += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        return size

    try:
        size = run(fetch())
        try:
            # The same checks a restore makes: a backup that could not be restored is refused now.
            taken = archive.load(tmp)
        except archive.BackupError as err:
            raise click.ClickException(f"the manager at {server} sent an unusable backup: {err}") from None
        os.replace(tmp, file)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(file.parent)
    manifest = taken.manifest
    click.echo(
        f"backup of {server} at revision {manifest.revision}: {manifest.objects} objects, {size} bytes, "
        f"written to {file} (it holds the cluster's CA key: keep it as safe as the data dir)"
    )


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--no-start",
    is_flag=True,
    help="Only restore into the data dir and the store; start later with `shoal init` and the same options.",
)
@click.pass_context
def restore(ctx: click.Context, /, file: Path, no_start: bool, **init_options: Any) -> None:
    """Restore the cluster saved in FILE (`shoal backup`) into a new --data-dir and an empty
    --store, then start it as `shoal init` would, with the same options. The CA, the admin
    certificate and the Secrets' key come along: old kubeconfigs keep working."""
    from shoal.backup import BackupError, RestoreError, load
    from shoal.backup import restore as restore_backup

    data_dir: Path = init_options["data_dir"].expanduser().absolute()
    store_url: str = init_options["store_url"]
    try:
        saved = load(file.expanduser())
        done = run(restore_backup(saved, data_dir, store_url, source=str(file.expanduser().absolute())))
    except (BackupError, RestoreError) as err:
        raise click.ClickException(str(err)) from None
    for note in done.notes:
        click.echo(note)
    manifest = saved.manifest
    target = store_url or str(data_dir / "state.db")
    click.echo(
        f"restored {done.objects} objects (revision {manifest.revision} of a {manifest.store} store, "
        f"saved {manifest.created} by shoal {manifest.shoal_version}) into {target}, now at revision "
        f"{done.revision}; the CA, the admin certificate and the keyring into {data_dir}"
    )
    if saved.sealed:
        click.echo(
            "the keyring is sealed (autolock): once started, run `shoal unlock` with the cluster's key"
        )
    if no_start:
        store_option = f" --store {store_url}" if store_url else ""
        click.echo(f"to start it: shoal init --data-dir {data_dir}{store_option}")
        return
    ctx.invoke(cluster.init, **{**init_options, "data_dir": data_dir})


# init's own option objects, after FILE and before --no-start: `restore --help` lists what
# `init --help` does, and a new init option reaches restore with no change here.
restore.params[1:1] = cluster.init.params
