"""P0-7 and P0-4: the REST API in front of mcp-server, with X-Ray on its stage."""

REST = "aws:apigateway/restApi:RestApi"
RESOURCE = "aws:apigateway/resource:Resource"
INTEGRATION = "aws:apigateway/integration:Integration"


def test_mcp_and_well_known_routes_proxy_to_the_mcp_server(dev):
    api = dev.one(REST)
    mcp_server = dev.one("aws:lambda/function:Function", "mcp-server")
    resources = {r.inputs["pathPart"]: r for r in dev.of_type(RESOURCE)}
    assert set(resources) == {"mcp", ".well-known", "{proxy+}"}
    assert resources["mcp"].inputs["parentId"] == "root-resource-id"
    assert resources[".well-known"].inputs["parentId"] == "root-resource-id"
    assert resources["{proxy+}"].inputs["parentId"] == resources[".well-known"].id
    routed = {i.inputs["resourceId"]: i.inputs for i in dev.of_type(INTEGRATION)}
    assert set(routed) == {resources["mcp"].id, resources["{proxy+}"].id}
    for integration in routed.values():
        assert integration["type"] == "AWS_PROXY"
        assert integration["integrationHttpMethod"] == "POST"
        assert integration["uri"] == f"arn:aws:apigateway:us-east-1:lambda:path/functions/{mcp_server.name}/invocations"
        assert integration["restApi"] == api.id
    methods = dev.of_type("aws:apigateway/method:Method")
    assert sorted((m.inputs["httpMethod"], m.inputs["authorization"]) for m in methods) == [("ANY", "NONE")] * 2


def test_the_stage_has_xray_and_the_api_may_invoke_the_function(dev):
    api = dev.one(REST)
    stage = dev.one("aws:apigateway/stage:Stage")
    assert stage.inputs["xrayTracingEnabled"] is True
    assert stage.inputs["stageName"] == "prod"
    deployment = dev.one("aws:apigateway/deployment:Deployment")
    assert stage.inputs["deployment"] == deployment.id
    mcp_server = dev.one("aws:lambda/function:Function", "mcp-server")
    assert deployment.inputs["triggers"]["target"].endswith(f"/{mcp_server.name}/invocations"), "redeploy on a new target"
    permission = dev.one("aws:lambda/permission:Permission", "mcp-api")
    assert permission.inputs["principal"] == "apigateway.amazonaws.com"
    assert permission.inputs["action"] == "lambda:InvokeFunction"
    assert permission.inputs["function"] == "wikibot-dev-mcp-server"
    assert permission.inputs["sourceArn"] == f"arn:aws:execute-api:us-east-1:123456789012:{api.id}/*/*"


def test_the_mcp_url_is_the_stage_url_of_the_mcp_route(run_stack):
    stack = run_stack({"wikibot:stage_name": "v1"})
    api = stack.one(REST)
    url = stack.resolve(stack.program["api"].mcp_url)
    assert url == f"https://{api.id}.execute-api.us-east-1.amazonaws.com/v1/mcp"
    assert stack.one("aws:apigateway/stage:Stage").inputs["stageName"] == "v1"


def test_the_whole_stage_is_throttled(run_stack):
    stack = run_stack({"wikibot:api_throttle_rate": "2.5", "wikibot:api_throttle_burst": "7"})
    settings = stack.one("aws:apigateway/methodSettings:MethodSettings")
    assert settings.inputs["restApi"] == stack.one(REST).id
    assert settings.inputs["stageName"] == "prod"
    assert settings.inputs["methodPath"] == "*/*", "every method of every route"
    assert settings.inputs["settings"]["throttlingRateLimit"] == 2.5
    assert settings.inputs["settings"]["throttlingBurstLimit"] == 7


def test_throttling_is_on_by_default(dev):
    settings = dev.one("aws:apigateway/methodSettings:MethodSettings").inputs["settings"]
    assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (10, 20)


def test_the_api_waits_longer_than_the_function_may_run(run_stack):
    for timeout in ("1", "28"):
        stack = run_stack({"wikibot:timeout_seconds": timeout})
        function_ms = stack.one("aws:lambda/function:Function", "mcp-server").inputs["timeout"] * 1000
        for integration in stack.of_type(INTEGRATION):
            assert integration.inputs["timeoutMilliseconds"] == 29000, "the REST maximum"
            assert integration.inputs["timeoutMilliseconds"] >= function_ms + 1000, "a second for a cold start"
