"""Secrets the stack keeps for the application: the WorkOS API key (P0-6), stored as an SSM
SecureString for the login probe and later phases. The static MCP token goes straight into
the function's environment (lambda_functions.py).

Both arrive from `config.require_secret` and stay Pulumi secrets throughout: encrypted in
the state, masked in output. This component must not turn them into plain values.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from .settings import Settings


class ProjectSecrets(pulumi.ComponentResource):
    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("wikibot:secrets:ProjectSecrets", name, None, opts)
        self.workos_api_key = aws.ssm.Parameter(
            f"{name}-workos-api-key",
            name=f"/wikibot/{settings.stack}/workos_api_key",
            type="SecureString",
            value=settings.workos_api_key,
            description="WorkOS API key (P0-6)",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"workos_api_key_parameter": self.workos_api_key.name})
