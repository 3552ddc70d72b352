"""Every Feast object of the repo, built over one features directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feast import Entity, FeatureService, RequestSource
from feast.on_demand_feature_view import OnDemandFeatureView

from feature_repo.entities import account, customer
from feature_repo.feature_services import make_collection_risk_v1
from feature_repo.request_features import make_request_time_view, scoring_request
from feature_repo.views import Views, make_views

if TYPE_CHECKING:
    from feast.repo_config import RepoConfig


@dataclass(frozen=True)
class Definitions:
    entities: tuple[Entity, ...]
    views: Views
    request_source: RequestSource
    request_view: OnDemandFeatureView
    services: tuple[FeatureService, ...]

    def objects(self) -> list[Any]:
        """Everything to pass to FeatureStore.apply, in dependency order."""
        return [
            *self.entities,
            *self.views.all(),
            self.request_view,
            *self.services,
        ]


def build_definitions(features_dir: Path, config: RepoConfig | None = None) -> Definitions:
    """Every object over features_dir; config is the profile whose offline store will read
    the views' sources (feature_repo.views.source_kind), by default one that reads files."""
    views = make_views(features_dir, config)
    request_view = make_request_time_view(views)
    return Definitions(
        entities=(account, customer),
        views=views,
        request_source=scoring_request,
        request_view=request_view,
        services=(make_collection_risk_v1(views, request_view),),
    )
