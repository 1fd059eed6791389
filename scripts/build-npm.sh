#!/usr/bin/env bash
# Builds the npm tarballs of the Node.js package (napi-rs layout) into
# target/npm/:
#
#   anosys-<version>.tgz                 the package: JavaScript, types, no
#                                        Rust sources and no addon
#   anosys-linux-x64-gnu-<version>.tgz   the prebuilt addon for Linux x64
#                                        (glibc), the optional dependency
#                                        anosys names at its own version
#
# Steps: checks that both package.json files carry the workspace version
# (root Cargo.toml, [workspace.package]) and that anosys depends on the
# platform package at exactly that version; builds the addon in release
# (`cargo build --release -p anosys-node --lib`; a no-op when
# `npm run build` in crates/anosys-node already built this checkout);
# copies it into crates/anosys-node/npm/linux-x64-gnu as
# anosys.linux-x64-gnu.node (symbols stripped when `strip` is there);
# checks what `npm pack --dry-run --json` would put in each tarball; packs
# both. Prints the two tarball paths, last.
#
# Install them together, no Rust needed:
#   npm install target/npm/anosys-linux-x64-gnu-<version>.tgz target/npm/anosys-<version>.tgz
set -euo pipefail
cd "$(dirname "$0")/.."

node_pkg=crates/anosys-node
platform=linux-x64-gnu
platform_pkg=$node_pkg/npm/$platform
addon=anosys.$platform.node
out=target/npm

if [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ] || ! getconf GNU_LIBC_VERSION >/dev/null 2>&1; then
    echo "build-npm.sh: builds the $platform package only, on Linux x86_64 with glibc (this is $(uname -s) $(uname -m))" >&2
    exit 1
fi

version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml)
if [ -z "$version" ]; then
    echo "build-npm.sh: no version in [workspace.package] of Cargo.toml" >&2
    exit 1
fi
# One version: the workspace's. Both manifests and the dependency on the
# platform package must say it (edit them with it when it changes).
node - "$version" "$node_pkg/package.json" "$platform_pkg/package.json" <<'EOF'
const [version, mainPath, platformPath] = process.argv.slice(2);
const fs = require('node:fs');
const main = JSON.parse(fs.readFileSync(mainPath, 'utf8'));
const platform = JSON.parse(fs.readFileSync(platformPath, 'utf8'));
const wrong = [];
if (main.version !== version) wrong.push(`${mainPath}: version ${main.version}`);
if (platform.version !== version) wrong.push(`${platformPath}: version ${platform.version}`);
const dep = main.optionalDependencies?.[platform.name];
if (dep !== version) wrong.push(`${mainPath}: optionalDependencies["${platform.name}"] is ${dep}`);
if (wrong.length) {
  console.error(`build-npm.sh: the workspace version is ${version} (Cargo.toml), but:\n  ${wrong.join('\n  ')}`);
  process.exit(1);
}
EOF

locked=()
if [ -n "${ANOSYS_CARGO_LOCKED:-}" ]; then locked=(--locked); fi
cargo build --release -p anosys-node --lib "${locked[@]}"
target_dir=$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))')
built=$target_dir/release/libanosys_node.so

# Copy then rename: a process that has the old addon loaded keeps its file.
cp "$built" "$platform_pkg/$addon.tmp"
if command -v strip >/dev/null 2>&1; then
    strip --strip-unneeded "$platform_pkg/$addon.tmp"
fi
mv "$platform_pkg/$addon.tmp" "$platform_pkg/$addon"

# What each tarball would hold: the main one no Rust sources and no addon,
# the platform one the addon.
check_pack() { # folder, node code run on the file list (paths in `files`)
    local json
    json=$(cd "$1" && npm pack --dry-run --json --loglevel=error)
    node -e '
const [folder, check] = process.argv.slice(1);
const [pack] = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const files = pack.files.map((f) => f.path);
const problem = new Function("files", check)(files);
if (problem) { console.error(`build-npm.sh: ${folder}: ${problem} (files: ${files.join(", ")})`); process.exit(1); }
' "$1" "$2" <<<"$json"
}
check_pack "$node_pkg" '
const bad = files.filter((f) => /\.(rs|node|so|toml)$/.test(f) || /^(src|npm|tests|tests-otel-openai|target|node_modules)\//.test(f) || f === "build.rs" || f === "Cargo.lock");
if (bad.length) return `must not contain ${bad.join(", ")}`;
for (const f of ["package.json", "index.js", "index.d.ts", "lib/native.js", "README.md"]) if (!files.includes(f)) return `misses ${f}`;'
check_pack "$platform_pkg" "
const want = ['$addon', 'package.json', 'README.md'];
if (files.slice().sort().join() !== want.sort().join()) return 'must hold exactly ' + want.join(', ');"

mkdir -p "$out"
rm -f "$out/anosys-$version.tgz" "$out/anosys-$platform-$version.tgz"
(cd "$platform_pkg" && npm pack --pack-destination "$OLDPWD/$out" --loglevel=error >/dev/null)
(cd "$node_pkg" && npm pack --pack-destination "$OLDPWD/$out" --loglevel=error >/dev/null)
for tarball in "$out/anosys-$platform-$version.tgz" "$out/anosys-$version.tgz"; do
    test -f "$tarball" || { echo "build-npm.sh: npm pack made no $tarball" >&2; exit 1; }
    echo "$PWD/$tarball"
done
