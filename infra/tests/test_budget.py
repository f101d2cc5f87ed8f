"""P0-9: the monthly cost budget and its three e-mail alerts."""

import pytest


def test_a_fifty_dollar_monthly_cost_budget_with_three_alerts(dev):
    budget = dev.one("aws:budgets/budget:Budget")
    inputs = budget.inputs
    assert (inputs["budgetType"], inputs["limitAmount"], inputs["limitUnit"], inputs["timeUnit"]) == ("COST", "50", "USD", "MONTHLY")
    alerts = sorted((n["threshold"], n["notificationType"]) for n in inputs["notifications"])
    assert alerts == [(80, "ACTUAL"), (100, "ACTUAL"), (100, "FORECASTED")]
    for notification in inputs["notifications"]:
        assert notification["thresholdType"] == "PERCENTAGE"
        assert notification["comparisonOperator"] == "GREATER_THAN"
        assert notification["subscriberEmailAddresses"] == ["owner@example.com"]


def test_spend_is_counted_before_credits_and_refunds(dev):
    cost_types = dev.one("aws:budgets/budget:Budget").inputs["costTypes"]
    assert cost_types["includeCredit"] is False, "credits would hide the spend the alerts are for"
    assert cost_types["includeRefund"] is False


def test_the_amount_and_address_come_from_config(run_stack):
    stack = run_stack({"wikibot:budget_amount_usd": "20", "wikibot:budget_email": "ops@example.org"})
    inputs = stack.one("aws:budgets/budget:Budget").inputs
    assert inputs["limitAmount"] == "20"
    assert {a for n in inputs["notifications"] for a in n["subscriberEmailAddresses"]} == {"ops@example.org"}


def test_an_address_is_required(run_stack):
    with pytest.raises(Exception, match="budget_email"):
        run_stack({"wikibot:budget_email": "not-an-address"})
