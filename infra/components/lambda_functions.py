"""The Lambda functions: `efs-probe` (P0-2), `git-probe` (P0-3) and `mcp-server` (P0-7).

Each is a `provided.al2023` function whose `bootstrap` comes from a zip built outside Pulumi
(found through WIKIBOT_LAMBDA_ZIPS), in the private subnet, with the wiki file system mounted
at /mnt/efs through the access point, X-Ray tracing Active (P0-4) and JSON logs into a log
group with a retention. One execution role serves all three, with least-privilege inline
policies: ENIs for the VPC, logs into these groups only, mounting and writing this file
system only through this access point, X-Ray segments.

This component must not build code, and must not handle the static token or the WorkOS API
key other than as secrets.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from .efs import WikiFileSystem
from .settings import FUNCTIONS, MOUNT_PATH, Settings
from .vpc import Vpc


class LambdaFunctions(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        settings: Settings,
        network: Vpc,
        storage: WikiFileSystem,
        mcp_url: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("wikibot:compute:LambdaFunctions", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Fail before creating anything if a zip is missing.
        code = {function: settings.zip_path(function) for function in FUNCTIONS}
        names = {function: f"{settings.prefix}-{function}" for function in FUNCTIONS}

        self.log_groups = {
            function: aws.cloudwatch.LogGroup(
                f"{name}-{function}-logs",
                name=f"/aws/lambda/{names[function]}",
                retention_in_days=settings.log_retention_days,
                opts=child,
            )
            for function in FUNCTIONS
        }
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            description="wikibot Lambda functions",
            opts=child,
        )
        self.policies = [
            aws.iam.RolePolicy(f"{name}-{policy}", role=self.role.id, policy=document, opts=child)
            for policy, document in self._policies(storage).items()
        ]

        common_env = {
            "WIKIBOT_ROOT": MOUNT_PATH,
            "WIKIBOT_STALE_LOCK_SECS": str(settings.stale_lock_seconds),
        }
        environments: dict[str, dict[str, pulumi.Input[str]]] = {
            "efs-probe": dict(common_env),
            "git-probe": dict(common_env),
            "mcp-server": {
                **common_env,
                "WIKIBOT_WIKI": settings.wiki,
                "MCP_RESOURCE_URL": mcp_url,
                "AUTHKIT_DOMAIN": settings.authkit_domain,
                # Who may use the wiki when OAuth is on (src/auth/policy.rs).
                "MCP_ALLOW": settings.mcp_allow,
                "MCP_ALLOW_ANY_USER": "true" if settings.allow_any_user else "false",
                "MCP_AUTH_TOKEN": settings.mcp_auth_token,
                # Signed-in users' names and e-mails (commit authors, the policy's e-mail rules).
                "WORKOS_API_KEY": settings.workos_api_key,
            },
        }
        self.functions = {
            function: aws.lambda_.Function(
                f"{name}-{function}",
                name=names[function],
                runtime="provided.al2023",
                handler="bootstrap",
                architectures=[settings.architecture],
                code=pulumi.FileArchive(str(code[function])),
                role=self.role.arn,
                memory_size=settings.memory_mb,
                timeout=settings.timeout_seconds,
                vpc_config=aws.lambda_.FunctionVpcConfigArgs(
                    subnet_ids=[network.private_subnet.id],
                    security_group_ids=[network.lambda_security_group.id],
                ),
                file_system_config=aws.lambda_.FunctionFileSystemConfigArgs(
                    arn=storage.access_point.arn, local_mount_path=MOUNT_PATH
                ),
                tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
                logging_config=aws.lambda_.FunctionLoggingConfigArgs(
                    log_format="JSON", log_group=self.log_groups[function].name
                ),
                environment=aws.lambda_.FunctionEnvironmentArgs(variables=environments[function]),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # The mount target must exist before a function can mount the file system.
                    depends_on=[storage.mount_target, *self.policies],
                ),
            )
            for function in FUNCTIONS
        }
        self.mcp_server = self.functions["mcp-server"]
        self.register_outputs({function: fn.name for function, fn in self.functions.items()})

    def _policies(self, storage: WikiFileSystem) -> dict[str, pulumi.Output[str]]:
        log_arns = pulumi.Output.all(*[group.arn for group in self.log_groups.values()])
        return {
            # What AWS's managed AWSLambdaVPCAccessExecutionRole grants for the network.
            "vpc-access": pulumi.Output.from_input(
                _document(
                    {
                        "Sid": "LambdaNetworkInterfaces",
                        "Effect": "Allow",
                        "Action": [
                            "ec2:CreateNetworkInterface",
                            "ec2:DescribeNetworkInterfaces",
                            "ec2:DescribeSubnets",
                            "ec2:DeleteNetworkInterface",
                            "ec2:AssignPrivateIpAddresses",
                            "ec2:UnassignPrivateIpAddresses",
                        ],
                        # These EC2 actions do not support resource-level permissions.
                        "Resource": "*",
                    }
                )
            ),
            "logs": log_arns.apply(
                lambda arns: _document(
                    {
                        "Sid": "WriteOwnLogs",
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": [f"{arn}:*" for arn in arns],
                    }
                )
            ),
            "efs-client": pulumi.Output.all(storage.file_system.arn, storage.access_point.arn).apply(
                lambda arns: _document(
                    {
                        "Sid": "MountWikiFileSystem",
                        "Effect": "Allow",
                        "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                        "Resource": arns[0],
                        "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": arns[1]}},
                    }
                )
            ),
            "xray": pulumi.Output.from_input(
                _document(
                    {
                        "Sid": "SendTraces",
                        "Effect": "Allow",
                        "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                        # X-Ray write actions do not support resource-level permissions.
                        "Resource": "*",
                    }
                )
            ),
        }


def _document(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
