"""Entities: the debt being collected and the person who owes it."""

from feast import Entity, ValueType

# The debt being collected; every account-level feature and every score is keyed by it.
account = Entity(
    name="account",
    join_keys=["account_id"],
    value_type=ValueType.STRING,
    description="A delinquent account placed with collections",
)

# The person; one customer may hold several accounts, so income-based ratios live here.
customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="The debtor, who may hold several accounts",
)
