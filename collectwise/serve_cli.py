"""`collectwise serve` (the scorer under uvicorn) and `collectwise keys` (API keys)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from collectwise.shell import new_app

log = logging.getLogger("collectwise")

keys_app = new_app(help="API keys for the scorer: only their hashes are configured.")
KEYS_ENV = "COLLECTWISE_SERVING__API_KEYS"
# The name before the settings had sections: its line is carried over to KEYS_ENV.
LEGACY_KEYS_ENV = "COLLECTWISE_API_KEYS"


def serve(
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
) -> None:
    """Run the scoring API (FastAPI under uvicorn); Ctrl-C stops it."""
    import uvicorn  # noqa: PLC0415

    metrics_dir = None
    if workers > 1:
        # Each worker writes its metrics here and /metrics merges them (prometheus_client);
        # the workers read both variables from the environment they inherit.
        metrics_dir = Path(tempfile.mkdtemp(prefix="collectwise-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        os.environ["COLLECTWISE_SERVING__METRICS_DIR"] = str(metrics_dir)
    log.info("scorer on http://%s:%d (docs at /docs), %d worker(s)", host, port, workers)
    try:
        uvicorn.run(
            "collectwise.startup:scorer_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


@keys_app.command("new")
def new_key(
    name: Annotated[str, typer.Option(help="the caller's name, as logs and limits show it")],
    scopes: Annotated[str, typer.Option(help="comma-separated: score, explain, admin")] = "score",
    env_file: Annotated[
        Path | None, typer.Option(help=f"add the hash to {KEYS_ENV} in this (git-ignored) file")
    ] = None,
    key_out: Annotated[
        Path | None, typer.Option(help="also write the key to this file (mode 600)")
    ] = None,
) -> None:
    """Make a key; print it once with the configuration entry holding only its hash."""
    from pydantic import ValidationError  # noqa: PLC0415

    from collectwise.settings import ApiKeyEntry  # noqa: PLC0415
    from serving.auth import hash_key, new_key  # noqa: PLC0415

    key = new_key()
    try:
        entry = ApiKeyEntry(name=name, sha256=hash_key(key), scopes=scopes.split(","))  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        log.error("invalid key entry: %s", problems)
        raise typer.Exit(1) from exc
    if env_file is not None:
        _add_to_env_file(env_file, entry.model_dump())
        log.info("added %s's key hash to %s in %s", name, KEYS_ENV, env_file)
    if key_out is not None:
        key_out.parent.mkdir(parents=True, exist_ok=True)
        key_out.write_text(key + "\n")
        key_out.chmod(0o600)
    typer.echo(f"key (shown once): {key}")
    typer.echo(f"entry: {json.dumps(entry.model_dump())}")


def _add_to_env_file(path: Path, entry: dict[str, object]) -> None:
    lines = path.read_text().splitlines() if path.exists() else []
    current: list[dict[str, object]] = []
    kept = []
    for line in lines:
        if line.startswith((f"{KEYS_ENV}=", f"{LEGACY_KEYS_ENV}=")):
            current = json.loads(line.split("=", 1)[1].strip().strip("'"))
        else:
            kept.append(line)
    current = [e for e in current if e.get("name") != entry["name"]] + [entry]
    kept.append(f"{KEYS_ENV}='{json.dumps(current)}'")
    path.write_text("\n".join(kept) + "\n")


def demo_request(
    port: Annotated[int, typer.Option(min=1, max=65535, help="the scorer's port")] = 8000,
    key_file: Annotated[Path, typer.Option(help="file holding a score key")] = Path(
        ".run/demo.key"
    ),
    wait: Annotated[float, typer.Option(help="seconds to wait for /readyz")] = 120.0,
) -> None:
    """Wait until the local scorer is ready, then print a curl command that scores an account."""
    import time  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            log.error(
                "the scorer at %s was not ready within %.0fs (see .run/scorer.log)", base, wait
            )
            raise typer.Exit(1)
        time.sleep(1)
    account = _latest_account()
    key = key_file.read_text().strip()
    body = json.dumps({"account_id": account})
    command = (
        f"curl -s -X POST {base}/v1/score -H 'Content-Type: application/json' "
        f"-H \"X-API-Key: $(cat {key_file})\" -d '{body}'"
    )
    answer = httpx.post(
        f"{base}/v1/score", json={"account_id": account}, headers={"X-API-Key": key}
    )
    log.info("scorer ready at %s (API docs %s/docs); a scored account:", base, base)
    typer.echo(command)
    typer.echo(json.dumps(answer.json(), indent=2)[:1500])


def _latest_account() -> str:
    """An account present in the newest snapshot, hence in the online store."""
    import pandas as pd  # noqa: PLC0415

    from collectwise.settings import get_settings  # noqa: PLC0415

    profile = pd.read_parquet(get_settings().paths.features_dir / "account_profile.parquet")
    newest = profile[profile["event_timestamp"] == profile["event_timestamp"].max()]
    return str(newest["account_id"].sort_values().iloc[0])
