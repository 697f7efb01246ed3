"""`shoal exec` and `kubectl exec` on a real one-node cluster (`shoal init`, the exec runtime):
the manager relays the Pod exec subresource's WebSocket to the agent, which runs the command
beside the container's process. The cluster fixture is test_logs'."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
import uuid

import pytest

from tests.conftest import SHOAL
from tests.e2e import test_logs
from tests.e2e.test_logs import MARKER, Cluster
from tests.helpers import processes_with, wait_until

cluster = test_logs.cluster  # the same module-scoped fixture: a cluster for this module

SLEEPER = "import time; time.sleep(3600)"
PROMPT = b"# " if os.geteuid() == 0 else b"$ "  # sh's


def create_pod(cluster: Cluster, name: str, containers: list[str], *, code: str = SLEEPER) -> None:
    """A pod of python containers that each know their name ($WHO), and wait."""
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": c,
                    "image": "none",
                    "command": [sys.executable, "-c", code, MARKER],
                    "env": [{"name": "WHO", "value": c}],
                }
                for c in containers
            ],
        },
    }
    with cluster.http() as http:
        response = http.post("/api/v1/namespaces/default/pods", json=body)
    assert response.status_code == 201, response.text


def shoal(cluster: Cluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOAL, "--kubeconfig", str(cluster.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def kubectl(cluster: Cluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(cluster.kubeconfig), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_shoal_exec_streams_and_exit_code(cluster: Cluster) -> None:
    create_pod(cluster, "ex-solo", ["main"])
    cluster.wait_running("ex-solo")

    result = shoal(cluster, "exec", "ex-solo", "--", "sh", "-c", "echo out $WHO; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out main\n", "err\n")

    ok = shoal(cluster, "exec", "ex-solo", "-n", "default", "--", "true")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")

    echoed = shoal(cluster, "exec", "-i", "ex-solo", "--", "cat", stdin="hello\nworld\n")
    assert (echoed.returncode, echoed.stdout) == (0, "hello\nworld\n"), echoed.stderr

    killed = shoal(cluster, "exec", "ex-solo", "--", "sh", "-c", "kill -9 $$")
    assert killed.returncode == 137

    missing = shoal(cluster, "exec", "ex-solo", "--", "no-such-command-x")
    assert missing.returncode == 127
    assert 'exec: "no-such-command-x": executable file not found in $PATH' in missing.stderr


def run_in_terminal(
    argv: list[str], script: list[tuple[bytes, bytes]], timeout: float = 30
) -> tuple[str, int]:
    """Run ``argv`` on a pseudo-terminal of 100x30; each time the output so far ends with
    a step's prompt, type its input. Returns the output and the exit status."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its terminal is the pty's slave side
        os.execv(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    output, steps, deadline = b"", list(script), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child is gone
                break
            if not chunk:
                break
            output += chunk
            if steps and output.rstrip(b" ").endswith(steps[0][0].rstrip(b" ")):
                os.write(fd, steps.pop(0)[1])
    finally:
        os.close(fd)
        if time.monotonic() >= deadline:
            os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    return output.decode(errors="replace"), os.waitstatus_to_exitcode(status)


def test_shoal_exec_with_a_terminal(cluster: Cluster) -> None:
    create_pod(cluster, "ex-tty", ["main"])
    cluster.wait_running("ex-tty")
    argv = [SHOAL, "--kubeconfig", str(cluster.kubeconfig), "exec", "-it", "ex-tty", "--", "sh"]
    steps = [
        (PROMPT, b"tty >/dev/null && echo on-a-tty; stty size\n"),
        # Ctrl-C reaches the sleeper, in the terminal's foreground: the shell has a controlling
        # terminal and job control. (Once it prints, the child has made itself the foreground.)
        (PROMPT, b"sh -c 'echo started; exec sleep 600'\n"),
        (b"started\r\n", b"\x03"),
        (PROMPT, b"exit 3\n"),
    ]
    output, code = run_in_terminal(argv, steps)
    assert code == 3, repr(output)
    assert "on-a-tty\r\n30 100\r\n" in output and "^C" in output, repr(output)


def test_a_client_that_goes_away_ends_the_command(cluster: Cluster) -> None:
    create_pod(cluster, "ex-gone", ["main"])
    cluster.wait_running("ex-gone")
    marker = f"exec-gone-{uuid.uuid4().hex[:12]}"
    command = [sys.executable, "-c", "import time; time.sleep(3600)", marker]
    client = subprocess.Popen(
        [SHOAL, "--kubeconfig", str(cluster.kubeconfig), "exec", "ex-gone", "--", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: processes_with(marker), timeout=30, what="the exec'd command running")
    finally:
        client.kill()
        client.wait(timeout=10)
    wait_until(lambda: not processes_with(marker), timeout=30, what="the exec'd command killed")


def test_shoal_exec_picks_the_container(cluster: Cluster) -> None:
    create_pod(cluster, "ex-pair", ["a", "b"])
    cluster.wait_running("ex-pair")
    picked = shoal(cluster, "exec", "ex-pair", "-c", "b", "--", "sh", "-c", "echo $WHO")
    assert (picked.returncode, picked.stdout) == (0, "b\n"), picked.stderr

    unnamed = shoal(cluster, "exec", "ex-pair", "--", "true")
    assert unnamed.returncode == 1
    assert unnamed.stderr == (
        "error: a container name must be specified for pod ex-pair, choose one of: [a b]\n"
    )


def test_shoal_exec_refusals(cluster: Cluster) -> None:
    ghost = shoal(cluster, "exec", "ghost", "--", "true")
    assert (ghost.returncode, ghost.stderr) == (1, 'error: pods "ghost" not found\n')

    create_pod(cluster, "ex-refuse", ["main"])
    cluster.wait_running("ex-refuse")
    nope = shoal(cluster, "exec", "ex-refuse", "-c", "nope", "--", "true")
    assert (nope.returncode, nope.stderr) == (1, "error: container nope is not valid for pod ex-refuse\n")

    create_pod(cluster, "ex-done", ["main"], code="pass")

    def finished() -> bool:
        pod = cluster.get("/api/v1/namespaces/default/pods/ex-done")
        return bool(pod.get("status", {}).get("phase") == "Succeeded")

    wait_until(finished, timeout=30, what="pod ex-done succeeded")
    done = shoal(cluster, "exec", "ex-done", "--", "true")
    assert done.returncode == 1
    assert "cannot exec into a container in a completed pod; current phase is Succeeded" in done.stderr

    # Without the WebSocket upgrade (what kubectl's SPDY fallback sends): a Status, not a 5xx.
    with cluster.http() as http:
        plain = http.post("/api/v1/namespaces/default/pods/ex-refuse/exec?command=true")
    assert plain.status_code == 400 and "needs a WebSocket upgrade" in plain.json()["message"]


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_exec(cluster: Cluster) -> None:
    create_pod(cluster, "ex-kubectl", ["first", "second"])
    cluster.wait_running("ex-kubectl")

    result = kubectl(cluster, "exec", "ex-kubectl", "--", "sh", "-c", "echo out $WHO; echo err >&2; exit 3")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "out first\n"  # kubectl defaults to the first container, and says so
    assert "err\n" in result.stderr and "command terminated with exit code 3" in result.stderr

    echoed = kubectl(cluster, "exec", "-i", "ex-kubectl", "-c", "second", "--", "cat", stdin="piped\n")
    assert (echoed.returncode, echoed.stdout) == (0, "piped\n"), echoed.stderr

    picked = kubectl(cluster, "exec", "pod/ex-kubectl", "-c", "second", "--", "sh", "-c", "echo $WHO")
    assert (picked.returncode, picked.stdout) == (0, "second\n"), picked.stderr

    nope = kubectl(cluster, "exec", "ex-kubectl", "-c", "nope", "--", "true")
    assert nope.returncode == 1
    assert "container nope is not valid for pod ex-kubectl" in nope.stderr

    ghost = kubectl(cluster, "exec", "ghost", "--", "true")
    assert ghost.returncode == 1 and 'pods "ghost" not found' in ghost.stderr

    binary = shutil.which("kubectl")
    assert binary is not None
    argv = [binary, "--kubeconfig", str(cluster.kubeconfig), "exec", "-it", "ex-kubectl", "--"]
    # Typed into the shell: kubectl sends the terminal's size before any input, on the same
    # ordered stream, so the size is set by then (a command that starts at once may race it).
    steps = [(PROMPT, b"stty size; read line; echo got $line\n"), (b"30 100\r\n", b"hi\n")]
    steps += [(PROMPT, b"exit 4\n")]
    output, code = run_in_terminal([*argv, "sh"], steps)
    assert code == 4 and "got hi\r\n" in output, repr(output)
