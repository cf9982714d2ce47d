#!/usr/bin/env bash
# Build ouk's packages: a .deb and an .rpm of the same binary, each with a .sha256 and (when a
# release key is given) a cosign-compatible .sig made with the key's package role.
#
#   packaging/build.sh [host|mirror]
#
#   host (default): `ouk` without the S3 store (`--no-default-features`): package `ouk`.
#   mirror:         `ouk` with it (the default features): package `ouk-mirror`.
#
# Environment:
#   OUK_PACKAGE_KEY=release.key  sign with its package role (password: COSIGN_PASSWORD);
#                                also writes ouk-packages.pub, what operators verify with
#   OUK_PACKAGE_OUT=DIR          where the packages go (default: target/packages)
#   OUK_PACKAGE_PROFILE=NAME     cargo profile (default: dist, see the root Cargo.toml)
#   OUK_PACKAGE_REMAP=0          keep this checkout's paths in the binary (default: they are
#                                remapped to /build/ouk and /cargo, so another checkout
#                                directory builds the same bytes; changing RUSTFLAGS
#                                rebuilds every dependency once)
#   SOURCE_DATE_EPOCH            default: the commit's time (file times, the changelog date
#                                in the packages, `ouk --version`'s build date)
#
# Reproducible: the same commit gives the same bytes. Everything time-like comes from
# SOURCE_DATE_EPOCH, the man pages and completions come from the binary, strip and xz are
# deterministic, and the .deb is built twice here and compared (a cheap check of the
# packaging half; OUK_LONG_TESTS=1 cargo test --test installed_package rebuilds from scratch).
set -euo pipefail
cd "$(dirname "$0")/.."

variant=${1:-host}
case "$variant" in
  host) features=(--no-default-features); deb_variant=(); rpm_variant=() ;;
  mirror) features=(); deb_variant=(--variant mirror); rpm_variant=(--variant mirror) ;;
  *) echo "usage: packaging/build.sh [host|mirror]" >&2; exit 2 ;;
esac
for tool in cargo-deb cargo-generate-rpm strip; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "packaging/build.sh: $tool is missing (cargo install cargo-deb cargo-generate-rpm; strip is in binutils)" >&2
    exit 1
  fi
done

profile=${OUK_PACKAGE_PROFILE:-dist}
out=${OUK_PACKAGE_OUT:-target/packages}
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
# Absolute, as cargo passes it to rustc (a relative CARGO_TARGET_DIR is from this directory).
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
export OUK_BUILD_COMMIT=${OUK_BUILD_COMMIT:-$(git rev-parse HEAD)}
# The packaged ouk's root when neither --root nor OUK_ROOT is given (the postinst makes it).
export OUK_DEFAULT_ROOT=/var/lib/ouk/root
if [ "${OUK_PACKAGE_REMAP:-1}" != 0 ]; then
  # The target directory last (rustc applies the last prefix that matches): build scripts'
  # generated sources live there, and their paths can reach panic messages; a target directory
  # outside the checkout (CARGO_TARGET_DIR) must not change the bytes either. Cargo leaves
  # RUSTFLAGS out of symbol hashes, so these paths change nothing else.
  export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$(pwd -P)=/build/ouk --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo --remap-path-prefix=$target_dir=/build/target"
fi

start=$(date +%s)
# ouk-package (the signer) in the same build: same features of ouk-kit, no second build.
cargo build --locked --profile "$profile" -p ouk-cli -p ouk-packaging "${features[@]}"
# `times`: this shell's and its children's CPU (cargo and every rustc it ran), the build's
# cost without the other work on the machine. Run here, not in $(...): a subshell would
# report its own (empty) children.
cpu_file=$(mktemp)
times >"$cpu_file"
echo "built ouk ($variant, profile $profile) in $(( $(date +%s) - start )) s wall; CPU user/sys (shell, children): $(tr '\n' ' ' <"$cpu_file")" >&2
rm -f "$cpu_file"

# The files cargo-deb and cargo-generate-rpm take from target/<profile>/package-assets/:
# the stripped binary, and the man pages and completions that binary generates.
bin="$target_dir/$profile/ouk"
assets="$target_dir/$profile/package-assets"
rm -rf "$assets"
mkdir -p "$assets/bin" "$assets/man" "$assets/completions"
strip --strip-all -o "$assets/bin/ouk" "$bin"
"$assets/bin/ouk" --version >&2
"$assets/bin/ouk" man --output-dir "$assets/man" >/dev/null
"$assets/bin/ouk" completions bash >"$assets/completions/ouk.bash"
"$assets/bin/ouk" completions zsh >"$assets/completions/_ouk"
"$assets/bin/ouk" completions fish >"$assets/completions/ouk.fish"
# cargo-deb and cargo-generate-rpm clamp file times to SOURCE_DATE_EPOCH; set them anyway so
# any tool that does not still sees the same times.
find "$assets" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb_args=(-p ouk-packaging --no-build --no-strip --profile "$profile" "${deb_variant[@]}")
deb=$(cargo deb "${deb_args[@]}" -o "$out/" | tail -n 1)
deb=$(realpath "$deb")
# The packaging half is deterministic: the same inputs packed again give the same bytes.
repack="$out/.repack"
rm -rf "$repack" && mkdir -p "$repack"
again=$(cargo deb "${deb_args[@]}" -o "$repack/" | tail -n 1)
if ! cmp -s "$deb" "$again"; then
  echo "packaging/build.sh: packing the same files twice gave different .deb files ($deb, $again)" >&2
  exit 1
fi
rm -rf "$repack"

rpm_before=$(ls "$out"/*.rpm 2>/dev/null || true)
cargo generate-rpm -p packaging --profile "$profile" "${rpm_variant[@]}" -o "$out/" >&2
rpm=$(realpath "$(ls -t "$out"/*.rpm | head -n 1)")
[ -n "$rpm" ] || { echo "packaging/build.sh: no .rpm was written (before: $rpm_before)" >&2; exit 1; }

if [ -n "${OUK_PACKAGE_KEY:-}" ]; then
  "$target_dir/$profile/ouk-package" sign --key "$OUK_PACKAGE_KEY" "$deb" "$rpm" >&2
  "$target_dir/$profile/ouk-package" public-key --key "$OUK_PACKAGE_KEY" --output "$out/ouk-packages.pub"
else
  echo "NOTICE: OUK_PACKAGE_KEY is not set: writing .sha256 only, no .sig" >&2
  for f in "$deb" "$rpm"; do
    (cd "$(dirname "$f")" && sha256sum "$(basename "$f")" >"$(basename "$f").sha256")
  done
fi
ls -l "$bin" "$assets/bin/ouk" "$deb" "$rpm" >&2
# The two packages, also in $out/built.txt: .ci/run hands the .deb to the installed-package test.
printf '%s\n%s\n' "$deb" "$rpm" | tee "$out/built.txt"
