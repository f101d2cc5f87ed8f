"""Secrets stay secret end to end; every AWS resource carries the project's tags."""

import json

from conftest import MCP_TOKEN, WORKOS_KEY, is_secret


def test_secrets_are_secret_wherever_they_go(dev):
    parameter = dev.one("aws:ssm/parameter:Parameter")
    assert parameter.inputs["type"] == "SecureString"
    assert is_secret(parameter.inputs["value"])
    assert is_secret(dev.one("aws:lambda/function:Function", "mcp-server").inputs["environment"])
    program = dev.program
    assert dev.secret(program["settings"].mcp_auth_token)
    assert dev.secret(program["settings"].workos_api_key)
    assert dev.secret(program["functions"].mcp_server.environment)


def test_no_secret_appears_in_plain_text_anywhere(dev):
    def plain_parts(value):
        if is_secret(value):
            return
        if isinstance(value, dict):
            for v in value.values():
                yield from plain_parts(v)
        elif isinstance(value, list):
            for v in value:
                yield from plain_parts(v)
        else:
            yield str(value)

    for resource in dev.resources:
        text = json.dumps(list(plain_parts(resource.inputs)), default=str)
        assert MCP_TOKEN not in text and WORKOS_KEY not in text, resource.name


def test_the_provider_tags_every_aws_resource(run_stack):
    stack = run_stack(stack="prod")
    provider = stack.one("pulumi:providers:aws")
    assert json.loads(provider.inputs["defaultTags"]) == {"tags": {"project": "wikibot-io", "environment": "prod"}}
    provider_ref = f"urn:pulumi:prod::wikibot::pulumi:pulumi:Stack$pulumi:providers:aws::{provider.name}::{provider.id}"
    aws_resources = [r for r in stack.resources if r.typ.startswith("aws:")]
    assert len(aws_resources) > 40
    for resource in aws_resources:
        assert resource.provider == provider_ref, f"{resource.typ} {resource.name} bypasses the tagged provider"
