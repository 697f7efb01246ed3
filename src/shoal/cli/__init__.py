"""The ``shoal`` command: a click group (``main``) whose subcommands talk to the API server.

Modules: ``main`` (the group, global options, the one error handler), ``context`` (what the
commands share: settings, the async runner, the client), ``output`` (tables, yaml/json/name),
``resources`` (get, describe, delete, apply), ``server`` (the server command).
"""
