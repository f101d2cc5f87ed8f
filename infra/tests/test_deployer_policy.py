"""infra/deployer-policy.json, the deployer's permissions (README "Deploying"): it covers every
kind of resource and lookup the program uses, in every egress mode, and hands the functions'
role to Lambda only. (Whether AWS accepts a deployment with exactly these permissions only a
real account shows.)"""

import fnmatch
import json

import pytest

from conftest import INFRA

POLICY = json.loads((INFRA / "deployer-policy.json").read_text())
# Which IAM service a resource type of the AWS provider is managed through.
SERVICE_OF = {
    "ec2": "ec2",
    "vpc": "ec2",
    "efs": "elasticfilesystem",
    "lambda": "lambda",
    "iam": "iam",
    "apigateway": "apigateway",
    "apigatewayv2": "apigateway",
    "acm": "acm",
    "route53": "route53",
    "budgets": "budgets",
    "ssm": "ssm",
}
SERVICE_OF_RESOURCE = {
    "aws:cloudwatch/logGroup:LogGroup": "logs",
    "aws:cloudwatch/eventRule:EventRule": "events",
    "aws:cloudwatch/eventTarget:EventTarget": "events",
}
# The IAM action behind each lookup the program makes.
ACTION_OF_CALL = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": "ec2:DescribeAvailabilityZones",
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": "ec2:DescribeInstanceTypeOfferings",
    "aws:ec2/getAmi:getAmi": "ec2:DescribeImages",
}


def allowed_actions():
    for statement in POLICY["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        yield from [actions] if isinstance(actions, str) else actions


def allows(action: str) -> bool:
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in allowed_actions())


def service_of(resource_type: str) -> str:
    if resource_type in SERVICE_OF_RESOURCE:
        return SERVICE_OF_RESOURCE[resource_type]
    module = resource_type.split(":")[1].split("/")[0]
    assert module in SERVICE_OF, f"{resource_type}: which service manages it? add it here and to deployer-policy.json"
    return SERVICE_OF[module]


DOMAIN = {
    "wikibot:domain_name": "wiki.example.com",
    "wikibot:route53_zone_id": "Z0123456789ABCDEFGHIJ",
}


@pytest.mark.parametrize(
    "config",
    [{"wikibot:egress": "nat-instance"}, {"wikibot:egress": "nat-gateway"}, {"wikibot:egress": "none"}, DOMAIN],
    ids=["nat-instance", "nat-gateway", "no-egress", "own-domain"],
)
def test_every_resource_and_lookup_of_the_program_is_covered(run_stack, config):
    stack = run_stack(config)
    types = {r.typ for r in stack.resources if r.typ.startswith("aws:")}
    for resource_type in types:
        service = service_of(resource_type)
        assert any(a.startswith(f"{service}:") for a in allowed_actions()), f"{resource_type} needs {service}:"
    for token, _ in stack.calls:
        assert allows(ACTION_OF_CALL[token]), token


def test_the_functions_role_can_be_handed_to_lambda_and_nothing_else():
    (pass_role,) = [s for s in POLICY["Statement"] if s["Action"] == "iam:PassRole"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}
    assert pass_role["Resource"] == "arn:aws:iam::*:role/functions-role-*", "only the role the program creates"
    iam = [s for s in POLICY["Statement"] if any(str(a).startswith("iam:") for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))]
    # Besides the functions' role, only API Gateway's own service-linked role (custom domains).
    (service_role,) = [s for s in iam if s["Action"] == "iam:CreateServiceLinkedRole"]
    assert service_role["Condition"] == {"StringEquals": {"iam:AWSServiceName": "ops.apigateway.amazonaws.com"}}
    assert service_role["Resource"].endswith("/ops.apigateway.amazonaws.com/AWSServiceRoleForAPIGateway")
    assert all(s["Resource"] == "arn:aws:iam::*:role/functions-role-*" for s in iam if s is not service_role)
    assert not allows("iam:CreateUser") and not allows("iam:AttachRolePolicy"), "no managed policies, no users"


def test_the_role_name_pattern_is_the_one_pulumi_gives_the_role(dev):
    role = dev.one("aws:iam/role:Role")
    assert fnmatch.fnmatchcase(f"{role.name}-1a2b3c4", "functions-role-*"), "Pulumi adds a random suffix"
    assert "name" not in role.inputs, "auto-named, as the policy expects"


def resources_of(sid: str) -> list[str]:
    (statement,) = [s for s in POLICY["Statement"] if s["Sid"] == sid]
    return [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]


def covered(arn: str, sid: str) -> bool:
    return any(fnmatch.fnmatchcase(arn, pattern) for pattern in resources_of(sid))


def test_the_named_resources_fall_under_the_scoped_statements(dev):
    for fn in dev.of_type("aws:lambda/function:Function"):
        assert covered(f"arn:aws:lambda:us-east-1:123456789012:function:{fn.inputs['name']}", "Functions")
    for group in dev.of_type("aws:cloudwatch/logGroup:LogGroup"):
        assert covered(f"arn:aws:logs:us-east-1:123456789012:log-group:{group.inputs['name']}", "FunctionLogs")
    rule = dev.one("aws:cloudwatch/eventRule:EventRule")
    assert covered(f"arn:aws:events:us-east-1:123456789012:rule/{rule.inputs['name']}", "MaintenanceSchedule")
    budget = dev.one("aws:budgets/budget:Budget")
    assert covered(f"arn:aws:budgets::123456789012:budget/{budget.inputs['name']}", "CostBudget")
    parameter = dev.one("aws:ssm/parameter:Parameter")
    assert covered(f"arn:aws:ssm:us-east-1:123456789012:parameter{parameter.inputs['name']}", "Secrets")


def test_the_api_and_its_domain_fall_under_the_api_statement(run_stack):
    stack = run_stack(DOMAIN)
    api = stack.one("aws:apigatewayv2/api:Api")
    for path in ("/apis", f"/apis/{api.id}", f"/apis/{api.id}/routes/r1", f"/apis/{api.id}/stages/$default"):
        assert covered(f"arn:aws:apigateway:us-east-1::{path}", "McpApi"), path
    domain = stack.one("aws:apigatewayv2/domainName:DomainName").inputs["domainName"]
    for path in ("/domainnames", f"/domainnames/{domain}", f"/domainnames/{domain}/apimappings/m1"):
        assert covered(f"arn:aws:apigateway:us-east-1::{path}", "McpApi"), path
    zone = stack.one("aws:route53/record:Record", "mcp-domain-record").inputs["zoneId"]
    assert covered(f"arn:aws:route53:::hostedzone/{zone}", "DomainRecords")
    assert not allows("route53:CreateHostedZone") and not allows("route53:DeleteHostedZone"), "the zone is the user's"
