"""P0-2: the EFS file system, its mount target and access point."""


def test_the_file_system_is_encrypted_and_mounted_in_the_private_subnet(dev):
    fs = dev.one("aws:efs/fileSystem:FileSystem")
    assert fs.inputs["encrypted"] is True
    assert fs.inputs["availabilityZoneName"] == "us-east-1a", "One Zone by default"
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
