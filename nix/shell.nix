# `nix develop`: everything the README's commands use, pinned by the flake.
{rust}:
rust.craneLib.devShell {
  packages = with rust.pkgs; [
    cargo-lambda
    cargo-nextest
    awscli2
    pulumi-bin
    rust.infraPython
    nodejs_22
    git
    strace
    jq
    zip
    unzip
    file
    alejandra
    deadnix
  ];
}
