"""Reconcile loops of the manager (DESIGN §1): one module per controller, each a
``Controller`` whose ``reconcile(key)`` is idempotent and tested without the loop."""
