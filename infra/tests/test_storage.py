"""P0-2: the EFS file system, its mount target and access point, its policy, protection and backups."""

import json

import pytest


def arn(resource) -> str:
    return f"arn:aws:mock:us-east-1:123456789012:{resource.name}"


def test_the_file_system_is_encrypted_and_mounted_in_the_private_subnet(dev):
    fs = dev.one("aws:efs/fileSystem:FileSystem")
    assert fs.inputs["encrypted"] is True
    # One Zone by default, in the private subnet's zone (use1-az2 is us-east-1e in the mock account).
    assert fs.inputs["availabilityZoneName"] == "us-east-1e"
    target = dev.one("aws:efs/mountTarget:MountTarget")
    assert target.inputs["fileSystemId"] == fs.id
    assert target.inputs["subnetId"] == dev.one("aws:ec2/subnet:Subnet", "private").id
    assert target.inputs["securityGroups"] == [dev.one("aws:ec2/securityGroup:SecurityGroup", "efs").id]


def test_the_access_point_maps_one_posix_user_and_creates_its_root(dev):
    point = dev.one("aws:efs/accessPoint:AccessPoint")
    assert point.inputs["fileSystemId"] == dev.one("aws:efs/fileSystem:FileSystem").id
    assert point.inputs["posixUser"] == {"uid": 1000, "gid": 1000}
    root = point.inputs["rootDirectory"]
    assert root["path"] == "/wikibot"
    assert root["creationInfo"] == {"ownerUid": 1000, "ownerGid": 1000, "permissions": "0750"}


def test_regional_storage_when_one_zone_is_off(run_stack):
    stack = run_stack({"wikibot:efs_one_zone": "false"})
    assert "availabilityZoneName" not in stack.one("aws:efs/fileSystem:FileSystem").inputs


def test_the_file_system_is_protected_unless_the_setting_says_otherwise(run_stack):
    fs_name = "wiki-storage-fs"
    assert run_stack().options[fs_name].protect is True
    assert not run_stack({"wikibot:protect_file_system": "false"}).options[fs_name].protect


@pytest.mark.parametrize(("setting", "status"), [(None, "DISABLED"), ("false", "DISABLED"), ("true", "ENABLED")])
def test_aws_backup_is_set_explicitly(run_stack, setting, status):
    stack = run_stack({} if setting is None else {"wikibot:efs_backup": setting})
    backup = stack.one("aws:efs/backupPolicy:BackupPolicy")
    assert backup.inputs["fileSystemId"] == stack.one("aws:efs/fileSystem:FileSystem").id
    assert backup.inputs["backupPolicy"] == {"status": status}


def test_the_file_system_policy_admits_only_the_role_through_the_access_point_over_tls(dev):
    fs = dev.one("aws:efs/fileSystem:FileSystem")
    point = dev.one("aws:efs/accessPoint:AccessPoint")
    role = dev.one("aws:iam/role:Role")
    resource = dev.one("aws:efs/fileSystemPolicy:FileSystemPolicy")
    assert resource.inputs["fileSystemId"] == fs.id
    assert "bypassPolicyLockoutSafetyCheck" not in resource.inputs
    statements = json.loads(resource.inputs["policy"])["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    denies = [s for s in statements if s["Effect"] == "Deny"]
    assert len(allows) == 1 and len(denies) == 1
    allow = allows[0]
    assert allow["Principal"] == {"AWS": arn(role)}, "only the functions' role"
    assert sorted(allow["Action"]) == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    assert allow["Resource"] == arn(fs)
    assert allow["Condition"]["StringEquals"] == {"elasticfilesystem:AccessPointArn": arn(point)}
    assert allow["Condition"]["Bool"] == {"elasticfilesystem:AccessedViaMountTarget": "true"}
    deny = denies[0]
    assert (deny["Principal"], deny["Action"], deny["Resource"]) == ({"AWS": "*"}, "*", arn(fs))
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_policy_grants_what_the_role_asks_for_and_nothing_more(dev):
    role_efs = next(
        json.loads(p.plain("policy"))["Statement"][0]
        for p in dev.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.name.endswith("efs-client")
    )
    allow = json.loads(dev.one("aws:efs/fileSystemPolicy:FileSystemPolicy").inputs["policy"])["Statement"][0]
    assert sorted(allow["Action"]) == sorted(role_efs["Action"])
    assert allow["Condition"]["StringEquals"] == role_efs["Condition"]["StringEquals"]
