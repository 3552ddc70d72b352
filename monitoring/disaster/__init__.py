"""Disaster recovery: back the platform up, restore it into an empty home, rebuild the online
store from the offline tables.

Modules: targets (what a backup holds and where each item lives, from the settings), copies
(taking and putting back one item by kind: SQLite's backup API, pg_dump, files, folders),
manifest (the checksummed manifest and its check), backup (create, verify, restore) and
rebuild (rebuild-online and its online/offline check). Callers import the backup functions
from here and rebuild_online from monitoring.disaster.rebuild, which loads Feast: checking a
backup should not wait seconds for it.
"""

from monitoring.disaster.backup import (
    Outcome,
    RestoreConflictError,
    backups_in,
    create_backup,
    prune,
    restore_backup,
    verify_backup,
)
from monitoring.disaster.manifest import BackupRefused, Manifest
from monitoring.disaster.targets import ITEMS

__all__ = [
    "ITEMS",
    "BackupRefused",
    "Manifest",
    "Outcome",
    "RestoreConflictError",
    "backups_in",
    "create_backup",
    "prune",
    "restore_backup",
    "verify_backup",
]
