"""wikibot Phase 0: composes the components. Each concern lives in components/."""

import pulumi
import pulumi_aws as aws

from components.api import McpApi
from components.budget import CostBudget
from components.domain import CustomDomain
from components.efs import WikiFileSystem, WikiFileSystemPolicy
from components.egress import Egress
from components.lambda_functions import LambdaFunctions
from components.maintenance import WikiMaintenance
from components.secrets import ProjectSecrets
from components.settings import Settings
from components.vpc import Vpc

settings = Settings.load()
# Every AWS resource goes through this provider, whose default tags mark it as ours.
provider = aws.Provider(
    "aws",
    region=settings.region,
    default_tags=aws.ProviderDefaultTagsArgs(tags=settings.tags),
)
opts = pulumi.ResourceOptions(provider=provider)

network = Vpc("network", settings, opts=opts)
egress = Egress("egress", settings, network, opts=opts)
storage = WikiFileSystem("wiki-storage", settings, network, opts=opts)
api = McpApi("mcp-api", settings, opts=opts)
functions = LambdaFunctions("functions", settings, network, storage, mcp_url=api.mcp_url, opts=opts)
api.route_to(functions.mcp_server)
# With domain_name: the API at the root of the stack's own domain.
domain = CustomDomain("mcp-domain", settings, api, opts=opts) if settings.domain_name else None
# Only the functions' role, through the access point, over TLS.
storage_policy = WikiFileSystemPolicy("wiki-storage-access", storage, functions.role, opts=opts)
# Maintains the wiki the MCP server serves, through git-probe's `maintain` operation.
maintenance = WikiMaintenance("maintenance", settings, functions.functions["git-probe"], opts=opts)
budget = CostBudget("budget", settings, opts=opts)
secrets = ProjectSecrets("secrets", settings, opts=opts)

# The URL a user pastes into Claude.ai (and registers in AuthKit).
pulumi.export("mcp_url", api.mcp_url)
if domain is not None:
    # Where the domain must point: infra/deploy prints the CNAME when the stack has no zone.
    pulumi.export("domain_target", domain.target_domain_name)
    pulumi.export("domain_record", "route53" if domain.record is not None else "cname")
pulumi.export("efs_probe_function", functions.functions["efs-probe"].name)
pulumi.export("git_probe_function", functions.functions["git-probe"].name)
pulumi.export("mcp_server_function", functions.mcp_server.name)
pulumi.export("file_system_id", storage.file_system.id)
pulumi.export("egress", settings.egress)
# Chosen by the stack when not set; infra/deploy pins both in the stack's config.
pulumi.export("availability_zone_id", network.zone.zone_id)
pulumi.export("nat_ami", egress.nat_ami)
pulumi.export("maintenance_schedule", settings.maintenance_schedule)
pulumi.export("mcp_auth_token", settings.mcp_auth_token)
