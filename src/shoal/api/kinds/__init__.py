"""Every built-in kind, one module each; ``ALL_KINDS`` lists them in the order of DESIGN §2.

Shared parts live in their own modules: ``meta`` (ObjectMeta, selectors, conditions),
``container``, ``volume``, ``scheduling``, ``podspec`` and ``podstatus`` (the pod spec every
workload embeds), ``containervalidation`` and ``podvalidation`` (its checks), ``workload``
(what the pod controllers share) and ``columns`` (table cell helpers).
"""

from shoal.api.kind import Kind
from shoal.api.kinds.configmap import CONFIG_MAP
from shoal.api.kinds.daemonset import DAEMON_SET
from shoal.api.kinds.deployment import DEPLOYMENT
from shoal.api.kinds.endpoints import ENDPOINTS
from shoal.api.kinds.event import EVENT
from shoal.api.kinds.job import JOB
from shoal.api.kinds.lease import LEASE
from shoal.api.kinds.namespace import NAMESPACE
from shoal.api.kinds.node import NODE
from shoal.api.kinds.pod import POD
from shoal.api.kinds.rbac import CLUSTER_ROLE, CLUSTER_ROLE_BINDING, ROLE, ROLE_BINDING
from shoal.api.kinds.replicaset import REPLICA_SET
from shoal.api.kinds.secret import SECRET
from shoal.api.kinds.service import SERVICE

ALL_KINDS: tuple[Kind, ...] = (
    NAMESPACE,
    NODE,
    POD,
    SERVICE,
    ENDPOINTS,
    SECRET,
    CONFIG_MAP,
    EVENT,
    LEASE,
    DEPLOYMENT,
    REPLICA_SET,
    DAEMON_SET,
    JOB,
    ROLE,
    CLUSTER_ROLE,
    ROLE_BINDING,
    CLUSTER_ROLE_BINDING,
)

__all__ = [
    "ALL_KINDS",
    "CLUSTER_ROLE",
    "CLUSTER_ROLE_BINDING",
    "CONFIG_MAP",
    "DAEMON_SET",
    "DEPLOYMENT",
    "ENDPOINTS",
    "EVENT",
    "JOB",
    "LEASE",
    "NAMESPACE",
    "NODE",
    "POD",
    "REPLICA_SET",
    "ROLE",
    "ROLE_BINDING",
    "SECRET",
    "SERVICE",
]
