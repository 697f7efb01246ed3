"""shoal: a container orchestrator with Kubernetes' model and API and Docker Swarm's simplicity.

The packages follow the data flow of DESIGN.md: ``api`` (kinds), ``store`` (revisioned
key-value stores), ``server`` (the HTTP API), ``client`` (in-process and HTTP clients),
``cli`` (the ``shoal`` command).
"""

__version__ = "0.1.0"
