"""The objects `feast apply` registers: the definitions over this profile's data directory.

Feast discovers Feast objects at module level, so this is the only module that builds them
at import; everything else builds them through feature_repo.definitions.
"""

from collectwise.settings import get_settings
from feature_repo.definitions import build_definitions

_definitions = build_definitions(get_settings().paths.features_dir)

account_payment_velocity = _definitions.views.account_payment_velocity
customer_financial_ratios = _definitions.views.customer_financial_ratios
account_contact_behavior = _definitions.views.account_contact_behavior
account_profile = _definitions.views.account_profile
account_default_labels = _definitions.views.account_default_labels
request_time_features = _definitions.request_view
collection_risk_v1 = _definitions.services[0]
