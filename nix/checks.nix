# `nix flake check`: the same checks CI runs without Nix (checks/run): rustfmt, clippy
# denying warnings and the test suite under nextest (both on the dev profile, as `cargo clippy`
# and `cargo test` build), the Pulumi program's mocked tests and infra/deploy's tests on the
# pinned Python packages, the zips static and for the right architecture, a second build in
# another directory byte-identical, and the Nix files formatted and free of dead code.
{rust}: let
  inherit (rust) pkgs craneLib devArgs devArtifacts src;
  lambdaSet = import ./lambdas.nix {inherit rust;};
  nixFiles = "${../flake.nix} ${../nix}";
in {
  fmt = craneLib.cargoFmt {inherit src;};

  # clippy and nextest with the bench-lambda feature (devArgs), as checks/run has them.
  clippy = craneLib.cargoClippy (devArgs
    // {
      cargoArtifacts = devArtifacts;
      cargoClippyExtraArgs = "--all-targets -- --deny warnings";
    });

  # The external-client tests (MCP Python SDK, conformance suite) are #[ignore]d here: they
  # need packages from PyPI and npm that checks/run installs. The sandbox has no system CA
  # store, which the HTTPS client loads at start-up: cacert's bundle stands in. strace injects
  # the faults of tests/store_faults.rs (it attaches with ptrace, which the builder must allow).
  nextest = craneLib.cargoNextest (devArgs
    // {
      cargoArtifacts = devArtifacts;
      partitions = 1;
      partitionType = "count";
      cargoNextestPartitionsExtraArgs = "--no-tests=pass";
      nativeCheckInputs = [pkgs.git pkgs.cacert pkgs.strace];
      SSL_CERT_FILE = "${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt";
    });

  # The Pulumi program under mocks, the NAT boot script and infra/deploy against stand-ins.
  infra = pkgs.runCommand "wikibot-infra-tests" {nativeBuildInputs = [rust.infraPython];} ''
    cp -r ${../infra} infra
    chmod -R u+w infra
    cd infra
    python3 -m pytest -q -p no:cacheprovider
    touch $out
  '';

  lambdas-static = pkgs.runCommand "wikibot-lambdas-static" {nativeBuildInputs = [pkgs.file pkgs.unzip];} ''
    bash ${../checks/verify-lambdas} ${lambdaSet.lambdas} | tee $out
  '';

  # Two independent builds of every binary (dependencies included), from different build
  # directories (nix/rust.nix, `elsewhere`), must give the same zips byte for byte.
  lambdas-reproducible = pkgs.runCommand "wikibot-lambdas-reproducible" {} ''
    status=0
    for zip in ${lambdaSet.lambdas}/*.zip; do
      name=$(basename "$zip")
      if cmp -s "$zip" "${lambdaSet.rebuilt}/$name"; then
        echo "same $name"
      else
        echo "DIFFERENT $name: $(sha256sum < "$zip") vs $(sha256sum < "${lambdaSet.rebuilt}/$name")" >&2
        status=1
      fi
    done
    [ "$status" -eq 0 ] && touch $out
  '';

  nix-lint = pkgs.runCommand "wikibot-nix-lint" {nativeBuildInputs = [pkgs.alejandra pkgs.deadnix];} ''
    alejandra --check ${nixFiles}
    deadnix --fail ${nixFiles}
    touch $out
  '';
}
