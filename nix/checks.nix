# `nix flake check`: the same checks CI runs without Nix (checks/run): rustfmt, clippy
# denying warnings, the test suite under nextest, the Pulumi program's mocked tests, the zips
# static and for the right architecture, a second independent build byte-identical, and the
# Nix files formatted and free of dead code.
{rust}: let
  inherit (rust) pkgs craneLib commonArgs cargoArtifacts src;
  lambdaSet = import ./lambdas.nix {inherit rust;};
  nixFiles = "${../flake.nix} ${../nix}";
in {
  fmt = craneLib.cargoFmt {inherit src;};

  # Clippy and the tests with the bench-lambda feature (the AWS SDK), as checks/run has them.
  clippy = craneLib.cargoClippy (commonArgs
    // {
      inherit cargoArtifacts;
      cargoExtraArgs = "--locked --features bench-lambda";
      cargoClippyExtraArgs = "--all-targets -- --deny warnings";
    });

  # The external-client tests (MCP Python SDK, conformance suite) are #[ignore]d here: they
  # need packages from PyPI and npm that checks/run installs. The sandbox has no system CA
  # store, which the HTTPS client loads at start-up: cacert's bundle stands in. strace injects
  # the faults of tests/store_faults.rs (it attaches with ptrace, which the builder must allow).
  nextest = craneLib.cargoNextest (commonArgs
    // {
      inherit cargoArtifacts;
      cargoExtraArgs = "--locked --features bench-lambda";
      partitions = 1;
      partitionType = "count";
      cargoNextestPartitionsExtraArgs = "--no-tests=pass";
      nativeCheckInputs = [pkgs.git pkgs.cacert pkgs.strace];
      SSL_CERT_FILE = "${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt";
    });

  infra = pkgs.runCommand "wikibot-infra-tests" {nativeBuildInputs = [rust.infraPython];} ''
    cp -r ${../infra} infra
    chmod -R u+w infra
    cd infra
    python -m pytest -q -p no:cacheprovider
    touch $out
  '';

  lambdas-static = pkgs.runCommand "wikibot-lambdas-static" {nativeBuildInputs = [pkgs.file pkgs.unzip];} ''
    bash ${../checks/verify-lambdas} ${lambdaSet.lambdas} | tee $out
  '';

  lambdas-reproducible = pkgs.runCommand "wikibot-lambdas-reproducible" {} ''
    for zip in ${lambdaSet.lambdas}/*.zip; do
      cmp "$zip" "${lambdaSet.rebuilt}/$(basename "$zip")"
    done
    touch $out
  '';

  nix-lint = pkgs.runCommand "wikibot-nix-lint" {nativeBuildInputs = [pkgs.alejandra pkgs.deadnix];} ''
    alejandra --check ${nixFiles}
    deadnix --fail ${nixFiles}
    touch $out
  '';
}
