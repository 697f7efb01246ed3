"""The ``shoal`` command, run as users run it (the console script, as subprocesses) against a
real ``shoal server`` process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import SHOAL, ShoalServer, start_shoal_server, stop_shoal_server
from tests.helpers import LineReader

STACK = """\
apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: {ns}
  labels: {{app: web}}
  annotations: {{team: storefront}}
data:
  greeting: hello
  index.html: |
    <h1>hello</h1>
    <p>from shoal</p>
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports: [{{containerPort: 80}}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
  labels: {{app: web}}
spec:
  selector: {{app: web}}
  ports:
    - {{name: http, port: 80, targetPort: 80}}
"""

STACK_NAMES = ["namespace/{ns}", "configmap/web-config", "deployment.apps/web", "service/web"]


def shoal(
    server: ShoalServer, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SHOAL, *args], input=input, capture_output=True, text=True, timeout=60, env=env or server.env()
    )


def ok(server: ShoalServer, *args: str, input: str | None = None) -> str:
    result = shoal(server, *args, input=input)
    assert result.returncode == 0, f"shoal {' '.join(args)} failed ({result.returncode}): {result.stderr}"
    return result.stdout


def fails(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one error line of a failed command (and nothing like a traceback)."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def table(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip()]


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def stack(shoal_server: ShoalServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Namespace ``shop`` holding a ConfigMap, a Deployment and a Service; its name."""
    manifest = tmp_path_factory.mktemp("stack") / "stack.yaml"
    manifest.write_text(STACK.format(ns="shop", replicas=2))
    ok(shoal_server, "apply", "-f", str(manifest))
    return "shop"


# -- apply ---------------------------------------------------------------------------------


def test_apply_creates_then_leaves_unchanged_then_configures(
    shoal_server: ShoalServer, tmp_path: Path
) -> None:
    names = [n.format(ns="lifecycle") for n in STACK_NAMES]
    path = write(tmp_path / "stack.yaml", STACK.format(ns="lifecycle", replicas=2))

    assert ok(shoal_server, "apply", "-f", path).splitlines() == [f"{n} created" for n in names]
    assert ok(shoal_server, "apply", "-f", path).splitlines() == [f"{n} unchanged" for n in names]

    write(tmp_path / "stack.yaml", STACK.format(ns="lifecycle", replicas=3))
    lines = ok(shoal_server, "apply", "-f", path).splitlines()
    assert lines == [f"{n} {'configured' if n.startswith('deployment') else 'unchanged'}" for n in names]
    spec = json.loads(ok(shoal_server, "get", "deploy", "web", "-n", "lifecycle", "-o", "json"))["spec"]
    assert spec["replicas"] == 3


def test_apply_reads_stdin_and_folders(shoal_server: ShoalServer, tmp_path: Path) -> None:
    config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: v}}\n"
    assert (
        ok(shoal_server, "apply", "-f", "-", input=config.format(name="from-stdin"))
        == "configmap/from-stdin created\n"
    )
    folder = tmp_path / "manifests"
    folder.mkdir()
    write(folder / "a.yaml", config.format(name="from-folder-a"))
    write(
        folder / "b.json",
        json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-folder-b"}}),
    )
    write(folder / "notes.txt", "not a manifest")
    assert ok(shoal_server, "apply", "-f", str(folder)).splitlines() == [
        "configmap/from-folder-a created",
        "configmap/from-folder-b created",
    ]


def test_malformed_yaml_applies_nothing(shoal_server: ShoalServer, tmp_path: Path) -> None:
    good = write(tmp_path / "good.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: not-applied-1}\n")
    bad = write(
        tmp_path / "bad.yaml",
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: not-applied-2}\n---\n"
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n data: [unclosed\n"
        ),
    )
    line = fails(shoal(shoal_server, "apply", "-f", good, "-f", bad))
    assert bad in line and "line 9" in line, line
    for name in ("not-applied-1", "not-applied-2"):
        assert f'configmaps "{name}" not found' in fails(shoal(shoal_server, "get", "cm", name))


def test_manifest_problems_name_file_document_and_field(shoal_server: ShoalServer, tmp_path: Path) -> None:
    unknown = write(tmp_path / "unknown.yaml", "apiVersion: v1\nkind: Frobnicator\nmetadata: {name: x}\n")
    line = fails(shoal(shoal_server, "apply", "-f", unknown))
    assert f"{unknown} (document 1)" in line and "Frobnicator" in line

    nameless = write(tmp_path / "nameless.yaml", "apiVersion: v1\nkind: ConfigMap\n---\nkind: ConfigMap\n")
    line = fails(shoal(shoal_server, "apply", "-f", nameless))
    assert f"{nameless} (document 1): metadata.name: Required value" in line


def test_server_refusal_names_the_field_and_the_rest_is_applied(
    shoal_server: ShoalServer, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "mixed.yaml",
        """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: no-image}
spec:
  selector: {matchLabels: {app: no-image}}
  template:
    metadata: {labels: {app: no-image}}
    spec:
      containers: [{name: main}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: applied-anyway}
""",
    )
    result = shoal(shoal_server, "apply", "-f", path)
    line = fails(result)
    assert line.startswith(f"error: {path} (document 1): ")
    assert "spec.template.spec.containers[0].image" in line
    assert result.stdout == "configmap/applied-anyway created\n"
    fails(shoal(shoal_server, "get", "deploy", "no-image"))


def test_namespace_problems_are_named(shoal_server: ShoalServer, tmp_path: Path) -> None:
    path = write(
        tmp_path / "ns.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\n"
    )
    assert "namespace" in fails(shoal(shoal_server, "apply", "-f", path, "-n", "default"))
    bare = write(tmp_path / "bare.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    line = fails(shoal(shoal_server, "apply", "-f", bare, "-n", "nowhere"))
    assert 'namespaces "nowhere" not found' in line


# -- get -----------------------------------------------------------------------------------


def test_get_table(shoal_server: ShoalServer, stack: str) -> None:
    rows = table(ok(shoal_server, "get", "configmaps", "-n", stack))
    assert rows[0] == ["NAME", "DATA", "AGE"]
    assert rows[1][:2] == ["web-config", "2"]

    everywhere = table(ok(shoal_server, "get", "cm", "-A", "-l", "app=web"))
    assert everywhere[0][:2] == ["NAMESPACE", "NAME"]
    assert [stack, "web-config", "2"] in [row[:3] for row in everywhere[1:]]

    several = table(ok(shoal_server, "get", "deploy,svc", "-n", stack))
    names = [row[0] for row in several if row[0] != "NAME"]
    assert names == ["deployment.apps/web", "service/web"]


def test_get_wide_adds_columns(shoal_server: ShoalServer, stack: str) -> None:
    narrow = table(ok(shoal_server, "get", "deployments", "-n", stack))[0]
    wide = table(ok(shoal_server, "get", "deployments", "-n", stack, "-o", "wide"))[0]
    assert narrow[0] == "NAME" and len(wide) > len(narrow) and wide[: len(narrow)] == narrow


def test_get_json_yaml_name(shoal_server: ShoalServer, stack: str) -> None:
    one = json.loads(ok(shoal_server, "get", "deployment", "web", "-n", stack, "-o", "json"))
    assert (one["apiVersion"], one["kind"], one["metadata"]["name"]) == ("apps/v1", "Deployment", "web")

    listed = yaml.safe_load(ok(shoal_server, "get", "cm", "-n", stack, "-o", "yaml", "-l", "app=web"))
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")
    assert [i["kind"] for i in listed["items"]] == ["ConfigMap"]
    assert listed["items"][0]["data"]["index.html"] == "<h1>hello</h1>\n<p>from shoal</p>\n"

    names = ok(shoal_server, "get", "deploy,svc,configmaps", "-n", stack, "-o", "name", "-l", "app=web")
    assert names.splitlines() == ["deployment.apps/web", "service/web", "configmap/web-config"]
    assert ok(shoal_server, "get", "svc/web", "deploy/web", "-n", stack, "-o", "name").splitlines() == [
        "service/web",
        "deployment.apps/web",
    ]
    everything = ok(shoal_server, "get", "all", "-n", stack, "-o", "name").splitlines()
    assert "deployment.apps/web" in everything and "service/web" in everything
    assert "configmap/web-config" not in everything


def test_get_nothing_found(shoal_server: ShoalServer, stack: str) -> None:
    result = shoal(shoal_server, "get", "cm", "-n", stack, "-l", "app=nothing")
    assert (result.returncode, result.stdout) == (0, "")
    assert result.stderr == f"No resources found in {stack} namespace.\n"
    line = fails(shoal(shoal_server, "get", "cm", "web-config", "missing", "-n", stack))
    assert line == 'error: configmaps "missing" not found'


def test_unknown_kind(shoal_server: ShoalServer) -> None:
    line = fails(shoal(shoal_server, "get", "frobs"))
    assert line == 'error: the server doesn\'t have a resource type "frobs"'
    assert "frobs" in fails(shoal(shoal_server, "get", "cm,frobs"))


def test_watch_prints_rows_as_they_come(shoal_server: ShoalServer, stack: str) -> None:
    watcher = subprocess.Popen(
        [SHOAL, "get", "configmaps", "-w", "-n", stack],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=shoal_server.env(),
    )
    try:
        out = LineReader(watcher.stdout)
        out.wait_for(lambda line: line.startswith("web-config"))
        config = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: watched, namespace: {stack}}}\n"
        ok(shoal_server, "apply", "-f", "-", input=config)
        row = out.wait_for(lambda line: line.startswith("watched"))
        assert row.split()[:2] == ["watched", "0"]
        watcher.send_signal(signal.SIGINT)  # Ctrl-C
        assert watcher.wait(timeout=15) == 0
        assert watcher.stderr is not None and watcher.stderr.read() == ""
    finally:
        if watcher.poll() is None:
            watcher.terminate()
            watcher.wait()


# -- describe and delete -------------------------------------------------------------------


def test_describe(shoal_server: ShoalServer, stack: str) -> None:
    text = ok(shoal_server, "describe", "deployment", "web", "-n", stack)
    lines = text.splitlines()
    assert lines[0].split() == ["Name:", "web"]
    assert lines[1].split() == ["Namespace:", stack]
    assert ["Labels:", "app=web"] in [line.split() for line in lines]
    assert any(line.startswith("Created:") and "ago)" in line for line in lines)
    assert "Spec:" in lines
    assert any(line.split() == ["replicas:", "2"] for line in lines)
    assert any(line.split()[-2:] == ["image:", "nginx:1.27"] for line in lines)
    assert lines[-1].split() == ["Events:", "<none>"]

    event = f"""\
apiVersion: v1
kind: Event
metadata: {{name: web.scaled, namespace: {stack}}}
involvedObject: {{apiVersion: apps/v1, kind: Deployment, name: web, namespace: {stack}}}
type: Normal
reason: ScalingReplicaSet
message: Scaled up replica set web-abc to 2
source: {{component: deployment-controller}}
"""
    ok(shoal_server, "apply", "-f", "-", input=event)
    lines = ok(shoal_server, "describe", "deploy/web", "-n", stack).splitlines()
    events = lines[lines.index("Events:") + 1 :]
    assert events[0].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert events[2].split()[:2] == ["Normal", "ScalingReplicaSet"]
    assert events[2].endswith("deployment-controller  Scaled up replica set web-abc to 2")

    config = ok(shoal_server, "describe", "cm", "web-config", "-n", stack).splitlines()
    assert ["Annotations:", "team=storefront"] in [line.split() for line in config]
    assert "Data:" in config and "    <p>from shoal</p>" in config

    line = fails(shoal(shoal_server, "describe", "cm", "nope", "-n", stack))
    assert line == 'error: configmaps "nope" not found'


def test_delete(shoal_server: ShoalServer, tmp_path: Path) -> None:
    path = write(tmp_path / "stack.yaml", STACK.format(ns="doomed", replicas=1))
    ok(shoal_server, "apply", "-f", path)
    assert (
        ok(shoal_server, "delete", "cm", "web-config", "-n", "doomed", "--cascade", "background")
        == 'configmap "web-config" deleted\n'
    )
    assert (
        fails(shoal(shoal_server, "get", "cm", "web-config", "-n", "doomed"))
        == 'error: configmaps "web-config" not found'
    )
    assert (
        fails(shoal(shoal_server, "delete", "cm", "web-config", "-n", "doomed"))
        == 'error: configmaps "web-config" not found'
    )
    result = shoal(shoal_server, "delete", "cm", "web-config", "-n", "doomed", "--ignore-not-found")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")

    # -f deletes what the manifests declare, the namespace last; what is gone already is skipped
    out = ok(shoal_server, "delete", "-f", path, "--ignore-not-found")
    assert out.splitlines() == [
        'service "web" deleted',
        'deployment.apps "web" deleted',
        'namespace "doomed" deleted',
    ]
    assert "not found" in fails(shoal(shoal_server, "get", "ns", "doomed"))


# -- errors --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_server_down(shoal_server: ShoalServer) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    line = fails(shoal(shoal_server, "--server", url, "get", "configmaps"))
    assert line.startswith(f"error: cannot reach the API server at {url}"), line


def test_server_flag_keeps_the_kubeconfig_credentials(shoal_server: ShoalServer) -> None:
    # Another address for the same server (localhost is in its certificate), the same admin.
    other = shoal_server.url.replace("127.0.0.1", "localhost")
    assert ok(shoal_server, "--server", other, "get", "ns", "default", "-o", "name") == "namespace/default\n"


def test_missing_kubeconfig(shoal_server: ShoalServer, tmp_path: Path) -> None:
    env = {**shoal_server.env(), "SHOAL_KUBECONFIG": str(tmp_path / "none")}
    line = fails(shoal(shoal_server, "get", "cm", env=env))
    assert str(tmp_path / "none") in line and "shoal server" in line


def test_usage_errors_are_one_line_with_status_2(shoal_server: ShoalServer) -> None:
    assert "--help" in fails(shoal(shoal_server, "get"), code=2)
    assert "bogus" in fails(shoal(shoal_server, "get", "cm", "-o", "bogus"), code=2)
    assert "--server" in fails(shoal(shoal_server, "--server", "localhost:1", "get", "cm"), code=2)


# -- the server command --------------------------------------------------------------------


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "seed.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: seeded}\n")
    yield tmp_path


def test_server_applies_and_stops_cleanly_on_ctrl_c(own_server: Path) -> None:
    server = start_shoal_server(own_server / "data", "--apply", str(own_server / "seed.yaml"))
    try:
        assert server.kubeconfig.is_file()
        ready = server.output.seen[-1]
        assert f"export KUBECONFIG={server.kubeconfig}" in ready and server.url in ready
        env = {**os.environ, "SHOAL_KUBECONFIG": str(server.kubeconfig)}
        got = subprocess.run(
            [SHOAL, "get", "cm", "seeded", "-o", "name"], capture_output=True, text=True, timeout=60, env=env
        )
        assert got.stdout == "configmap/seeded\n", got.stderr
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=15) == 0
    finally:
        stop_shoal_server(server)
    assert "Traceback" not in server.log.read_text()


def test_server_config_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [SHOAL, "server", "--data-dir", str(tmp_path), "--listen", "localhost"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "expected HOST:PORT" in fails(result)
    # HTTPS only: there is no plain-HTTP switch any more.
    insecure = subprocess.run(
        [SHOAL, "server", "--data-dir", str(tmp_path), "--listen", "0.0.0.0:6443", "--insecure"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "--insecure" in fails(insecure, code=2)
