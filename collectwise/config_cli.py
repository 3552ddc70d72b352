"""`collectwise config`: the effective settings, as every command of this shell reads them."""

from __future__ import annotations

import json
import logging

import typer
import yaml

from collectwise.settings import get_settings, masked
from collectwise.shell import new_app

app = new_app(help="The platform's settings.", no_args_is_help=True)
log = logging.getLogger("collectwise.config")


@app.command()
def show(
    as_json: bool = typer.Option(False, "--json", help="JSON instead of YAML"),
) -> None:
    """Print the effective settings (environment, the home's .env, defaults), secrets masked."""
    data = masked(get_settings())
    data["feature_store_yaml"] = str(get_settings().feature_store_yaml)
    text = json.dumps(data, indent=2) if as_json else yaml.safe_dump(data, sort_keys=False)
    typer.echo(text.rstrip())
