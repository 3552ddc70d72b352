"""`collectwise backup create | verify | restore` and `collectwise rebuild-online`: a thin shell
over monitoring.disaster, imported inside the commands so `--help` stays fast."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from collectwise.settings import get_settings
from collectwise.shell import new_app

app = new_app(
    help="Back the platform up, check a backup, restore it into a home.",
    no_args_is_help=True,
)
log = logging.getLogger("collectwise.backup")

BackupDir = Annotated[Path, typer.Argument(help="a backup folder (one `backup create` wrote)")]


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@app.command()
def create(
    parent: Annotated[
        Path, typer.Argument(help="backup directory: each run writes a new folder inside it")
    ],
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="an item backed up by other means (repeatable), e.g. platform-db"),
    ] = None,
    keep: Annotated[
        int | None, typer.Option(min=1, help="then keep only the newest N backups in the directory")
    ] = None,
) -> None:
    """Snapshot what cannot be rebuilt from raw data, with a checksummed manifest."""
    from monitoring.disaster import create_backup  # noqa: PLC0415

    done = create_backup(get_settings(), parent, exclude or [], keep=keep)
    typer.echo(
        f"backup written: {done.folder} ({len(done.items)} items, "
        f"{_megabytes(done.size)}, {done.seconds:.1f} s)"
    )


@app.command()
def verify(folder: BackupDir) -> None:
    """Check every file of a backup against its manifest; exit 1 naming each bad item."""
    from monitoring.disaster import verify_backup  # noqa: PLC0415

    manifest = verify_backup(folder)
    typer.echo(
        f"backup intact: {folder} ({len(manifest.items)} items, {_megabytes(manifest.size)}, "
        f"taken {manifest.created_at:%Y-%m-%d %H:%M:%S} UTC of {manifest.home})"
    )


@app.command()
def restore(
    folder: BackupDir,
    force: Annotated[
        bool, typer.Option(help="replace what the home holds (stop its services first)")
    ] = False,
) -> None:
    """Restore a verified backup into the home; then rebuild what derives from raw data
    (validate, build-features, apply, rebuild-online)."""
    from monitoring.disaster import restore_backup  # noqa: PLC0415

    settings = get_settings()
    done = restore_backup(settings, folder, force=force)
    typer.echo(
        f"restored into {settings.home}: {', '.join(done.items)} "
        f"({_megabytes(done.size)}, {done.seconds:.1f} s)"
    )


def rebuild_online(
    features: Annotated[
        Path | None, typer.Option(help="feature tables (default: the data directory's)")
    ] = None,
    sample: Annotated[int, typer.Option(min=1, help="accounts checked against offline")] = 50,
    seed: Annotated[int, typer.Option(help="seed of the sample")] = 0,
) -> None:
    """Reload the online store from the offline feature tables; check a sample of accounts
    against offline retrieval, exit 1 naming any mismatch."""
    from monitoring.disaster.rebuild import rebuild_online as run  # noqa: PLC0415

    done = run(get_settings(), features, sample=sample, seed=seed)
    typer.echo(
        f"online store rebuilt at {done.as_of:%Y-%m-%d}: {done.checked_accounts} accounts "
        f"({done.checked_values} values) match offline retrieval ({done.seconds:.1f} s)"
    )
