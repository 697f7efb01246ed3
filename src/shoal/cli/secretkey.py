"""``shoal unlock`` and ``shoal secret-key rotate``: the key that encrypts Secrets at rest.

``unlock`` talks to the running manager (the one the kubeconfig names): it sends the
operator's unlock key to ``/shoal/v1/unlock``. ``secret-key rotate`` works on the data dir of
a *stopped* manager: the store file has one owner at a time, and a running manager would keep
using the keyring it loaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from shoal.api.errors import ApiError
from shoal.cli.context import Settings, pass_settings, run
from shoal.client.kubeconfig import DEFAULT_DATA_DIR


def _read_unlock_key() -> str:
    if sys.stdin.isatty():
        return str(click.prompt("Unlock key", hide_input=True)).strip()
    return sys.stdin.readline().strip()


@click.command()
@pass_settings
def unlock(settings: Settings) -> None:
    """Unlock a manager started with --autolock: read the unlock key (SHOALKEY-1-...) from the
    terminal or stdin and give it to the manager, so that Secrets can be read again."""
    key = _read_unlock_key()
    if not key:
        raise click.UsageError("no unlock key given (type it, or pipe it on stdin)")

    async def body() -> str:
        async with settings.client() as client:
            response = await client.raw(
                "POST",
                "/shoal/v1/unlock",
                body=orjson.dumps({"unlockKey": key}),
                headers={"Content-Type": "application/json"},
            )
        try:
            answer = orjson.loads(response.content) if response.content else {}
        except orjson.JSONDecodeError:
            answer = {}
        if response.status_code >= 400:
            if isinstance(answer, dict) and answer.get("kind") == "Status":
                raise ApiError.from_status(answer, response.status_code)
            raise ApiError.from_status(
                {"message": f"HTTP {response.status_code}: {response.text[:200]}"}, response.status_code
            )
        return str(answer.get("message", "the cluster is unlocked")) if isinstance(answer, dict) else ""

    click.echo(run(body()))


@click.group("secret-key")
def secret_key() -> None:
    """The key that encrypts Secrets at rest."""


@secret_key.command()
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default="$SHOAL_DATA_DIR or ~/.shoal",
    help="The data dir of the (stopped) manager.",
)
@click.option(
    "--store",
    "store_url",
    default="",
    metavar="URL",
    help="The store, if not the sqlite file of the data dir.",
)
def rotate(data_dir: Path, store_url: str) -> None:
    """Make a new key, re-encrypt every Secret with it, then forget the old key. Run it with
    the manager stopped; if it is cut short, run it again: it finishes the same rotation.
    With autolock, the unlock key is asked for (it stays the same)."""
    from shoal.security import keys
    from shoal.store import StoreError, open_store
    from shoal.store.encryption import EncryptingStore

    data_dir = data_dir.expanduser().absolute()
    if not (data_dir / keys.KEY_DIR).is_dir():
        raise click.UsageError(f"{data_dir} holds no cluster keys (is it a manager's data dir?)")
    keyring, _ = keys.load_or_create(data_dir)
    if keyring.locked:
        try:
            keyring.unlock(_read_unlock_key())
        except keys.KeyringError as err:
            raise click.ClickException(str(err)) from None

    async def body() -> keys.Rotation:
        store = EncryptingStore(await open_store(store_url or f"sqlite:///{data_dir / 'state.db'}"), keyring)
        try:
            return await keys.rotate(store)
        finally:
            await store.close()

    try:
        done = run(body())
    except keys.KeyringError as err:
        raise click.ClickException(str(err)) from None
    except StoreError as err:
        hint = "stop the manager first: a rotation needs the store to itself"
        raise click.ClickException(f"{err} ({hint})") from None
    what = "finished the rotation cut short before" if done.resumed else "rotated the key"
    click.echo(
        f"{what}: {done.reencrypted} secret(s) re-encrypted with key {done.key_id}; "
        f"removed key(s): {', '.join(done.removed) or 'none'}"
    )
