# Shared by the scripts in checks/: where things are, and installing what a clean machine
# lacks (Debian packages, the pinned Rust toolchain and targets, Python tool environments).
# Source it; it does nothing by itself.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Tool environments live under target/, which git ignores and `cargo clean` removes.
TOOLS="$ROOT/target/tools"

say() { printf '\n== %s\n' "$*" >&2; }

apt_install() {
    say "installing Debian packages: $*"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# need_command COMMAND DEBIAN_PACKAGE: install the package unless the command exists.
need_command() {
    command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

# The toolchain, components and musl targets named in rust-toolchain.toml.
need_rust() {
    command -v rustup >/dev/null || { echo "rustup is required: https://rustup.rs" >&2; exit 1; }
    (cd "$ROOT" && rustup show active-toolchain >/dev/null 2>&1) || (cd "$ROOT" && rustup toolchain install)
    local toolchain
    toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml")
    rustup component add --toolchain "$toolchain" rustfmt clippy >/dev/null 2>&1
    rustup target add --toolchain "$toolchain" x86_64-unknown-linux-musl aarch64-unknown-linux-musl >/dev/null 2>&1
}

# python_env NAME REQUIREMENTS_FILE: a venv under target/tools with the packages pinned in
# REQUIREMENTS_FILE (a complete `pip freeze`); prints its bin directory. Reinstalls only when
# the file changes.
python_env() {
    local name=$1 requirements=$2 env="$TOOLS/$1"
    need_command python3 python3
    if [ ! -x "$env/bin/python" ]; then
        python3 -m venv "$env" >&2 2>/dev/null || { apt_install python3-venv; python3 -m venv "$env" >&2; }
    fi
    if ! cmp -s "$requirements" "$env/.requirements" 2>/dev/null; then
        say "installing $(basename "$requirements") into $env"
        # Requirements files are complete pins (pip freeze), so no resolution is needed.
        "$env/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements" >&2
        cp "$requirements" "$env/.requirements"
    fi
    echo "$env/bin"
}

# infra_python_env: infra/'s Python, installed exactly as the flake installs it: the wheels
# infra/wheels.lock.json names for this machine (downloaded once, each checked against its
# SHA-256), installed offline by checks/install-infra-wheels into a venv of python3. Prints its
# bin directory. Reinstalls only when the lock changes.
infra_python_env() {
    local wheels="$TOOLS/infra-wheels" env="$TOOLS/infra-locked" lock="$ROOT/infra/wheels.lock.json"
    need_command python3 python3
    python3 -c 'import venv' 2>/dev/null || apt_install python3-venv
    if ! cmp -s "$lock" "$env/.lock" 2>/dev/null; then
        say "installing infra/'s Python from infra/wheels.lock.json into $env"
        "$ROOT/checks/infra-wheels" fetch "$wheels" >&2
        rm -rf "$env"
        "$ROOT/checks/install-infra-wheels" python3 "$wheels" "$ROOT/infra/requirements.txt" "$env" >&2
        cp "$lock" "$env/.lock"
    fi
    echo "$env/bin"
}

# node_env NAME DIR: `npm ci` of DIR/package.json and DIR/package-lock.json into
# target/tools/NAME; prints that directory. Reinstalls only when the lock file changes.
node_env() {
    local name=$1 source=$2 env="$TOOLS/$1"
    need_command npm npm
    if ! cmp -s "$source/package-lock.json" "$env/package-lock.json" 2>/dev/null; then
        say "installing $name (npm ci) into $env"
        rm -rf "$env" && mkdir -p "$env"
        cp "$source/package.json" "$source/package-lock.json" "$env/"
        (cd "$env" && npm ci --no-audit --no-fund --loglevel=error >&2)
    fi
    echo "$env"
}

# The Nix linters used on the flake: `nix-instantiate --parse` (Debian's nix-bin), alejandra
# (its library behind checks/nix-lint's small CLI) and deadnix, both built into target/tools.
need_nix_lint() {
    need_command nix-instantiate nix-bin
    local bin="$TOOLS/nix-lint/bin"
    if [ ! -x "$bin/alejandra" ] || [ "$ROOT/checks/nix-lint/Cargo.lock" -nt "$bin/alejandra" ]; then
        say "building alejandra (checks/nix-lint) into $TOOLS/nix-lint"
        CARGO_TARGET_DIR="$TOOLS/nix-lint-build" \
            cargo install --quiet --locked --force --root "$TOOLS/nix-lint" --path "$ROOT/checks/nix-lint" >&2
    fi
    if [ ! -x "$bin/deadnix" ]; then
        say "installing deadnix into $TOOLS/nix-lint"
        cargo install --quiet --locked --root "$TOOLS/nix-lint" deadnix@1.3.1 >&2
    fi
    echo "$bin"
}
