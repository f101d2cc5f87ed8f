"""P0-7 and P0-8: the front door of the MCP server (docs/decisions/0005-front-door.md).

An API Gateway HTTP API whose `$default` stage answers at the root of its host: `/mcp` and
`/.well-known/{proxy+}` go to the `mcp-server` function (payload format 2.0), every other path
is a 404 from API Gateway without invoking it. At the host root, Claude.ai finds the
protected-resource metadata where RFC 9728 puts it (`/.well-known/oauth-protected-resource`
and `…/oauth-protected-resource/mcp`), which it needs when a gateway renames the 401's
`WWW-Authenticate` header. The stage is throttled (`api_throttle_rate` requests per second,
bursts of `api_throttle_burst`): past that API Gateway answers 429 without invoking the
function. The integration waits 29 s, which settings.py keeps above the function timeout.

The MCP URL is `https://<api-id>.execute-api.<region>.amazonaws.com/mcp`, or, with a
`domain_name`, `https://<domain_name>/mcp` (components/domain.py maps the API at the domain's
root, and the `execute-api` endpoint is turned off so there is one URL).

The MCP URL is also the resource URL the function checks token audiences against, and the
function must exist before the API can route to it. The cycle is broken by building in two
steps: the API alone first (its id fixes the URL, `mcp_url`), then, once the function
exists, `route_to` adds the integration, the routes, the invoke permission and the stage.

This component must not authenticate requests (the function does: MCP needs
`WWW-Authenticate` with `resource_metadata`, which API Gateway authorizers cannot send).
HTTP API stages have no X-Ray tracing: traces start at the function (tracing Active).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from .settings import API_INTEGRATION_TIMEOUT_SECONDS, Settings

MCP_PATH = "mcp"
# Everything the function serves; `ANY` lets CORS preflights reach it (the function answers
# them for allowed origins).
ROUTES = {"mcp": f"ANY /{MCP_PATH}", "well-known": "ANY /.well-known/{proxy+}"}
DEFAULT_STAGE = "$default"


class McpApi(pulumi.ComponentResource):
    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("wikibot:api:McpApi", name, None, opts)
        self._name = name
        self._settings = settings
        self.http_api = aws.apigatewayv2.Api(
            f"{name}-http-api",
            name=f"{settings.prefix}-mcp",
            description="wikibot MCP endpoint",
            protocol_type="HTTP",
            # With its own domain the stack has one URL: the tokens' audience, the only Host
            # the function accepts.
            disable_execute_api_endpoint=settings.domain_name is not None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        if settings.domain_name is not None:
            self.base_url: pulumi.Output[str] = pulumi.Output.from_input(f"https://{settings.domain_name}")
        else:
            # `https://<api-id>.execute-api.<region>.amazonaws.com`, no stage: `$default` serves the root.
            self.base_url = self.http_api.api_endpoint
        self.mcp_url = self.base_url.apply(lambda base: f"{base}/{MCP_PATH}")
        self.stage: aws.apigatewayv2.Stage | None = None

    def route_to(self, function: aws.lambda_.Function) -> None:
        """Routes `/mcp` and `/.well-known/{proxy+}` to `function` and publishes the stage."""
        name, settings, api = self._name, self._settings, self.http_api
        child = pulumi.ResourceOptions(parent=self)
        self.integration = aws.apigatewayv2.Integration(
            f"{name}-lambda",
            api_id=api.id,
            integration_type="AWS_PROXY",
            integration_method="POST",
            integration_uri=function.invoke_arn,
            payload_format_version="2.0",
            timeout_milliseconds=API_INTEGRATION_TIMEOUT_SECONDS * 1000,
            opts=child,
        )
        self.routes = {
            route: aws.apigatewayv2.Route(
                f"{name}-{route}",
                api_id=api.id,
                route_key=key,
                authorization_type="NONE",
                target=self.integration.id.apply(lambda integration: f"integrations/{integration}"),
                opts=child,
            )
            for route, key in ROUTES.items()
        }
        aws.lambda_.Permission(
            f"{name}-invoke",
            action="lambda:InvokeFunction",
            function=function.name,
            principal="apigateway.amazonaws.com",
            # Any stage, method and route of this API.
            source_arn=api.execution_arn.apply(lambda arn: f"{arn}/*/*"),
            opts=child,
        )
        self.stage = aws.apigatewayv2.Stage(
            f"{name}-stage",
            api_id=api.id,
            name=DEFAULT_STAGE,
            # Route and integration changes go live without a separate deployment.
            auto_deploy=True,
            default_route_settings=aws.apigatewayv2.StageDefaultRouteSettingsArgs(
                throttling_rate_limit=settings.api_throttle_rate,
                throttling_burst_limit=settings.api_throttle_burst,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(self.routes.values())),
        )
        self.register_outputs({"mcp_url": self.mcp_url})
