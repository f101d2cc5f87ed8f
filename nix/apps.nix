# `nix run` (the local MCP server) and `nix run .#deploy` (infra/deploy with the flake's Pulumi,
# AWS CLI, Python and Lambda zips; the zips are handed over through WIKIBOT_LAMBDA_ZIPS, never
# stack config, and Pulumi runs in the working tree's infra/, where it keeps Pulumi.<stack>.yaml).
{rust}: let
  inherit (rust) pkgs;
  inherit (pkgs) lib;
  inherit ((import ./lambdas.nix {inherit rust;})) lambdas;
  app = description: script: {
    type = "app";
    program = lib.getExe script;
    meta = {inherit description;};
  };
in {
  serve = app "the wikibot MCP server on 127.0.0.1:8080 (wikibot serve; arguments after --)" (pkgs.writeShellApplication {
    name = "wikibot-serve";
    text = ''exec ${lib.getExe rust.wikibot} serve "$@"'';
  });

  deploy = app "deploy wikibot to AWS with Pulumi: checks, stack, pulumi up, next steps (infra/deploy --help)" (pkgs.writeShellApplication {
    name = "wikibot-deploy";
    runtimeInputs = [pkgs.pulumi-bin pkgs.awscli2 rust.infraPython pkgs.git];
    text = ''
      root=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
      if [ ! -f "$root/infra/Pulumi.yaml" ]; then
        echo "wikibot-deploy: no infra/Pulumi.yaml under $root; run it from the wikibot working tree" >&2
        exit 1
      fi
      export WIKIBOT_INFRA_DIR="$root/infra"
      export WIKIBOT_LAMBDA_ZIPS=${lambdas}
      exec bash ${../infra/deploy} "$@"
    '';
  });
}
