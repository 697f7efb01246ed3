"""``service create``'s Swarm options: each parser, the manifests they make (which the API's
own admission accepts), and one-line errors that name the option, the value and the reason."""

from __future__ import annotations

import copy
from typing import Any

import click
import pytest

from shoal.api.admission import admit
from shoal.api.kind import Kind
from shoal.api.kinds import DEPLOYMENT, JOB
from shoal.cli import main, swarm_spec
from shoal.cli.swarm_spec import Health, OptionError, ServiceSpec, build_service


def spec(**given: Any) -> ServiceSpec:
    base: dict[str, Any] = {
        "name": "web",
        "image": None,
        "command": "sleep 60",
        "args": [],
        "replicas": None,
        "mode": "replicated",
    }
    return ServiceSpec(**{**base, **given})


def container(obj: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return found


def admitted(kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(obj)
    body["metadata"] = {
        **body["metadata"],
        "namespace": "default",
        "uid": "0b6a2c3e-1111-4222-8333-444455556666",
    }
    out, errors, unknown = admit(kind, body)
    assert [str(e) for e in errors] == [] and unknown == []
    return out


def error(call: Any, *args: Any) -> str:
    with pytest.raises(click.UsageError) as caught:
        call(*args)
    return caught.value.format_message()


# -- ports ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ports"),
    [
        ("8080:80", [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]),
        ("80", [{"containerPort": 80, "protocol": "TCP"}]),
        ("53:53/udp", [{"containerPort": 53, "hostPort": 53, "protocol": "UDP"}]),
        ("published=8080,target=80", [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}]),
        (
            "published=5353,target=53,protocol=udp,mode=host",
            [{"containerPort": 53, "hostPort": 5353, "protocol": "UDP"}],
        ),
        ("target=80", [{"containerPort": 80, "protocol": "TCP"}]),
        (
            "8080-8081:80-81",
            [
                {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"},
                {"containerPort": 81, "hostPort": 8081, "protocol": "TCP"},
            ],
        ),
    ],
)
def test_publish_forms(text: str, ports: list[dict[str, Any]]) -> None:
    assert swarm_spec.parse_publish(text) == ports


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("80:x", '--publish "80:x": container port must be a number 1-65535'),
        ("x:80", '--publish "x:80": published port must be a number 1-65535'),
        ("8080:70000", '--publish "8080:70000": container port must be a number 1-65535'),
        ("80/icmp", '--publish "80/icmp": protocol "icmp" is not one of tcp, udp, sctp'),
        ("127.0.0.1:80:80", '--publish "127.0.0.1:80:80": a host IP is not supported'),
        ("published=80", '--publish "published=80": target= (the container port) is required'),
        ("published=80,target=80,colour=red", 'unknown key "colour"'),
        ("published=80,target=80,mode=mesh", 'mode "mesh" is not one of ingress, host'),
        ("8080-8082:80-81", "the published and container port ranges differ in length"),
    ],
)
def test_publish_errors_name_the_option_and_reason(text: str, message: str) -> None:
    assert message in error(swarm_spec.parse_publish, text)


def test_a_published_port_given_twice_is_refused() -> None:
    assert "published port 8080/tcp is already given by '8080:80'" in error(
        swarm_spec.build_ports, ["8080:80", "published=8080,target=81"]
    )
    assert len(swarm_spec.build_ports(["8080:80", "8080:80/udp"])) == 2


# -- units ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "quantity"),
    [
        ("64M", "64Mi"),
        ("64m", "64Mi"),
        ("64MB", "64Mi"),
        ("64MiB", "64Mi"),
        ("64Mi", "64Mi"),
        ("1g", "1Gi"),
        ("1.5G", "1536Mi"),
        ("512k", "512Ki"),
        ("1024", "1Ki"),
        ("1000", "1000"),
        ("2t", "2Ti"),
    ],
)
def test_memory_in_docker_units(text: str, quantity: str) -> None:
    assert swarm_spec.memory_quantity(text, "--limit-memory") == quantity


@pytest.mark.parametrize("text", ["lots", "64X", "-1M", "", "1.5.2g"])
def test_bad_memory(text: str) -> None:
    assert error(swarm_spec.memory_quantity, text, "--limit-memory").startswith(f'--limit-memory "{text}": ')


def test_zero_memory_is_refused() -> None:
    assert "must be more than 0 bytes" in error(swarm_spec.memory_quantity, "0", "--limit-memory")


@pytest.mark.parametrize(
    ("text", "quantity"), [("0.5", "500m"), ("2", "2"), ("1.0", "1"), ("0.25", "250m"), ("500m", "500m")]
)
def test_cpus(text: str, quantity: str) -> None:
    assert swarm_spec.cpu_quantity(text, "--limit-cpu") == quantity


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("half", "expected a number of CPUs"),
        ("0", "more than 0"),
        ("-1", "more than 0"),
        ("0.0005", "the smallest step is 0.001 CPU"),
        ("inf", "more than 0"),
    ],
)
def test_bad_cpus(text: str, reason: str) -> None:
    message = error(swarm_spec.cpu_quantity, text, "--limit-cpu")
    assert message.startswith(f'--limit-cpu "{text}": ') and reason in message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5), ("1m30s", 90), ("500ms", 1), ("1.2s", 2), ("1h", 3600), ("0", 1), ("2m0.5s", 121)],
)
def test_durations_round_up_to_whole_seconds(text: str, seconds: int) -> None:
    assert swarm_spec.duration_seconds(text, "--health-interval") == seconds


def test_a_start_period_may_be_zero() -> None:
    assert swarm_spec.duration_seconds("0s", "--health-start-period", minimum=0) == 0


@pytest.mark.parametrize("text", ["5", "five", "5x", "s", "", "1m 30s"])
def test_bad_durations(text: str) -> None:
    assert "expected a duration such as 30s" in error(swarm_spec.duration_seconds, text, "--health-timeout")


# -- mounts --------------------------------------------------------------------------------


def test_mount_types() -> None:
    bind = swarm_spec.parse_mount("type=bind,source=/srv/data,target=/data,readonly", "mount-0")
    assert bind.volume == {"name": "mount-0", "hostPath": {"path": "/srv/data"}}
    assert bind.mount == {"name": "mount-0", "mountPath": "/data", "readOnly": True}

    named = swarm_spec.parse_mount("type=volume,src=pgdata,dst=/var/lib/postgresql", "mount-1")
    assert named.volume == {
        "name": "mount-1",
        "hostPath": {"path": "/var/lib/shoal/volumes/pgdata", "type": "DirectoryOrCreate"},
    }
    assert named.mount == {"name": "mount-1", "mountPath": "/var/lib/postgresql"}

    anonymous = swarm_spec.parse_mount("destination=/cache", "mount-2")  # type defaults to volume
    assert anonymous.volume == {"name": "mount-2", "emptyDir": {}}

    tmpfs = swarm_spec.parse_mount("type=tmpfs,target=/tmp,tmpfs-size=64m,ro=false", "mount-3")
    assert tmpfs.volume == {"name": "mount-3", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}
    assert tmpfs.mount == {"name": "mount-3", "mountPath": "/tmp"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("type=nfs,target=/x", 'type "nfs" is not one of volume, bind, tmpfs'),
        ("type=bind,target=/x", "source= (the host path) is required for type=bind"),
        ("type=bind,source=data,target=/x", 'source "data" must be an absolute path'),
        ("type=volume,source=data", "target= (the path in the container) is required"),
        ("type=volume,source=data,target=rel", 'target "rel" must be an absolute path'),
        ("type=volume,source=/srv,target=/x", '"/srv" is not a volume name'),
        ("type=tmpfs,source=x,target=/x", "a tmpfs mount has no source"),
        ("type=tmpfs,target=/x,tmpfs-size=big", 'tmpfs-size "big" is not a size'),
        ("type=volume,target=/x,tmpfs-size=1m", "tmpfs-size applies to type=tmpfs only"),
        ("type=bind,source=/a,target=/x,readonly=maybe", 'readonly="maybe" must be true or false'),
        ("type=bind,source=/a,target=/x,bind-propagation=rshared", 'unknown key "bind-propagation"'),
        ("type=bind,source=/a,/x", 'field "/x" must be a key=value pair'),
    ],
)
def test_bad_mounts(text: str, reason: str) -> None:
    message = error(swarm_spec.parse_mount, text, "mount-0")
    assert message.startswith(f'--mount "{text}": ') and reason in message, message


def test_secret_and_config_references() -> None:
    short = swarm_spec.parse_file_ref("db-pass", "secret", "secret-0")
    assert short.volume == {
        "name": "secret-0",
        "secret": {"secretName": "db-pass", "items": [{"key": "db-pass", "path": "db-pass", "mode": 0o444}]},
    }
    assert short.mount == {
        "name": "secret-0",
        "mountPath": "/run/secrets/db-pass",
        "subPath": "db-pass",
        "readOnly": True,
    }
    relative = swarm_spec.parse_file_ref("source=db-pass,target=app/password,mode=0400", "secret", "secret-1")
    assert relative.mount["mountPath"] == "/run/secrets/app/password"
    assert relative.mount["subPath"] == "password"
    assert relative.volume["secret"]["items"] == [{"key": "db-pass", "path": "password", "mode": 0o400}]
    absolute = swarm_spec.parse_file_ref("source=tls,target=/etc/ssl/key.pem", "secret", "secret-2")
    assert absolute.mount["mountPath"] == "/etc/ssl/key.pem"

    config = swarm_spec.parse_file_ref("nginx.conf", "config", "config-0")
    assert config.volume == {
        "name": "config-0",
        "configMap": {
            "name": "nginx.conf",
            "items": [{"key": "nginx.conf", "path": "nginx.conf", "mode": 0o444}],
        },
    }
    assert config.mount["mountPath"] == "/nginx.conf"
    placed = swarm_spec.parse_file_ref("src=nginx.conf,target=/etc/nginx/nginx.conf", "config", "config-1")
    assert placed.mount["mountPath"] == "/etc/nginx/nginx.conf" and placed.mount["subPath"] == "nginx.conf"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("target=/x", "the secret's name (source=) is required"),
        ("source=a,mode=rw", 'mode "rw" must be octal permissions'),
        ("source=a,mode=01777", 'mode "01777" must be octal permissions'),
        ("source=a,uid=1000", "uid is not supported"),
        ("source=a,target=../etc/passwd", "must name a file"),
        ("source=a,target=dir/", "must name a file"),
        ("source=a,colour=red", 'unknown key "colour"'),
    ],
)
def test_bad_secret_references(text: str, reason: str) -> None:
    message = error(swarm_spec.parse_file_ref, text, "secret", "secret-0")
    assert message.startswith(f'--secret "{text}": ') and reason in message, message


def test_two_mounts_on_one_target_are_refused() -> None:
    message = error(build_service, spec(secrets=["a", "source=b,target=a"]))
    assert message == "--secret \"source=b,target=a\": /run/secrets/a is already the target of --secret 'a'"


# -- whole manifests -----------------------------------------------------------------------


def test_a_full_service_is_a_deployment_the_api_accepts() -> None:
    obj = build_service(
        spec(
            publish=["8080:80", "published=5353,target=53,protocol=udp"],
            mounts=["type=bind,source=/srv,target=/srv,ro", "type=tmpfs,target=/scratch,tmpfs-size=16m"],
            secrets=["db-pass", "source=api-key,target=/etc/api/key,mode=0400"],
            configs=["nginx.conf"],
            limits={"cpu": "0.5", "memory": "64M"},
            reservations={"cpu": "0.25", "memory": "32MiB"},
            health=Health(
                cmd="test -f /tmp/ok", interval="5s", timeout="500ms", retries=2, start_period="1m"
            ),
        )
    )
    assert obj["kind"] == "Deployment" and obj["spec"]["replicas"] == 1
    c = container(obj)
    assert c["ports"] == [
        {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"},
        {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
    ]
    assert c["resources"] == {
        "limits": {"cpu": "500m", "memory": "64Mi"},
        "requests": {"cpu": "250m", "memory": "32Mi"},
    }
    probe = {
        "exec": {"command": ["sh", "-c", "test -f /tmp/ok"]},
        "initialDelaySeconds": 60,
        "periodSeconds": 5,
        "timeoutSeconds": 1,
        "failureThreshold": 2,
    }
    assert c["readinessProbe"] == probe and c["livenessProbe"] == probe
    assert [m["mountPath"] for m in c["volumeMounts"]] == [
        "/srv",
        "/scratch",
        "/run/secrets/db-pass",
        "/etc/api/key",
        "/nginx.conf",
    ]
    volumes = obj["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["mount-0", "mount-1", "secret-0", "secret-1", "config-0"]
    out = admitted(DEPLOYMENT, obj)
    assert out["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert [ref[:2] for ref in swarm_spec.file_refs(obj)] == [
        ("secret", "db-pass"),
        ("secret", "api-key"),
        ("config", "nginx.conf"),
    ]


def test_health_defaults_are_dockers() -> None:
    c = container(build_service(spec(health=Health(cmd="true"))))
    assert c["livenessProbe"] == {
        "exec": {"command": ["sh", "-c", "true"]},
        "initialDelaySeconds": 0,
        "periodSeconds": 30,
        "timeoutSeconds": 30,
        "failureThreshold": 3,
    }


def test_health_options_need_a_command() -> None:
    message = error(build_service, spec(health=Health(interval="5s")))
    assert message == '--health-interval "5s": needs --health-cmd (an image\'s HEALTHCHECK is not read)'
    assert (
        error(build_service, spec(health=Health(cmd="true", retries=0)))
        == '--health-retries "0": must be 1 or more'
    )


def test_restart_none_is_a_job_with_the_service_labels() -> None:
    obj = build_service(spec(replicas=3, restart_condition="none", labels=["tier=batch"]))
    assert obj["apiVersion"] == "batch/v1" and obj["kind"] == "Job"
    assert obj["metadata"]["labels"] == {"tier": "batch", "shoal.io/service": "web"}
    assert obj["spec"]["parallelism"] == obj["spec"]["completions"] == 3
    assert obj["spec"]["backoffLimit"] == 0
    assert "selector" not in obj["spec"]  # generated by the API server from the Job's uid
    template = obj["spec"]["template"]
    assert template["metadata"]["labels"] == {"shoal.io/service": "web", "app": "web"}
    assert template["spec"]["restartPolicy"] == "Never"
    out = admitted(JOB, obj)
    assert out["spec"]["selector"]["matchLabels"] == {
        "batch.kubernetes.io/controller-uid": out["metadata"]["uid"]
    }


def test_restart_on_failure_backoff() -> None:
    default = build_service(spec(restart_condition="on-failure"))
    assert default["spec"]["backoffLimit"] == 6
    assert default["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    limited = build_service(spec(restart_condition="on-failure", restart_max_attempts=2))
    assert limited["spec"]["backoffLimit"] == 2
    admitted(JOB, limited)
    assert build_service(spec(restart_condition="any"))["kind"] == "Deployment"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            {"restart_max_attempts": 3},
            '--restart-max-attempts "3": needs --restart-condition on-failure or none: a service'
            " restarted on any exit is a Deployment, which cannot limit its restarts",
        ),
        (
            {"restart_condition": "any", "restart_max_attempts": 3},
            '--restart-max-attempts "3": needs --restart-condition on-failure or none',
        ),
        (
            {"restart_condition": "none", "mode": "global"},
            '--restart-condition "none": applies to replicated services only',
        ),
        ({"restart_condition": "on-failure", "restart_max_attempts": -1}, "must be 0 or more"),
        ({"restart_condition": "sometimes"}, "must be one of any, on-failure, none"),
    ],
)
def test_restart_refusals(given: dict[str, Any], message: str) -> None:
    assert message in error(build_service, spec(**given))


def test_replicas_cell_and_mode_of_a_job() -> None:
    job = {"kind": "Job", "spec": {"parallelism": 3, "completions": 3}, "status": {"succeeded": 1}}
    assert swarm_spec.service_mode(job) == "replicated job"
    assert swarm_spec.replicas_cell(job, 2, 2) == "2/3 (1/3 completed)"
    job["status"] = {"succeeded": 3, "conditions": [{"type": "Complete", "status": "True"}]}
    assert swarm_spec.job_outcome(job) == "Complete"
    assert swarm_spec.replicas_cell(job, 0, 2) == "0/0 (3/3 completed)"
    job["status"] = {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}
    assert swarm_spec.job_outcome(job) == "Failed: BackoffLimitExceeded"


def test_option_error_is_a_usage_error() -> None:
    assert isinstance(OptionError("--x", "v", "why"), click.UsageError)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--publish", "80:x"], 'error: --publish "80:x": container port must be a number 1-65535'),
        (["--mount", "type=bind,target=/x"], 'error: --mount "type=bind,target=/x": source= (the host path)'),
        (["--limit-memory", "64X"], 'error: --limit-memory "64X": expected a size'),
        (
            ["--health-cmd", "true", "--health-interval", "5"],
            'error: --health-interval "5": expected a duration',
        ),
        (["--restart-condition", "sometimes"], "error: Invalid value for '--restart-condition'"),
    ],
)
def test_cli_errors_are_one_line_before_any_request(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The server URL is never reached: every check runs before anything is sent.
    code = main.main(
        ["--server", "http://127.0.0.1:9", "service", "create", "web", "--command", "sleep 1", *args]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(message) and len(err.strip().splitlines()) == 1, err


# -- service update ------------------------------------------------------------------------


def test_update_adds_and_removes() -> None:
    before = build_service(
        spec(
            env=["A=1", "B=2"],
            publish=["8080:80", "53/udp"],
            mounts=["type=tmpfs,target=/scratch"],
            secrets=["db-pass", "api-key"],
            configs=["app.conf"],
            limits={"cpu": "1"},
        )
    )
    after = swarm_spec.update_service(
        before,
        swarm_spec.ServiceUpdate(
            env_add=["B=3", "C=4"],
            env_rm=["A"],
            publish_rm=["80"],
            publish_add=["9090:90"],
            mount_rm=["/scratch"],
            mount_add=["type=volume,source=data,target=/data"],
            secret_rm=["db-pass"],
            secret_add=["source=tls,target=/etc/tls.pem"],
            config_rm=["app.conf"],
            limits={"memory": "64M"},
            replicas=3,
        ),
    )
    assert before["spec"]["replicas"] == 1  # not changed in place
    assert after["spec"]["replicas"] == 3
    c = container(after)
    assert c["env"] == [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]
    assert c["ports"] == [
        {"containerPort": 53, "protocol": "UDP"},
        {"containerPort": 90, "hostPort": 9090, "protocol": "TCP"},
    ]
    assert c["resources"] == {"limits": {"cpu": "1", "memory": "64Mi"}}
    assert [(m["name"], m["mountPath"]) for m in c["volumeMounts"]] == [
        ("secret-1", "/run/secrets/api-key"),
        ("mount-0", "/data"),
        ("secret-0", "/etc/tls.pem"),
    ]
    volumes = after["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["secret-1", "mount-0", "secret-0"]  # unused ones dropped
    assert volumes[1]["hostPath"]["path"] == "/var/lib/shoal/volumes/data"
    admitted(DEPLOYMENT, after)


def test_update_removing_everything_leaves_no_empty_lists() -> None:
    before = build_service(spec(secrets=["db-pass"], env=["A=1"], publish=["80"]))
    after = swarm_spec.update_service(
        before, swarm_spec.ServiceUpdate(secret_rm=["db-pass"], env_rm=["A"], publish_rm=["80/tcp"])
    )
    assert container(after) == {"name": "web", "image": "none", "command": ["sleep", "60"]}
    assert "volumes" not in after["spec"]["template"]["spec"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"publish_rm": ["81"]}, '--publish-rm "81": the service publishes no such port'),
        ({"publish_rm": ["9999:80"]}, '--publish-rm "9999:80": the service publishes no such port'),
        ({"publish_add": ["8080:81"]}, '--publish-add "8080:81": published port 8080 is already in use'),
        ({"mount_rm": ["/nope"]}, '--mount-rm "/nope": the service has no mount with this target'),
        ({"secret_rm": ["other"]}, '--secret-rm "other": the service does not use this secret'),
        ({"config_rm": ["db-pass"]}, '--config-rm "db-pass": the service does not use this config'),
        (
            {"secret_add": ["source=x,target=db-pass"]},
            '--secret-add "source=x,target=db-pass": /run/secrets/db-pass is already a mount target',
        ),
        ({"mount_add": ["type=bind,target=/x"]}, '--mount-add "type=bind,target=/x": source='),
        ({"replicas": -1}, '--replicas "-1": must be 0 or more'),
        ({"config_add": ["source=c,mode=x"]}, '--config-add "source=c,mode=x": mode "x" must be octal'),
    ],
)
def test_update_refusals(given: dict[str, Any], message: str) -> None:
    before = build_service(spec(publish=["8080:80"], secrets=["db-pass"]))
    assert message in error(swarm_spec.update_service, before, swarm_spec.ServiceUpdate(**given))


def test_a_job_or_a_global_replica_count_cannot_be_updated() -> None:
    job = build_service(spec(restart_condition="none"))
    with pytest.raises(click.ClickException, match=r"a job .* cannot be updated"):
        swarm_spec.update_service(job, swarm_spec.ServiceUpdate(env_add=["A=1"]))
    daemon_set = build_service(spec(mode="global"))
    assert "--replicas applies to replicated services" in error(
        swarm_spec.update_service, daemon_set, swarm_spec.ServiceUpdate(replicas=2)
    )


def test_rolled_out() -> None:
    deployment: dict[str, Any] = {"kind": "Deployment", "metadata": {"generation": 2}}
    deployment["spec"] = {"replicas": 2}
    assert not swarm_spec.rolled_out(deployment)
    deployment["status"] = {"observedGeneration": 2, "updatedReplicas": 2, "replicas": 3}
    assert not swarm_spec.rolled_out(deployment)  # an old pod is left
    deployment["status"]["replicas"] = 2
    assert swarm_spec.rolled_out(deployment)
    assert swarm_spec.rolled_out({"kind": "DaemonSet"})
