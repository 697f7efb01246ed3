"""Container (core/v1) and the types it is built from: env, ports, probes, resources, mounts,
lifecycle hooks and the container security context. Shared by Pods and every pod template.

Defaults the schema applies, as the API server's defaulting does (SetDefaults_Container,
SetDefaults_Probe, SetDefaults_HTTPGetAction, SetDefaults_ObjectFieldSelector):

- ``ports[].protocol``: TCP
- ``terminationMessagePath``: /dev/termination-log; ``terminationMessagePolicy``: File
- probes: ``timeoutSeconds`` 1, ``periodSeconds`` 10, ``successThreshold`` 1,
  ``failureThreshold`` 3; ``httpGet.path`` "/", ``httpGet.scheme`` HTTP
- ``env[].valueFrom.fieldRef.apiVersion``: v1

``imagePullPolicy`` depends on the image's tag, so ``podspec.default_pod_spec`` computes it.
"""

from __future__ import annotations

from shoal.api.schema import Arr, Bool, Int, IntOrStr, Map, Obj, Quantity, Raw, Str

PROTOCOLS = ("SCTP", "TCP", "UDP")  # sorted, as Kubernetes lists supported values
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")

RESOURCE_LIST = Map(Quantity())

# --- env ---

SECRET_KEY_SELECTOR = Obj(
    "io.k8s.api.core.v1.SecretKeySelector",
    {"key": Str(), "name": Str(), "optional": Bool()},
    required=("key",),
)
CONFIG_MAP_KEY_SELECTOR = Obj(
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    {"key": Str(), "name": Str(), "optional": Bool()},
    required=("key",),
)
OBJECT_FIELD_SELECTOR = Obj(
    "io.k8s.api.core.v1.ObjectFieldSelector",
    {"apiVersion": Str(default="v1"), "fieldPath": Str()},
    required=("fieldPath",),
)
RESOURCE_FIELD_SELECTOR = Obj(
    "io.k8s.api.core.v1.ResourceFieldSelector",
    {"containerName": Str(), "divisor": Quantity(), "resource": Str()},
    required=("resource",),
)
ENV_VAR_SOURCE = Obj(
    "io.k8s.api.core.v1.EnvVarSource",
    {
        "configMapKeyRef": CONFIG_MAP_KEY_SELECTOR,
        "fieldRef": OBJECT_FIELD_SELECTOR,
        # fileKeyRef (alpha: a key read from a file in an emptyDir) is kept, not interpreted.
        "fileKeyRef": Raw(),
        "resourceFieldRef": RESOURCE_FIELD_SELECTOR,
        "secretKeyRef": SECRET_KEY_SELECTOR,
    },
)
ENV_VAR = Obj(
    "io.k8s.api.core.v1.EnvVar",
    {"name": Str(), "value": Str(), "valueFrom": ENV_VAR_SOURCE},
    required=("name",),
)
CONFIG_MAP_ENV_SOURCE = Obj("io.k8s.api.core.v1.ConfigMapEnvSource", {"name": Str(), "optional": Bool()})
SECRET_ENV_SOURCE = Obj("io.k8s.api.core.v1.SecretEnvSource", {"name": Str(), "optional": Bool()})
ENV_FROM_SOURCE = Obj(
    "io.k8s.api.core.v1.EnvFromSource",
    {"configMapRef": CONFIG_MAP_ENV_SOURCE, "prefix": Str(), "secretRef": SECRET_ENV_SOURCE},
)

# --- ports and resources ---

CONTAINER_PORT = Obj(
    "io.k8s.api.core.v1.ContainerPort",
    {
        "containerPort": Int(),
        "hostIP": Str(),
        "hostPort": Int(),
        "name": Str(),
        "protocol": Str(enum=PROTOCOLS, default="TCP"),
    },
    required=("containerPort",),
)
RESOURCE_CLAIM = Obj(
    "io.k8s.api.core.v1.ResourceClaim", {"name": Str(), "request": Str()}, required=("name",)
)
RESOURCE_REQUIREMENTS = Obj(
    "io.k8s.api.core.v1.ResourceRequirements",
    {
        "claims": Arr(RESOURCE_CLAIM, map_keys=("name",)),
        "limits": RESOURCE_LIST,
        "requests": RESOURCE_LIST,
    },
)

# --- probes and lifecycle hooks ---

EXEC_ACTION = Obj("io.k8s.api.core.v1.ExecAction", {"command": Arr(Str())})
HTTP_HEADER = Obj(
    "io.k8s.api.core.v1.HTTPHeader", {"name": Str(), "value": Str()}, required=("name", "value")
)
HTTP_GET_ACTION = Obj(
    "io.k8s.api.core.v1.HTTPGetAction",
    {
        "host": Str(),
        "httpHeaders": Arr(HTTP_HEADER),
        "path": Str(default="/"),
        "port": IntOrStr(),
        "scheme": Str(enum=("HTTP", "HTTPS"), default="HTTP"),
    },
    required=("port",),
)
TCP_SOCKET_ACTION = Obj(
    "io.k8s.api.core.v1.TCPSocketAction", {"host": Str(), "port": IntOrStr()}, required=("port",)
)
GRPC_ACTION = Obj("io.k8s.api.core.v1.GRPCAction", {"port": Int(), "service": Str()}, required=("port",))
SLEEP_ACTION = Obj("io.k8s.api.core.v1.SleepAction", {"seconds": Int(format="int64")}, required=("seconds",))

PROBE = Obj(
    "io.k8s.api.core.v1.Probe",
    {
        "exec": EXEC_ACTION,
        "failureThreshold": Int(default=3),
        "grpc": GRPC_ACTION,
        "httpGet": HTTP_GET_ACTION,
        "initialDelaySeconds": Int(),
        "periodSeconds": Int(default=10),
        "successThreshold": Int(default=1),
        "tcpSocket": TCP_SOCKET_ACTION,
        "terminationGracePeriodSeconds": Int(format="int64"),
        "timeoutSeconds": Int(default=1),
    },
)
LIFECYCLE_HANDLER = Obj(
    "io.k8s.api.core.v1.LifecycleHandler",
    {"exec": EXEC_ACTION, "httpGet": HTTP_GET_ACTION, "sleep": SLEEP_ACTION, "tcpSocket": TCP_SOCKET_ACTION},
)
LIFECYCLE = Obj(
    "io.k8s.api.core.v1.Lifecycle",
    {"postStart": LIFECYCLE_HANDLER, "preStop": LIFECYCLE_HANDLER, "stopSignal": Str()},
)

# --- mounts ---

VOLUME_MOUNT = Obj(
    "io.k8s.api.core.v1.VolumeMount",
    {
        "mountPath": Str(),
        "mountPropagation": Str(),
        "name": Str(),
        "readOnly": Bool(),
        "recursiveReadOnly": Str(),
        "subPath": Str(),
        "subPathExpr": Str(),
    },
    required=("name", "mountPath"),
)
VOLUME_DEVICE = Obj(
    "io.k8s.api.core.v1.VolumeDevice", {"devicePath": Str(), "name": Str()}, required=("name", "devicePath")
)

# --- security ---

CAPABILITIES = Obj("io.k8s.api.core.v1.Capabilities", {"add": Arr(Str()), "drop": Arr(Str())})
SECCOMP_PROFILE = Obj(
    "io.k8s.api.core.v1.SeccompProfile", {"localhostProfile": Str(), "type": Str()}, required=("type",)
)
APP_ARMOR_PROFILE = Obj(
    "io.k8s.api.core.v1.AppArmorProfile", {"localhostProfile": Str(), "type": Str()}, required=("type",)
)
SECURITY_CONTEXT = Obj(
    "io.k8s.api.core.v1.SecurityContext",
    {
        "allowPrivilegeEscalation": Bool(),
        "appArmorProfile": APP_ARMOR_PROFILE,
        "capabilities": CAPABILITIES,
        "privileged": Bool(),
        "procMount": Str(),
        "readOnlyRootFilesystem": Bool(),
        "runAsGroup": Int(format="int64"),
        "runAsNonRoot": Bool(),
        "runAsUser": Int(format="int64"),
        # SELinux and Windows options: no runtime of ours acts on them; kept as written.
        "seLinuxOptions": Raw(),
        "seccompProfile": SECCOMP_PROFILE,
        "windowsOptions": Raw(),
    },
)

CONTAINER = Obj(
    "io.k8s.api.core.v1.Container",
    {
        "args": Arr(Str()),
        "command": Arr(Str()),
        "env": Arr(ENV_VAR, merge_key="name", strategy="merge", map_keys=("name",)),
        "envFrom": Arr(ENV_FROM_SOURCE),
        "image": Str(),
        "imagePullPolicy": Str(enum=PULL_POLICIES),
        "lifecycle": LIFECYCLE,
        "livenessProbe": PROBE,
        "name": Str(),
        "ports": Arr(
            CONTAINER_PORT,
            merge_key="containerPort",
            strategy="merge",
            map_keys=("containerPort", "protocol"),
        ),
        "readinessProbe": PROBE,
        # In-place resize policies and per-exit-code restart rules: newer features we do not
        # act on yet; kept as written.
        "resizePolicy": Arr(Raw()),
        "resources": RESOURCE_REQUIREMENTS,
        "restartPolicy": Str(),  # only "Always", on init containers (sidecars)
        "restartPolicyRules": Arr(Raw()),
        "securityContext": SECURITY_CONTEXT,
        "startupProbe": PROBE,
        "stdin": Bool(),
        "stdinOnce": Bool(),
        "terminationMessagePath": Str(default="/dev/termination-log"),
        "terminationMessagePolicy": Str(enum=TERMINATION_MESSAGE_POLICIES, default="File"),
        "tty": Bool(),
        "volumeDevices": Arr(
            VOLUME_DEVICE, merge_key="devicePath", strategy="merge", map_keys=("devicePath",)
        ),
        "volumeMounts": Arr(VOLUME_MOUNT, merge_key="mountPath", strategy="merge", map_keys=("mountPath",)),
        "workingDir": Str(),
    },
    required=("name",),
)


def image_pull_policy(image: str) -> str:
    """Kubernetes' default pull policy: Always for ``:latest`` or an untagged image, else
    IfNotPresent. An image pinned by digest alone has no tag and is not pulled again."""
    name, at, _digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]  # a registry's ``host:port`` is not a tag
    tag = last.partition(":")[2] if ":" in last else ("" if at else "latest")
    return "Always" if tag == "latest" else "IfNotPresent"
