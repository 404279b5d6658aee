#!/usr/bin/env bash
# Builds kelpie's container images on a machine that cannot pull any image:
#   kelpie:<tag>                  the agent          (binary `kelpie`,          package kelpie)
#   kelpie-standin:<tag>          Datadog API stand-in for tests (binary `kelpie-standin`, package kelpie-standin)
#   kelpie-example-service:<tag>  the example service (binary `example-service`, package kelpie-example-service)
#
# Each binary is built on the host, statically linked against glibc (there is no musl target here), and put
# FROM scratch with the host's CA bundle and a non-root user (uid 10001): see docker/*.Dockerfile. The published
# image builds from public base images instead: ./Dockerfile.
#
# Usage: scripts/build-image.sh [kelpie|standin|example-service]...   (default: all three)
# Environment:
#   IMAGE_TAG=latest   tag of the images
#   CARGO_TARGET_DIR   cargo's target directory (default ./target)
#   STRIP=1            strip debug info from the copies put in the images (symbols are kept, so profiles and
#                      backtraces still name functions); STRIP=all strips symbols too (smallest image);
#                      STRIP=0 keeps line tables
#   FORCE=1            rebuild images even when their context did not change
#
# Idempotent and fast when nothing changed: cargo does nothing, and an image whose context (binary, files,
# Dockerfile) hashes the same as the one in its `kelpie.context.sha256` label is left as it is.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TRIPLE=x86_64-unknown-linux-gnu
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN_DIR=$TARGET_DIR/$TRIPLE/release
CONTEXTS=$TARGET_DIR/images
TAG=${IMAGE_TAG:-latest}
STRIP=${STRIP:-1}
FORCE=${FORCE:-0}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

say() { printf 'build-image: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# name → binary, package, Dockerfile, image
declare -A BIN=([kelpie]=kelpie [standin]=kelpie-standin [example-service]=example-service)
declare -A PKG=([kelpie]=kelpie [standin]=kelpie-standin [example-service]=kelpie-example-service)
declare -A DOCKERFILE=([kelpie]=docker/kelpie.Dockerfile [standin]=docker/standin.Dockerfile
                       [example-service]=docker/example-service.Dockerfile)
declare -A IMAGE=([kelpie]=kelpie [standin]=kelpie-standin [example-service]=kelpie-example-service)

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(kelpie standin example-service)
for w in "${wanted[@]}"; do
  [ -n "${BIN[$w]:-}" ] || die "unknown image '$w' (expected kelpie, standin or example-service)"
done

command -v docker >/dev/null || die "docker is not installed"
command -v cargo >/dev/null || die "cargo is not installed"
[ -r "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE (apt-get install ca-certificates, or set CA_BUNDLE)"

# Which of the wanted binaries exist in this workspace (a helper's crate may not be merged yet).
available_bins=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    for t in p["targets"]:
        if "bin" in t["kind"]:
            print(p["name"] + "/" + t["name"])
')
build=()
for w in "${wanted[@]}"; do
  if grep -qx "${PKG[$w]}/${BIN[$w]}" <<<"$available_bins"; then
    build+=("$w")
  else
    say "skipping $w: no binary '${BIN[$w]}' in package ${PKG[$w]} in this workspace yet"
  fi
done
[ ${#build[@]} -gt 0 ] || { say "nothing to build"; exit 0; }

# One cargo invocation for all binaries. RUSTFLAGS applies to the target only (not to build scripts), and the
# --target directory keeps these artifacts apart from ordinary builds, so neither invalidates the other.
# Always the same set of packages (every image's binary that exists, whichever images were asked for): cargo
# unifies dependency features over the selected packages, so a different selection would rebuild dependencies.
bin_args=()
for w in kelpie standin example-service; do
  if grep -qx "${PKG[$w]}/${BIN[$w]}" <<<"$available_bins"; then
    bin_args+=(-p "${PKG[$w]}" --bin "${BIN[$w]}")
  fi
done
say "cargo build --release --target $TRIPLE ${bin_args[*]} (static)"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$TRIPLE" "${bin_args[@]}"

for w in "${build[@]}"; do
  bin=${BIN[$w]}
  src=$BIN_DIR/$bin
  [ -x "$src" ] || die "$src was not built"
  # A scratch image has no loader: the binary must be static.
  if ! file -b "$src" | grep -Eq 'statically linked|static-pie linked'; then
    die "$src is not statically linked: $(file -b "$src")"
  fi
  if ldd "$src" >/dev/null 2>&1 && ! ldd "$src" 2>&1 | grep -q 'statically linked'; then
    die "$src has dynamic dependencies: $(ldd "$src" 2>&1 | tr '\n' ' ')"
  fi

  ctx=$CONTEXTS/$w
  mkdir -p "$ctx"
  find "$ctx" -mindepth 1 -delete
  cp "$src" "$ctx/$bin"
  case "$STRIP" in
    1) strip --strip-debug "$ctx/$bin" ;;
    all) strip --strip-all "$ctx/$bin" ;;
    0) ;;
    *) die "STRIP must be 1, all or 0 (got '$STRIP')" ;;
  esac
  cp "$CA_BUNDLE" "$ctx/ca-certificates.crt"
  cp docker/passwd docker/group docker/nsswitch.conf "$ctx/"
  cp "${DOCKERFILE[$w]}" "$ctx/Dockerfile"
  mkdir -p "$ctx/run-datadog" "$ctx/tmp"
  chmod 0755 "$ctx/$bin"
  chmod 0644 "$ctx/ca-certificates.crt" "$ctx/passwd" "$ctx/group" "$ctx/nsswitch.conf" "$ctx/Dockerfile"

  hash=$(cd "$ctx" && find . -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-64)
  image=${IMAGE[$w]}:$TAG
  current=$(docker image inspect -f '{{ index .Config.Labels "kelpie.context.sha256" }}' "$image" 2>/dev/null || true)
  if [ "$FORCE" != 1 ] && [ "$current" = "$hash" ]; then
    say "$image is up to date"
  else
    say "docker build $image (binary $(du -h "$ctx/$bin" | cut -f1))"
    docker build --quiet --label "kelpie.context.sha256=$hash" -t "$image" "$ctx" >/dev/null
  fi
  size=$(docker image inspect -f '{{.Size}}' "$image")
  say "$image: $((size / 1024)) KiB ($(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1000000 }') MB)"
  if [ "$w" = kelpie ] && [ "$size" -ge 15000000 ]; then
    say "warning: $image is over the 15 MB goal (STRIP=all drops the symbol table too)"
  fi
done
