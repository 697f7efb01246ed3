"""The node agent (DESIGN §5): registers its Node, renews its Lease, watches the Pods bound to
it and drives each container through a runtime.

Layout (README.md draws the flow):

- ``agent``: ``Agent`` runs the two halves below in one task group; ``run``: over HTTP, for
  ``shoal join``.
- ``config``: ``AgentConfig``, every interval and address in one frozen value.
- ``node``: registration (capacity, addresses, nodeInfo, labels, Ready) and the Lease heartbeat.
- ``podsync``: the level-triggered loop from Pods to containers; ``env`` builds a container's
  environment, ``restart`` decides restarts and back-off, ``status`` turns runtime states into
  pod status, ``probes``/``prober`` run liveness, readiness and startup probes.
- ``runtimes/``: the one seam between the agent and whatever runs containers. The ``Runtime``
  protocol is narrow (create, start, stop, remove, status, wait, list, logs, exec, stats) so that
  the pod-sync loop can be tested against a small fake; ``exec`` runs containers as plain OS
  processes and is the embedded default.
"""

from shoal.agent.agent import Agent
from shoal.agent.config import AgentConfig

__all__ = ["Agent", "AgentConfig"]
