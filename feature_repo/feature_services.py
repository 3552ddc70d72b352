"""Feature services: one per model generation, never edited in place (add _v2 instead).

Training and serving name only the service, so a model version is tied to exactly one set
of features.
"""

from feast import FeatureService
from feast.on_demand_feature_view import OnDemandFeatureView

from feature_repo.views import Views

COLLECTION_RISK_V1 = "collection_risk_v1"


def make_collection_risk_v1(views: Views, request_view: OnDemandFeatureView) -> FeatureService:
    # The first model generation: every catalogue feature plus the request-time features.
    return FeatureService(
        name=COLLECTION_RISK_V1,
        features=[
            views.account_payment_velocity,
            views.customer_financial_ratios,
            views.account_contact_behavior,
            request_view,
        ],
        description="Features of the first collection-risk model generation",
        tags={"generation": "v1"},
    )
