# `nix run` (the local MCP server) and `nix run .#deploy` (pulumi up in the working tree's
# infra/, with the built zips handed over through WIKIBOT_LAMBDA_ZIPS, never stack config).
{rust}: let
  inherit (rust) pkgs;
  inherit (pkgs) lib;
  inherit ((import ./lambdas.nix {inherit rust;})) lambdas;
  app = script: {
    type = "app";
    program = lib.getExe script;
  };
in {
  serve = app (pkgs.writeShellApplication {
    name = "wikibot-serve";
    text = ''exec ${lib.getExe rust.wikibot} serve "$@"'';
  });

  deploy = app (pkgs.writeShellApplication {
    name = "wikibot-deploy";
    runtimeInputs = [pkgs.pulumi-bin rust.infraPython pkgs.git];
    text = ''
      root=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
      if [ ! -f "$root/infra/Pulumi.yaml" ]; then
        echo "wikibot-deploy: no infra/Pulumi.yaml under $root; run it from the wikibot working tree" >&2
        exit 1
      fi
      export WIKIBOT_LAMBDA_ZIPS=${lambdas}
      cd "$root/infra"
      exec pulumi up "$@"
    '';
  });
}
