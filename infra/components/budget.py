"""P0-9: the cost guard rail. A monthly cost budget (default $50) that e-mails the owner at
80 % and 100 % of actual spend and when the forecast passes 100 %. Spend is counted before
credits and refunds: on an account living on credits, net cost stays near zero and no alert
would ever fire.

This component must not create anything that costs money.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from .settings import Settings

# (threshold %, ACTUAL or FORECASTED)
ALERTS = ((80, "ACTUAL"), (100, "ACTUAL"), (100, "FORECASTED"))


class CostBudget(pulumi.ComponentResource):
    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("wikibot:billing:CostBudget", name, None, opts)
        self.budget = aws.budgets.Budget(
            f"{name}-monthly",
            name=f"{settings.prefix}-monthly-cost",
            budget_type="COST",
            limit_amount=str(settings.budget_amount_usd),
            limit_unit="USD",
            time_unit="MONTHLY",
            cost_types=aws.budgets.BudgetCostTypesArgs(include_credit=False, include_refund=False),
            notifications=[
                aws.budgets.BudgetNotificationArgs(
                    comparison_operator="GREATER_THAN",
                    threshold=threshold,
                    threshold_type="PERCENTAGE",
                    notification_type=kind,
                    subscriber_email_addresses=[settings.budget_email],
                )
                for threshold, kind in ALERTS
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"budget": self.budget.name})
