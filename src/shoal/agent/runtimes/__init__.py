"""Container runtimes: the seam between the agent and whatever runs containers (DESIGN §5).

``_interface`` holds the contract (the ``Runtime`` protocol, its value types and exception
tree); ``exec`` is the runtime that runs containers as plain processes. Helpers private to the
exec runtime: ``_proc`` (/proc and pidfd), ``_state`` (records on disk), ``_logs`` (reading).
"""

from shoal.agent.runtimes._interface import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER_NAME,
    LABEL_NAMESPACE,
    LABEL_POD_NAME,
    LABEL_POD_UID,
    REASON_COMPLETED,
    REASON_ERROR,
    REASON_OOM_KILLED,
    REASON_START_ERROR,
    REASON_STATUS_UNKNOWN,
    ContainerExists,
    ContainerIdentity,
    ContainerInfo,
    ContainerNotFound,
    ContainerRuntimeError,
    ContainerSpec,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    ExecResult,
    InvalidState,
    Runtime,
    StartFailed,
)
from shoal.agent.runtimes.exec import ExecRuntime

__all__ = [
    "LABEL_ATTEMPT",
    "LABEL_CONTAINER_NAME",
    "LABEL_NAMESPACE",
    "LABEL_POD_NAME",
    "LABEL_POD_UID",
    "REASON_COMPLETED",
    "REASON_ERROR",
    "REASON_OOM_KILLED",
    "REASON_START_ERROR",
    "REASON_STATUS_UNKNOWN",
    "ContainerExists",
    "ContainerIdentity",
    "ContainerInfo",
    "ContainerNotFound",
    "ContainerRuntimeError",
    "ContainerSpec",
    "ContainerState",
    "ContainerStats",
    "ContainerStatus",
    "ExecResult",
    "ExecRuntime",
    "InvalidState",
    "Runtime",
    "StartFailed",
]
