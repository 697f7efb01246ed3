"""Backup and restore of a whole cluster: beside the data flow, not a stage of it.

A backup is what a new manager needs to become the old cluster: every key and value of the
store as the backend holds it (Secrets stay encrypted) read at one revision, the cluster CA
and the admin's client certificate, and the keyring that decrypts the Secrets, exactly as on
disk (sealed with autolock). The manager serves it at ``GET /shoal/v1/backup``
(``server/backup.py``, for those RBAC lets read that URL: cluster admins).

- ``archive``: the file format (a gzip'd tar: ``manifest.json``, ``objects.jsonl``,
  ``files/...``), written and read with every check a damaged or foreign file needs;
- ``restore``: a backup into a fresh data dir and an empty store, all or nothing.

The restored store hands out new revisions (1, 2, ...): clients resuming a watch with an old
resourceVersion are told to list again (410), see ``server/resources.py``.
"""

from shoal.backup.archive import Backup, BackupError, Manifest, dumps, load, read_data_dir_files
from shoal.backup.restore import Restored, RestoreError, check_data_dir, restore

__all__ = [
    "Backup",
    "BackupError",
    "Manifest",
    "RestoreError",
    "Restored",
    "check_data_dir",
    "dumps",
    "load",
    "read_data_dir_files",
    "restore",
]
