"""P0-2: the file system the wikis live on. An encrypted EFS file system (One Zone by
default, in the private subnet's zone: half the price, and the functions are in that zone
anyway), a mount target in the private subnet behind the EFS security group, and an access
point that maps every client to one POSIX user and roots it in a directory created with that
owner, so the git repositories always have one owner whatever uid Lambda runs as.

The file system holds the only copy of every wiki: it is `protect`ed (Pulumi refuses to
replace or delete it while `protect_file_system` is true; README "Destroying"), and its AWS
Backup policy is set explicitly by `efs_backup` (AWS turns automatic backups on for One Zone
file systems created through the API, and their recovery points outlive the stack).

This component must not grant access; the function role does that (lambda_functions.py), and
`WikiFileSystemPolicy` (below) makes the file system refuse everything else.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from .settings import Settings
from .vpc import Vpc

POSIX_UID = 1000
POSIX_GID = 1000
ROOT_DIRECTORY = "/wikibot"
ROOT_PERMISSIONS = "0750"


class WikiFileSystem(pulumi.ComponentResource):
    def __init__(self, name: str, settings: Settings, network: Vpc, opts: pulumi.ResourceOptions | None = None):
        super().__init__("wikibot:storage:WikiFileSystem", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.file_system = aws.efs.FileSystem(
            f"{name}-fs",
            encrypted=True,
            # The zone's name in this account, as the subnet resolved its zone id.
            availability_zone_name=network.private_subnet.availability_zone if settings.efs_one_zone else None,
            performance_mode="generalPurpose",
            throughput_mode="elastic",
            lifecycle_policies=[aws.efs.FileSystemLifecyclePolicyArgs(transition_to_ia="AFTER_30_DAYS")],
            tags={"Name": f"{settings.prefix}-wiki"},
            opts=pulumi.ResourceOptions(parent=self, protect=settings.protect_file_system),
        )
        self.backup_policy = aws.efs.BackupPolicy(
            f"{name}-backup",
            file_system_id=self.file_system.id,
            backup_policy=aws.efs.BackupPolicyBackupPolicyArgs(status="ENABLED" if settings.efs_backup else "DISABLED"),
            opts=child,
        )
        self.mount_target = aws.efs.MountTarget(
            f"{name}-mount",
            file_system_id=self.file_system.id,
            subnet_id=network.private_subnet.id,
            security_groups=[network.efs_security_group.id],
            opts=child,
        )
        self.access_point = aws.efs.AccessPoint(
            f"{name}-access-point",
            file_system_id=self.file_system.id,
            posix_user=aws.efs.AccessPointPosixUserArgs(uid=POSIX_UID, gid=POSIX_GID),
            root_directory=aws.efs.AccessPointRootDirectoryArgs(
                path=ROOT_DIRECTORY,
                creation_info=aws.efs.AccessPointRootDirectoryCreationInfoArgs(
                    owner_uid=POSIX_UID, owner_gid=POSIX_GID, permissions=ROOT_PERMISSIONS
                ),
            ),
            tags={"Name": f"{settings.prefix}-wiki"},
            opts=child,
        )
        self.register_outputs(
            {"file_system_id": self.file_system.id, "access_point_arn": self.access_point.arn}
        )


class WikiFileSystemPolicy(pulumi.ComponentResource):
    """The file system's resource policy: without one, EFS lets any client that reaches a mount
    target mount anything, and the role's access-point condition is never enforced. With it,
    only `role` may mount and write, only through the access point and a mount target, and
    nothing may use the file system without TLS."""

    def __init__(
        self,
        name: str,
        storage: WikiFileSystem,
        role: aws.iam.Role,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("wikibot:storage:WikiFileSystemPolicy", name, None, opts)
        self.policy = aws.efs.FileSystemPolicy(
            f"{name}-policy",
            file_system_id=storage.file_system.id,
            policy=pulumi.Output.all(storage.file_system.arn, storage.access_point.arn, role.arn).apply(
                lambda arns: file_system_policy(*arns)
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"policy": self.policy.id})


def file_system_policy(file_system_arn: str, access_point_arn: str, role_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "FunctionsThroughTheAccessPoint",
                    "Effect": "Allow",
                    "Principal": {"AWS": role_arn},
                    "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
                    "Resource": file_system_arn,
                    "Condition": {
                        "StringEquals": {"elasticfilesystem:AccessPointArn": access_point_arn},
                        "Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"},
                    },
                },
                {
                    "Sid": "NothingWithoutTls",
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": "*",
                    "Resource": file_system_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        }
    )
