"""Platform settings for a console under test: every file of it under one temporary root."""

from __future__ import annotations

from pathlib import Path

from collectwise.settings import Settings


def console_settings(root: Path, **admin: object) -> Settings:
    """Users, key and batches under root/data/admin; reports under root/reports; the audit log
    and the alert store at root/audit.db and root/monitoring.db. Keywords set admin fields."""
    return Settings(
        home=root,
        paths={"audit_db": root / "audit.db"},  # type: ignore[arg-type]
        monitoring={"db_url": f"sqlite:///{root / 'monitoring.db'}"},  # type: ignore[arg-type]
        admin=admin,  # type: ignore[arg-type]
    )
