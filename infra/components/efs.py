"""P0-2: the file system the wikis live on. An encrypted EFS file system (One Zone by
default, in the private subnet's zone: half the price, and the functions are in that zone
anyway), a mount target in the private subnet behind the EFS security group, and an access
point that maps every client to one POSIX user and roots it in a directory created with that
owner, so the git repositories always have one owner whatever uid Lambda runs as.

This component must not grant access; the function role does that (lambda_functions.py).
"""

from __future__ import annotations

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
            availability_zone_name=settings.availability_zone if settings.efs_one_zone else None,
            performance_mode="generalPurpose",
            throughput_mode="elastic",
            lifecycle_policies=[aws.efs.FileSystemLifecyclePolicyArgs(transition_to_ia="AFTER_30_DAYS")],
            tags={"Name": f"{settings.prefix}-wiki"},
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
