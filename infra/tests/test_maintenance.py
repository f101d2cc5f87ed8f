"""Issue 8: the scheduled `maintain` invocation of git-probe, by the `maintenance_schedule` setting."""

import json

import pytest

RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
PERMISSION = "aws:lambda/permission:Permission"
FUNCTION = "aws:lambda/function:Function"


def arn_of(resource) -> str:
    return f"arn:aws:mock:us-east-1:123456789012:{resource.name}"


def test_by_default_the_wiki_is_maintained_every_15_minutes(dev):
    rule = dev.one(RULE)
    assert rule.inputs["scheduleExpression"] == "rate(15 minutes)"
    assert rule.inputs["name"] == "wikibot-dev-maintenance"
    assert "eventPattern" not in rule.inputs and "eventBusName" not in rule.inputs, "schedules live on the default bus"
    target = dev.one(TARGET)
    assert target.inputs["rule"] == rule.inputs["name"]
    assert target.inputs["arn"] == arn_of(dev.one(FUNCTION, "git-probe"))
    assert json.loads(target.inputs["input"]) == {"op": "maintain", "repo": "wiki"}
    assert not {"inputPath", "inputTransformer"} & set(target.inputs), "the event is constant"
    retry = target.inputs["retryPolicy"]
    assert retry == {"maximumEventAgeInSeconds": 900, "maximumRetryAttempts": 2}, "a missed run is harmless"


def test_the_maintained_wiki_is_the_one_the_mcp_server_serves(run_stack):
    stack = run_stack({"wikibot:wiki": "team-notes", "wikibot:maintenance_schedule": "cron(0 3 * * ? *)"})
    assert stack.one(RULE).inputs["scheduleExpression"] == "cron(0 3 * * ? *)"
    served = stack.one(FUNCTION, "mcp-server").plain("environment")["variables"]["WIKIBOT_WIKI"]
    assert served == "team-notes"
    assert json.loads(stack.one(TARGET).inputs["input"]) == {"op": "maintain", "repo": served}


def test_only_this_rule_may_invoke_only_git_probe(dev):
    rule = dev.one(RULE)
    permission = dev.one(PERMISSION, "maintenance")
    assert permission.inputs["principal"] == "events.amazonaws.com"
    assert permission.inputs["action"] == "lambda:InvokeFunction"
    assert permission.inputs["function"] == "wikibot-dev-git-probe"
    assert permission.inputs["sourceArn"] == arn_of(rule)
    assert "qualifier" not in permission.inputs and "principalOrgId" not in permission.inputs
    others = [p for p in dev.of_type(PERMISSION) if p is not permission]
    assert [p.inputs["principal"] for p in others] == ["apigateway.amazonaws.com"], "no other way in"


@pytest.mark.parametrize(
    "schedule",
    ["rate(1 minute)", "rate(5 minutes)", "rate(1 hour)", "rate(6 hours)", "rate(1 day)",
     "cron(0/30 * * * ? *)", "cron(0 4 ? * MON-FRI *)"],
)
def test_rate_and_cron_schedules_are_accepted(run_stack, schedule):
    assert run_stack({"wikibot:maintenance_schedule": schedule}).one(RULE).inputs["scheduleExpression"] == schedule


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("every 15 minutes", "must be `rate"),
        ("rate(15)", "must be `rate"),
        ("rate(0 minutes)", "must be `rate"),
        ("rate(2 weeks)", "must be `rate"),
        ("rate(15 minute)", "plural unit"),
        ("rate(1 hours)", "rate\\(1 hour\\)"),
        ("cron(0 3 * * *)", "six fields, not 5"),
        ("cron(0 3 * * MON *)", "must be `\\?`"),
        ("Off", "must be `rate"),
    ],
)
def test_a_bad_schedule_is_refused_naming_the_setting(run_stack, schedule, message):
    with pytest.raises(Exception, match=message) as raised:
        run_stack({"wikibot:maintenance_schedule": schedule})
    assert "maintenance_schedule" in str(raised.value)
    assert repr(schedule) in str(raised.value), "the error quotes what was given"


def test_off_creates_nothing_and_changes_nothing_else(run_stack):
    on, off = run_stack(), run_stack({"wikibot:maintenance_schedule": "off"})
    assert not off.of_type(RULE) and not off.of_type(TARGET)
    assert [p.inputs["principal"] for p in off.of_type(PERMISSION)] == ["apigateway.amazonaws.com"]
    assert off.program["maintenance"].rule is None

    def aws_resources(stack):
        return sorted((r.typ, r.name) for r in stack.resources if r.typ.startswith("aws:"))

    added = sorted(set(aws_resources(on)) - set(aws_resources(off)))
    assert added == sorted([(RULE, "maintenance-schedule"), (TARGET, "maintenance-target"), (PERMISSION, "maintenance-invoke")])
    assert set(aws_resources(off)) <= set(aws_resources(on))
