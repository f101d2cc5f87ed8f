"""P0-7 and P0-4: the public MCP endpoint. An API Gateway REST API (REST, not HTTP API,
because only REST stages support X-Ray) proxies `/mcp` and `/.well-known/{proxy+}` to the
`mcp-server` function; the stage has X-Ray tracing on and is throttled (`api_throttle_rate`
requests per second, bursts of `api_throttle_burst`): past that API Gateway answers 429
without invoking the function. The integrations wait the REST maximum, 29 s, which
settings.py keeps above the function timeout.

The MCP URL is also the resource URL the function checks token audiences against, and the
function must exist before the API can route to it. The cycle is broken by building in two
steps: the REST API alone first (its id fixes the URL, `mcp_url`), then, once the function
exists, `route_to` adds the routes, the invoke permission, the deployment and the stage.

This component must not authenticate requests (the function does: MCP needs
`WWW-Authenticate` with `resource_metadata`, which API Gateway authorizers cannot send).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from .settings import API_INTEGRATION_TIMEOUT_SECONDS, Settings

MCP_PATH = "mcp"


class McpApi(pulumi.ComponentResource):
    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("wikibot:api:McpApi", name, None, opts)
        self._name = name
        self._settings = settings
        self.rest_api = aws.apigateway.RestApi(
            f"{name}-rest-api",
            name=f"{settings.prefix}-mcp",
            description="wikibot MCP endpoint",
            endpoint_configuration=aws.apigateway.RestApiEndpointConfigurationArgs(types="REGIONAL"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.base_url = self.rest_api.id.apply(
            lambda api_id: f"https://{api_id}.execute-api.{settings.region}.amazonaws.com/{settings.stage_name}"
        )
        self.mcp_url = self.base_url.apply(lambda base: f"{base}/{MCP_PATH}")
        self.stage: aws.apigateway.Stage | None = None

    def route_to(self, function: aws.lambda_.Function) -> None:
        """Routes `/mcp` and `/.well-known/{proxy+}` to `function` and publishes the stage."""
        name, settings, api = self._name, self._settings, self.rest_api
        child = pulumi.ResourceOptions(parent=self)

        mcp = aws.apigateway.Resource(
            f"{name}-mcp", rest_api=api.id, parent_id=api.root_resource_id, path_part=MCP_PATH, opts=child
        )
        well_known = aws.apigateway.Resource(
            f"{name}-well-known", rest_api=api.id, parent_id=api.root_resource_id, path_part=".well-known", opts=child
        )
        well_known_proxy = aws.apigateway.Resource(
            f"{name}-well-known-proxy", rest_api=api.id, parent_id=well_known.id, path_part="{proxy+}", opts=child
        )
        routed = []
        for route, resource in (("mcp", mcp), ("well-known", well_known_proxy)):
            method = aws.apigateway.Method(
                f"{name}-{route}-any",
                rest_api=api.id,
                resource_id=resource.id,
                http_method="ANY",
                authorization="NONE",
                opts=child,
            )
            integration = aws.apigateway.Integration(
                f"{name}-{route}-lambda",
                rest_api=api.id,
                resource_id=resource.id,
                http_method=method.http_method,
                type="AWS_PROXY",
                integration_http_method="POST",
                uri=function.invoke_arn,
                timeout_milliseconds=API_INTEGRATION_TIMEOUT_SECONDS * 1000,
                opts=child,
            )
            routed += [method, integration]

        aws.lambda_.Permission(
            f"{name}-invoke",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="apigateway.amazonaws.com",
            source_arn=api.execution_arn.apply(lambda arn: f"{arn}/*/*"),
            opts=child,
        )
        deployment = aws.apigateway.Deployment(
            f"{name}-deployment",
            rest_api=api.id,
            # A new deployment whenever a route or its target changes (a replaced function has
            # a new invoke ARN; the stage would otherwise keep serving the old snapshot).
            triggers={
                "routes": pulumi.Output.all(*[r.id for r in routed]).apply(lambda ids: ",".join(ids)),
                "target": function.invoke_arn,
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=routed),
        )
        self.stage = aws.apigateway.Stage(
            f"{name}-stage",
            rest_api=api.id,
            deployment=deployment.id,
            stage_name=settings.stage_name,
            xray_tracing_enabled=True,
            opts=child,
        )
        self.throttling = self._throttle(self.stage)
        self.register_outputs({"mcp_url": self.mcp_url})

    def _throttle(self, stage: aws.apigateway.Stage) -> aws.apigateway.MethodSettings:
        """Stage-wide throttling: every method of every route (`*/*`)."""
        return aws.apigateway.MethodSettings(
            f"{self._name}-throttling",
            rest_api=self.rest_api.id,
            stage_name=stage.stage_name,
            method_path="*/*",
            settings=aws.apigateway.MethodSettingsSettingsArgs(
                throttling_rate_limit=self._settings.api_throttle_rate,
                throttling_burst_limit=self._settings.api_throttle_burst,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
