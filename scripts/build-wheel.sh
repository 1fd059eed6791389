#!/usr/bin/env bash
# Builds the anosys Python package for installing without Rust: an abi3
# wheel (CPython 3.9+, one file for every version) for manylinux2014
# (glibc 2.17 and newer, x86_64 or whatever this machine is) and the
# source distribution, into target/wheels/. maturin, zig (the `ziglang`
# package, maturin's linker and C compiler for an older glibc than this
# machine's) and auditwheel come from PyPI, at the versions pinned below,
# into target/wheel-venv. Then `auditwheel show` must find the wheel
# consistent with its manylinux tag, or this fails.
# Needs cargo (a Rust toolchain); what it builds does not.
# Prints the paths of the wheel and the sdist, one a line, last.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/wheel-venv
out=target/wheels
manifest=crates/anosys-python/Cargo.toml
# manylinux2014 = manylinux_2_17: the oldest glibc that zig can target and
# that Rust's std still supports (1.64+ needs glibc 2.17).
policy=manylinux_2_17

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    maturin==1.16.0 ziglang==0.15.2 auditwheel==6.8.2

# Only this build's files in target/wheels, so `anosys-*.whl` names one.
mkdir -p "$out"
rm -f "$out"/anosys-*.whl "$out"/anosys-*.tar.gz

# maturin finds zig as `python3 -m ziglang`, so the venv goes first.
export PATH="$PWD/$venv/bin:$PATH"
maturin build --quiet --release --zig --compatibility "$policy" -m "$manifest" --out "$out" >&2
maturin sdist -m "$manifest" --out "$out" >&2

wheels=("$out"/anosys-*-abi3-*.whl)
sdists=("$out"/anosys-*.tar.gz)
if [ ${#wheels[@]} -ne 1 ] || [ ! -f "${wheels[0]}" ] || [ ${#sdists[@]} -ne 1 ] || [ ! -f "${sdists[0]}" ]; then
    echo "build-wheel.sh: expected one abi3 wheel and one sdist in $out, found: $(ls "$out")" >&2
    exit 1
fi
wheel=${wheels[0]}

# auditwheel reads the symbols and libraries the extension needs and names
# the manylinux tag they fit: it must be the wheel's own (or older).
report=$(auditwheel show "$wheel" 2>&1) || {
    echo "$report" >&2
    exit 1
}
# (The report wraps its lines; the tag is quoted after "following platform tag:".)
found=$(tr -s ' \n' '  ' <<<"$report" | sed -nE 's/.*following platform tag: "([^"]+)".*/\1/p')
if [[ "$found" != manylinux_* ]]; then
    echo "$report" >&2
    echo "build-wheel.sh: auditwheel reports no manylinux tag for $wheel" >&2
    exit 1
fi
minor=$(cut -d_ -f3 <<<"$found")
if [ "$minor" -gt "${policy##*_}" ] || [[ "$(basename "$wheel")" != *"$policy"* ]]; then
    echo "$report" >&2
    echo "build-wheel.sh: $wheel needs $found, more than its tag $policy" >&2
    exit 1
fi
echo "build-wheel.sh: auditwheel: $(basename "$wheel") is consistent with $found" >&2

echo "$wheel"
echo "${sdists[0]}"
