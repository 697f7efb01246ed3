"""The node agent (DESIGN §5): registers its Node, renews its Lease, watches the Pods bound to
it and drives each container through a runtime.

Layout:

- ``runtimes/``: the one seam between the agent and whatever runs containers. The ``Runtime``
  protocol is narrow (create, start, stop, remove, status, wait, list, logs, exec, stats) so that
  the pod-sync loop can be tested against a small fake; ``exec`` runs containers as plain OS
  processes and is the embedded default.

The pod-sync loop, probes, restart back-off and status reporting build on that seam and live
beside it.
"""
