# Python for infra/ with exactly the versions infra/requirements.txt pins (the ones the Pulumi
# tests ran with), not nixpkgs' Pulumi packages: the PyPI wheels named by
# infra/wheels.lock.json (checks/infra-wheels), installed offline by the same script checks/run
# uses. `bin/python3` is what the infra check and `nix run .#deploy` put on PATH.
{pkgs}: let
  inherit (pkgs) lib;
  lock = lib.importJSON ../infra/wheels.lock.json;
  inherit (pkgs.stdenv.hostPlatform) system;
  forSystem = builtins.filter (wheel: builtins.elem system wheel.systems) ([lock.pip] ++ lock.wheels);
  fetchWheel = wheel:
    pkgs.fetchurl {
      name = wheel.filename;
      inherit (wheel) url sha256;
    };
  wheels = pkgs.linkFarm "wikibot-infra-wheels" (map (wheel: {
      name = wheel.filename;
      path = fetchWheel wheel;
    })
    forSystem);
in
  assert lib.assertMsg (lock.requirements_sha256 == builtins.hashFile "sha256" ../infra/requirements.txt)
  "infra/wheels.lock.json was written for another infra/requirements.txt: run checks/infra-wheels lock";
    pkgs.runCommand "wikibot-infra-python" {
      nativeBuildInputs = [pkgs.python3];
      # grpcio's and protobuf's manylinux wheels link libstdc++.
      INFRA_LIBRARY_PATH = lib.makeLibraryPath [pkgs.gccForLibs.lib];
    } ''
      HOME=$TMPDIR bash ${../checks/install-infra-wheels} python3 ${wheels} ${../infra/requirements.txt} $out
    ''
