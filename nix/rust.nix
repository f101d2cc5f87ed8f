# The Rust half of the flake: the toolchain pinned by rust-toolchain.toml (both musl targets
# included), the filtered source, the wikibot CLI for the host, and static musl Lambda
# bootstraps for each architecture, cross-compiled with nixpkgs' musl cross toolchains.
{
  nixpkgs,
  crane,
  rust-overlay,
  system,
}: let
  overlays = [rust-overlay.overlays.default];
  pkgs = import nixpkgs {inherit system overlays;};
  inherit (pkgs) lib;

  # A function, so that cross builds get a toolchain spliced for their build platform.
  craneFor = p: (crane.mkLib p).overrideToolchain (p': p'.rust-bin.fromRustupToolchainFile ../rust-toolchain.toml);
  craneLib = craneFor pkgs;
  inherit (craneLib.crateNameFromCargoToml {cargoToml = ../Cargo.toml;}) version;

  # The Rust sources. checks/nix-lint (the alejandra CLI) and fuzz/ are crates of their own,
  # outside this workspace: editing them must not rebuild every Rust derivation.
  rustSources = lib.fileset.difference (craneLib.fileset.commonCargoSources ../.) (lib.fileset.unions [../checks/nix-lint ../fuzz]);
  src = lib.fileset.toSource {
    root = ../.;
    fileset = rustSources;
  };
  # What clippy (all targets) and the tests also read: keys, the Python client, the fuzz
  # corpora (tests/fuzz_corpora.rs). Test data changes rebuild no package.
  testSrc = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [rustSources ../tests/fixtures ../tests/python ../fuzz/corpus];
  };

  commonArgs = {
    inherit src version;
    pname = "wikibot";
    strictDeps = true;
  };
  # Release dependencies for the wikibot CLI.
  cargoArtifacts = craneLib.buildDepsOnly commonArgs;
  # clippy and nextest build as `cargo clippy` and `cargo test` do in checks/run: the dev
  # profile (debug assertions on, no fat LTO), with the bench-lambda feature (the AWS SDK),
  # dependencies built once for both.
  devArgs =
    commonArgs
    // {
      src = testSrc;
      CARGO_PROFILE = "dev";
      cargoExtraArgs = "--locked --features bench-lambda";
    };
  devArtifacts = craneLib.buildDepsOnly devArgs;

  crossSystems = {
    arm64 = lib.systems.examples.aarch64-multiplatform-musl;
    x86_64 = lib.systems.examples.musl64;
  };

  # efs-probe, git-probe and mcp-server as static binaries for `arch` (arm64 or x86_64).
  # `elsewhere` builds the same sources in another directory (checks.lambdas-reproducible).
  lambdaBinaries = {
    arch,
    elsewhere ? false,
  }: let
    crossPkgs = import nixpkgs {
      localSystem = system;
      crossSystem = crossSystems.${arch};
      inherit overlays;
    };
    crossCrane = craneFor crossPkgs;
    # Every sandboxed build unpacks into /build/<source name>; the sources are moved to a
    # directory of our choosing, the same for the dependencies and the binaries (so both see
    # the same flags and the dependencies are reused), and another one for the rebuild.
    buildDir =
      if elsewhere
      then "rebuilt-elsewhere/one-level-deeper/wikibot-copy"
      else "wikibot";
    # cc's variable for the C flags of this target only (ring's and libgit2's C code).
    cflagsVar = "CFLAGS_${lib.replaceStrings ["-"] ["_"] crossPkgs.stdenv.hostPlatform.rust.rustcTarget}";
    args = {
      inherit src version;
      pname = "wikibot-lambdas-${arch}${lib.optionalString elsewhere "-elsewhere"}";
      strictDeps = true;
      doCheck = false;
      # Without `workos-cli` (the WorkOS SDK and its aws-lc-rs are for the CLI's login only).
      cargoExtraArgs = "--locked --no-default-features --bin efs-probe --bin git-probe --bin mcp-server";
      # Optimised for size, as checks/build-lambdas builds them (the mcp-server zip within
      # issue 9's 3 MB budget for arm64); the CLI keeps the release profile's opt-level 3.
      CARGO_PROFILE_RELEASE_OPT_LEVEL = "z";
      postUnpack = ''
        mkdir -p "$(dirname "$NIX_BUILD_TOP/${buildDir}")"
        mv "$sourceRoot" "$NIX_BUILD_TOP/${buildDir}"
        sourceRoot=${buildDir}
      '';
      # nixpkgs' musl platforms are not static by default. The build directory must not
      # reach the binaries: it is mapped to /wikibot in Rust and C alike (crane's CARGO_HOME
      # and the target directory are inside it; vendored crates are in the store, the same
      # for every build).
      preConfigure = ''
        export CARGO_BUILD_RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$NIX_BUILD_TOP/${buildDir}=/wikibot"
        export ${cflagsVar}="-ffile-prefix-map=$NIX_BUILD_TOP/${buildDir}=/wikibot"
      '';
    };
  in
    crossCrane.buildPackage (args // {cargoArtifacts = crossCrane.buildDepsOnly args;});
in {
  inherit pkgs craneLib src commonArgs cargoArtifacts devArgs devArtifacts lambdaBinaries;

  wikibot = craneLib.buildPackage (commonArgs
    // {
      inherit cargoArtifacts;
      cargoExtraArgs = "--locked --bin wikibot";
      doCheck = false;
      meta.mainProgram = "wikibot";
    });

  # Python for infra/: the Pulumi SDK, the AWS provider SDK and pytest at the pinned versions.
  infraPython = import ./infra-python.nix {inherit pkgs;};
}
