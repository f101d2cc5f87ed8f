"""The three Lambda functions, their role and log groups (P0-2, P0-3, P0-4, P0-7)."""

import json

import pytest

FUNCTION = "aws:lambda/function:Function"
NAMES = ("efs-probe", "git-probe", "mcp-server")


def functions(stack):
    return {name: stack.one(FUNCTION, name) for name in NAMES}


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_every_function_is_a_traced_vpc_bootstrap_with_the_wiki_mounted(run_stack, zips, architecture):
    stack = run_stack({"wikibot:architecture": architecture, "wikibot:memory_mb": "1024", "wikibot:timeout_seconds": "20"})
    private = stack.one("aws:ec2/subnet:Subnet", "private")
    lambda_sg = stack.one("aws:ec2/securityGroup:SecurityGroup", "lambda")
    access_point = stack.one("aws:efs/accessPoint:AccessPoint")
    role = stack.one("aws:iam/role:Role")
    for name, fn in functions(stack).items():
        inputs = fn.inputs
        assert inputs["runtime"] == "provided.al2023", name
        assert inputs["handler"] == "bootstrap"
        assert inputs["architectures"] == [architecture]
        assert inputs["tracingConfig"] == {"mode": "Active"}
        assert inputs["fileSystemConfig"] == {"arn": f"arn:aws:mock:us-east-1:123456789012:{access_point.name}", "localMountPath": "/mnt/efs"}
        assert inputs["vpcConfig"]["subnetIds"] == [private.id]
        assert inputs["vpcConfig"]["securityGroupIds"] == [lambda_sg.id]
        assert inputs["memorySize"] == 1024 and inputs["timeout"] == 20
        assert inputs["role"] == f"arn:aws:mock:us-east-1:123456789012:{role.name}"
        assert inputs["name"] == f"wikibot-dev-{name}"
        assert inputs["loggingConfig"]["logFormat"] == "JSON"
        assert inputs["code"].path == str(zips / f"{name}-{architecture}.zip")
        env = fn.plain("environment")["variables"]
        assert env["WIKIBOT_ROOT"] == "/mnt/efs"
        assert env["WIKIBOT_STALE_LOCK_SECS"] == "50", "timeout plus a 30 s margin"


def test_the_mcp_server_knows_its_public_url_and_auth_settings(run_stack):
    stack = run_stack({"wikibot:authkit_domain": "acme-123.authkit.app", "wikibot:allow_any_user": "true"})
    env = stack.one(FUNCTION, "mcp-server").plain("environment")["variables"]
    api = stack.one("aws:apigatewayv2/api:Api")
    assert env["MCP_RESOURCE_URL"] == f"https://{api.id}.execute-api.us-east-1.amazonaws.com/mcp"
    assert env["MCP_RESOURCE_URL"] == stack.resolve(stack.program["api"].mcp_url)
    assert env["AUTHKIT_DOMAIN"] == "acme-123.authkit.app"
    assert env["WIKIBOT_WIKI"] == "wiki"
    assert len(env["MCP_AUTH_TOKEN"]) >= 32


def test_log_groups_are_named_for_the_functions_and_expire(dev):
    groups = {g.inputs["name"]: g.inputs["retentionInDays"] for g in dev.of_type("aws:cloudwatch/logGroup:LogGroup")}
    assert groups == {f"/aws/lambda/wikibot-dev-{name}": 14 for name in NAMES}


def policies(stack):
    return {p.name: json.loads(p.plain("policy")) for p in stack.of_type("aws:iam/rolePolicy:RolePolicy")}


def test_the_role_is_assumable_only_by_lambda(dev):
    trust = json.loads(dev.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert trust["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    assert not dev.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"), "no broad managed policies"


def test_no_policy_allows_every_action_or_wildcard_actions_on_every_resource(dev):
    statements = [s for document in policies(dev).values() for s in document["Statement"]]
    assert statements
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        assert statement["Effect"] == "Allow"
        assert not any(a == "*" or a.endswith(":*") for a in actions), statement
        if "*" in resources:
            # Only the services without resource-level permissions get "*".
            assert all(a.startswith(("ec2:", "xray:")) for a in actions), statement


def test_each_permission_is_scoped_to_this_stack(dev):
    by_name = {name.split("functions-")[1]: doc["Statement"][0] for name, doc in policies(dev).items()}
    assert set(by_name) == {"vpc-access", "logs", "efs-client", "xray"}
    efs = by_name["efs-client"]
    assert sorted(efs["Action"]) == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    fs = dev.one("aws:efs/fileSystem:FileSystem")
    point = dev.one("aws:efs/accessPoint:AccessPoint")
    assert efs["Resource"] == f"arn:aws:mock:us-east-1:123456789012:{fs.name}"
    assert efs["Condition"] == {"StringEquals": {"elasticfilesystem:AccessPointArn": f"arn:aws:mock:us-east-1:123456789012:{point.name}"}}
    logs = by_name["logs"]
    assert sorted(logs["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert len(logs["Resource"]) == 3 and all(r.endswith(":*") and "logs" in r for r in logs["Resource"])
    assert sorted(by_name["xray"]["Action"]) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]


def test_the_network_permissions_are_those_of_the_managed_vpc_access_policy(dev):
    vpc = next(json.loads(p.plain("policy")) for p in dev.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("vpc-access"))
    # AWSLambdaVPCAccessExecutionRole's EC2 actions (its logs actions are the `logs` policy).
    assert sorted(vpc["Statement"][0]["Action"]) == [
        "ec2:AssignPrivateIpAddresses",
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:UnassignPrivateIpAddresses",
    ]
