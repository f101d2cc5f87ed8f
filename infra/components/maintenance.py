"""Issue 8: scheduled store maintenance. An EventBridge rule on the `maintenance_schedule`
setting (default every 15 minutes) invokes the `git-probe` function with the constant event
`{"op": "maintain", "repo": <wiki>}`, where <wiki> is the `wiki` setting, the same one the
MCP server serves (its WIKIBOT_WIKI). Maintenance packs loose objects, extends the
changed-paths index and deletes redundant files after a grace period; it is idempotent, and a
missed run is harmless (the store also maintains itself when a threshold is crossed), so the
target gives up quickly rather than queueing stale runs. `maintenance_schedule: off` creates
nothing.

This component must not let anything but this rule invoke the function.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from .settings import Settings

# EventBridge retries a failed delivery (throttling, the function being updated) for at most
# this long; by then the next scheduled run is close anyway.
MAX_EVENT_AGE_SECONDS = 15 * 60
MAX_RETRY_ATTEMPTS = 2


def maintain_event(wiki: str) -> str:
    """The event the git-probe function answers by maintaining `wiki`."""
    return json.dumps({"op": "maintain", "repo": wiki}, separators=(",", ":"))


class WikiMaintenance(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        settings: Settings,
        function: aws.lambda_.Function,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("wikibot:maintenance:WikiMaintenance", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.rule: aws.cloudwatch.EventRule | None = None
        self.target: aws.cloudwatch.EventTarget | None = None
        self.permission: aws.lambda_.Permission | None = None

        if settings.maintenance_enabled:
            self.rule = aws.cloudwatch.EventRule(
                f"{name}-schedule",
                name=f"{settings.prefix}-maintenance",
                description=f"wikibot: maintain the wiki {settings.wiki!r} (pack, index, clean up)",
                schedule_expression=settings.maintenance_schedule,
                opts=child,
            )
            # Only this rule may invoke only this function.
            self.permission = aws.lambda_.Permission(
                f"{name}-invoke",
                action="lambda:InvokeFunction",
                function=function.name,
                principal="events.amazonaws.com",
                source_arn=self.rule.arn,
                opts=child,
            )
            self.target = aws.cloudwatch.EventTarget(
                f"{name}-target",
                rule=self.rule.name,
                target_id="git-probe-maintain",
                arn=function.arn,
                input=maintain_event(settings.wiki),
                retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                    maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
                    maximum_retry_attempts=MAX_RETRY_ATTEMPTS,
                ),
                # The first run must not find the function closed to EventBridge.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.permission]),
            )

        self.register_outputs(
            {"schedule": settings.maintenance_schedule, "rule": self.rule.name if self.rule else None}
        )
