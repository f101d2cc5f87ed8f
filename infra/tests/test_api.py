"""P0-7 and P0-8: the front door, an HTTP API whose `$default` stage serves `mcp-server` at
the root of its host (docs/decisions/0005-front-door.md)."""

import pytest

API = "aws:apigatewayv2/api:Api"
ROUTE = "aws:apigatewayv2/route:Route"
INTEGRATION = "aws:apigatewayv2/integration:Integration"
STAGE = "aws:apigatewayv2/stage:Stage"


def test_mcp_and_well_known_routes_at_the_root_proxy_to_the_mcp_server(dev):
    api = dev.one(API)
    assert api.inputs["protocolType"] == "HTTP"
    mcp_server = dev.one("aws:lambda/function:Function", "mcp-server")
    integration = dev.one(INTEGRATION)
    assert integration.inputs["apiId"] == api.id
    assert integration.inputs["integrationType"] == "AWS_PROXY"
    assert integration.inputs["integrationMethod"] == "POST"
    assert integration.inputs["payloadFormatVersion"] == "2.0", "the event shape tests/mcp_lambda.rs feeds the function"
    assert integration.inputs["integrationUri"] == (
        f"arn:aws:apigateway:us-east-1:lambda:path/functions/{mcp_server.name}/invocations"
    )
    routes = {r.inputs["routeKey"]: r.inputs for r in dev.of_type(ROUTE)}
    # No stage or base path in front: the metadata is where RFC 9728 puts it.
    assert set(routes) == {"ANY /mcp", "ANY /.well-known/{proxy+}"}
    for route in routes.values():
        assert route["apiId"] == api.id
        assert route["target"] == f"integrations/{integration.id}"
        assert route["authorizationType"] == "NONE", "the function authenticates (WWW-Authenticate)"


def test_the_default_stage_deploys_itself_and_the_api_may_invoke_the_function(dev):
    api = dev.one(API)
    stage = dev.one(STAGE)
    assert stage.inputs["name"] == "$default", "no stage prefix in any path"
    assert stage.inputs["autoDeploy"] is True
    assert stage.inputs["apiId"] == api.id
    permission = dev.one("aws:lambda/permission:Permission", "mcp-api")
    assert permission.inputs["principal"] == "apigateway.amazonaws.com"
    assert permission.inputs["action"] == "lambda:InvokeFunction"
    assert permission.inputs["function"] == "wikibot-dev-mcp-server"
    assert permission.inputs["sourceArn"] == f"arn:aws:execute-api:us-east-1:123456789012:{api.id}/*/*"


def test_the_mcp_url_is_the_execute_api_host_root_and_the_function_checks_it(dev):
    api = dev.one(API)
    url = dev.resolve(dev.program["api"].mcp_url)
    assert url == f"https://{api.id}.execute-api.us-east-1.amazonaws.com/mcp"
    assert api.inputs["disableExecuteApiEndpoint"] is False, "without a domain, it is the URL"
    mcp_server = dev.one("aws:lambda/function:Function", "mcp-server")
    assert mcp_server.plain("environment")["variables"]["MCP_RESOURCE_URL"] == url
    assert not [r for r in dev.resources if r.typ.startswith("aws:apigateway/")], "no REST API any more"


def test_the_whole_stage_is_throttled(run_stack):
    stack = run_stack({"wikibot:api_throttle_rate": "2.5", "wikibot:api_throttle_burst": "7"})
    settings = stack.one(STAGE).inputs["defaultRouteSettings"]
    assert settings["throttlingRateLimit"] == 2.5
    assert settings["throttlingBurstLimit"] == 7


def test_throttling_is_on_by_default(dev):
    settings = dev.one(STAGE).inputs["defaultRouteSettings"]
    assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (10, 20)


def test_the_api_waits_longer_than_the_function_may_run(run_stack):
    for timeout in ("1", "28"):
        stack = run_stack({"wikibot:timeout_seconds": timeout})
        function_ms = stack.one("aws:lambda/function:Function", "mcp-server").inputs["timeout"] * 1000
        integration = stack.one(INTEGRATION)
        assert integration.inputs["timeoutMilliseconds"] == 29000
        assert integration.inputs["timeoutMilliseconds"] <= 30000, "an HTTP API's maximum"
        assert integration.inputs["timeoutMilliseconds"] >= function_ms + 1000, "a second for a cold start"


def test_a_leftover_stage_name_is_refused_with_the_way_out(run_stack):
    with pytest.raises(Exception, match="stage_name is no longer read") as raised:
        run_stack({"wikibot:stage_name": "prod"})
    assert "pulumi config rm stage_name" in str(raised.value)
