# The Lambda zips, <function>-<arch>.zip each holding one static `bootstrap`, packaged by the
# same script CI uses (checks/zip-bootstrap), so both paths zip alike.
{rust}: let
  inherit (rust) pkgs;
  inherit (pkgs) lib;
  functions = ["efs-probe" "git-probe" "mcp-server"];
  arches = ["arm64" "x86_64"];

  zipAll = {
    name,
    only ? functions,
    binaries,
  }:
    pkgs.runCommand name {nativeBuildInputs = [pkgs.zip];} ''
      mkdir -p $out
      ${lib.concatMapStrings (arch:
        lib.concatMapStrings (function: ''
          bash ${../checks/zip-bootstrap} ${binaries.${arch}}/bin/${function} $out/${function}-${arch}.zip
        '')
        only)
      arches}
    '';

  binaries = lib.genAttrs arches (arch: rust.lambdaBinaries {inherit arch;});
in {
  lambdas = zipAll {
    name = "wikibot-lambdas";
    inherit binaries;
  };
  perFunction = lib.genAttrs functions (function:
    zipAll {
      name = "wikibot-${function}";
      only = [function];
      inherit binaries;
    });
  # A second, independent build of the same sources in another build directory.
  rebuilt = zipAll {
    name = "wikibot-lambdas-rebuilt";
    binaries = lib.genAttrs arches (arch:
      rust.lambdaBinaries {
        inherit arch;
        elsewhere = true;
      });
  };
}
