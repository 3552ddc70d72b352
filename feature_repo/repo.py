"""The objects `feast apply` registers: the definitions over this profile's data directory.

Feast discovers Feast objects at module level, so this is the only module that builds them
at import; everything else builds them through feature_repo.definitions.

The sources take the kind the profile's offline store reads (feature_repo.views), so this
reads the profile being applied: under Feast's CLI the one it chose (`feast -f X apply`, else
FEAST_FS_YAML_FILE_PATH, else feature_store.yaml), elsewhere the settings' profile.
"""

from __future__ import annotations

from pathlib import Path

import click
from feast.repo_config import RepoConfig, load_repo_config

from collectwise.settings import Settings, get_settings
from feature_repo.definitions import build_definitions


def _profile(settings: Settings) -> RepoConfig:
    # Feast's CLI keeps the yaml it loaded in its click context; `-f` never reaches the
    # environment, so the settings alone would miss `feast -f feature_store.spark.yaml apply`.
    context = click.get_current_context(silent=True)
    chosen = context.obj.get("FS_YAML_FILE") if context and isinstance(context.obj, dict) else None
    return load_repo_config(settings.home, Path(chosen or settings.feature_store_yaml))


_settings = get_settings()
_definitions = build_definitions(_settings.paths.features_dir, _profile(_settings))

account_payment_velocity = _definitions.views.account_payment_velocity
customer_financial_ratios = _definitions.views.customer_financial_ratios
account_contact_behavior = _definitions.views.account_contact_behavior
account_profile = _definitions.views.account_profile
account_default_labels = _definitions.views.account_default_labels
request_time_features = _definitions.request_view
collection_risk_v1 = _definitions.services[0]
