"""The ``shoal`` command group, its global options, and the one place where failures become
a one-line ``error: ...`` message and an exit status."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import click

from shoal.api.errors import ApiError, ServiceUnavailable
from shoal.cli import cluster, logs, node, resources, secretkey, server, service, swarm_objects, token, user
from shoal.cli.backup import backup, restore
from shoal.cli.context import Failed, Interrupted, Settings
from shoal.cli.exec import exec_
from shoal.cli.output import echo_error
from shoal.client.kubeconfig import DEFAULT_DATA_DIR, KubeconfigError
from shoal.client.manifests import ManifestError

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, the shell's convention


def _check_server(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value and not value.startswith(("http://", "https://")):
        raise click.BadParameter(f"{value!r}: expected a URL, as in http://127.0.0.1:6443")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SHOAL_KUBECONFIG",
    default=lambda: DEFAULT_DATA_DIR / "kubeconfig",
    help="The kubeconfig that says where the API server is (default: $SHOAL_KUBECONFIG, "
    "else DATA_DIR/kubeconfig; DATA_DIR is $SHOAL_DATA_DIR or ~/.shoal).",
)
@click.option(
    "--server",
    metavar="URL",
    callback=_check_server,
    help="The API server's URL (overrides the kubeconfig's).",
)
@click.version_option(package_name="shoal")
@click.pass_context
def cli(ctx: click.Context, kubeconfig: Path, server: str | None) -> None:
    """shoal: a container orchestrator with Kubernetes' API and Docker Swarm's simplicity."""
    ctx.obj = Settings(kubeconfig=kubeconfig, server=server)


cli.add_command(cluster.init)
cli.add_command(cluster.join)
cli.add_command(server.server)
cli.add_command(resources.apply)
cli.add_command(resources.get)
cli.add_command(resources.describe)
cli.add_command(resources.delete)
cli.add_command(logs.logs)
cli.add_command(exec_)
cli.add_command(token.token)
cli.add_command(service.service)
cli.add_command(service.ps)
cli.add_command(node.node)
cli.add_command(swarm_objects.secret)
cli.add_command(swarm_objects.config)
cli.add_command(secretkey.unlock)
cli.add_command(secretkey.secret_key)
cli.add_command(user.user)
cli.add_command(backup)
cli.add_command(restore)


def explain(err: BaseException) -> tuple[str, int]:
    """The message (empty for none) and exit status for a failure: the one mapping."""
    if isinstance(err, BaseExceptionGroup):  # raised through a TaskGroup: report the cause
        leaves = [e for e in _leaves(err) if not isinstance(e, click.exceptions.Exit)]
        return explain(leaves[0]) if leaves else ("", EXIT_ERROR)
    if isinstance(err, SystemExit):
        return "", err.code if isinstance(err.code, int) else EXIT_ERROR
    if isinstance(err, Interrupted | KeyboardInterrupt | click.exceptions.Abort):
        return "interrupted", EXIT_INTERRUPTED
    if isinstance(err, Failed):
        return "", EXIT_ERROR  # each failure was reported where it happened
    if isinstance(err, click.UsageError):
        hint = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
        return f"{err.format_message()}{hint}", err.exit_code
    if isinstance(err, click.ClickException):
        return err.format_message(), err.exit_code
    if isinstance(err, ServiceUnavailable) and err.message.startswith("cannot reach the API server"):
        hint = "is `shoal server` running? pass --server URL or --kubeconfig PATH"
        return f"{err.message} ({hint})", EXIT_ERROR
    if isinstance(err, ApiError):
        return err.message, EXIT_ERROR  # the Status message names the object and the field
    if isinstance(err, ManifestError | KubeconfigError):
        return str(err), EXIT_ERROR
    if _is_config_error(err):
        return str(err), EXIT_ERROR
    if isinstance(err, BrokenPipeError):
        return "", EXIT_ERROR  # the reader went away (shoal get | head): nothing to say
    if isinstance(err, OSError):
        return (f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err)), EXIT_ERROR
    hint = "a bug in shoal; set SHOAL_DEBUG=1 to see the traceback"
    return f"unexpected {type(err).__name__}: {err} ({hint})", EXIT_ERROR


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for err in group.exceptions:
        out += _leaves(err) if isinstance(err, BaseExceptionGroup) else [err]
    return out


def _is_config_error(err: BaseException) -> bool:
    """A ``shoal.server.run.ConfigError``, without importing the server stack for every
    command: when that module is not loaded, the error cannot be one."""
    run_module = sys.modules.get("shoal.server.run")
    config_error = getattr(run_module, "ConfigError", None)
    return isinstance(config_error, type) and isinstance(err, config_error)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: run the command, report any failure as one line, return the status."""
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None, prog_name="shoal", standalone_mode=False
        )
    except click.exceptions.NoArgsIsHelpError as err:
        err.show()  # `shoal` alone: the help text, as click prints it
        return err.exit_code
    except BaseException as err:
        message, code = explain(err)
        if os.environ.get("SHOAL_DEBUG") and not isinstance(err, SystemExit):
            traceback.print_exception(err)
        if message:
            echo_error(message)
        if isinstance(err, BrokenPipeError):
            _silence_stdout()
        return code
    return result if isinstance(result, int) else 0


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    sys.exit(main())
