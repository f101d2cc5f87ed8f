{
  description = "wikibot: a git-backed wiki that AI assistants read and write over MCP, on AWS Lambda";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    crane.url = "github:ipetkov/crane/v0.23.4";
    rust-overlay = {
      url = "github:oxalica/rust-overlay";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = {
    nixpkgs,
    crane,
    rust-overlay,
    ...
  }: let
    systems = ["x86_64-linux" "aarch64-linux"];
    eachSystem = f: nixpkgs.lib.genAttrs systems (system: f (import ./nix/rust.nix {inherit nixpkgs crane rust-overlay system;}));
  in {
    # nix build .#lambdas: every function for both architectures, as <function>-<arch>.zip.
    packages = eachSystem (rust: let
      lambdas = import ./nix/lambdas.nix {inherit rust;};
    in
      {
        inherit (rust) wikibot;
        inherit (lambdas) lambdas;
        default = rust.wikibot;
      }
      // lambdas.perFunction);

    # nix run: the local MCP server; nix run .#deploy: pulumi up in ./infra.
    apps = eachSystem (rust: let
      apps = import ./nix/apps.nix {inherit rust;};
    in {
      inherit (apps) deploy;
      default = apps.serve;
    });

    # nix flake check: fmt, clippy, nextest, the Pulumi tests, static and reproducible zips, Nix lint.
    checks = eachSystem (rust: import ./nix/checks.nix {inherit rust;});

    # nix develop: the toolchain with both musl targets, cargo-lambda, AWS CLI, Pulumi, linters.
    devShells = eachSystem (rust: {
      default = import ./nix/shell.nix {inherit rust;};
    });

    formatter = eachSystem (rust: rust.pkgs.alejandra);
  };
}
