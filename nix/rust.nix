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

  # Rust sources, plus the files tests read at compile or run time.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      (craneLib.fileset.commonCargoSources ../.)
      ../tests/fixtures
      ../tests/python
    ];
  };
  # The same tree under another name: it unpacks into another build directory, which is what
  # the reproducibility check needs.
  renamedSource = builtins.path {
    path = src;
    name = "wikibot-rebuild-source";
  };

  commonArgs = {
    inherit src version;
    pname = "wikibot";
    strictDeps = true;
  };
  cargoArtifacts = craneLib.buildDepsOnly commonArgs;

  crossSystems = {
    arm64 = lib.systems.examples.aarch64-multiplatform-musl;
    x86_64 = lib.systems.examples.musl64;
  };

  # efs-probe, git-probe and mcp-server as static binaries for `arch` (arm64 or x86_64).
  lambdaBinaries = {
    arch,
    source ? src,
  }: let
    crossPkgs = import nixpkgs {
      localSystem = system;
      crossSystem = crossSystems.${arch};
      inherit overlays;
    };
    crossCrane = craneFor crossPkgs;
    args = {
      src = source;
      inherit version;
      pname = "wikibot-lambdas-${arch}";
      strictDeps = true;
      doCheck = false;
      # Without `workos-cli` (the WorkOS SDK and its aws-lc-rs are for the CLI's login only).
      cargoExtraArgs = "--locked --no-default-features --bin efs-probe --bin git-probe --bin mcp-server";
      # nixpkgs' musl platforms are not static by default; the build directory must not
      # reach the binaries (checks.lambdas-reproducible builds from another one).
      preConfigure = ''
        export CARGO_BUILD_RUSTFLAGS="-C target-feature=+crt-static --remap-path-prefix=$NIX_BUILD_TOP=/build"
      '';
    };
  in
    crossCrane.buildPackage (args // {cargoArtifacts = crossCrane.buildDepsOnly args;});
in {
  inherit pkgs craneLib src renamedSource commonArgs cargoArtifacts lambdaBinaries;

  wikibot = craneLib.buildPackage (commonArgs
    // {
      inherit cargoArtifacts;
      cargoExtraArgs = "--locked --bin wikibot";
      doCheck = false;
      meta.mainProgram = "wikibot";
    });

  # Python for infra/: the Pulumi SDK, the AWS provider SDK, pytest.
  infraPython = pkgs.python3.withPackages (ps: [ps.pulumi ps.pulumi-aws ps.pytest]);
}
