#!/usr/bin/env bash
# Build goalloc in release mode and install it under PREFIX:
#
#   scripts/install.sh PREFIX          e.g. scripts/install.sh /usr/local
#
# Installs
#   PREFIX/lib/libgoalloc.so.X.Y.Z        the shared library, soname libgoalloc.so.X
#   PREFIX/lib/libgoalloc.so.X            -> libgoalloc.so.X.Y.Z  (what programs load)
#   PREFIX/lib/libgoalloc.so              -> libgoalloc.so.X      (what -lgoalloc finds)
#   PREFIX/lib/libgoalloc.a               the static library (Rust's core is inside; no std)
#   PREFIX/include/goalloc.h
#   PREFIX/lib/pkgconfig/goalloc.pc       Libs.private: what the static library needs
#
# DESTDIR, when set, is put in front of every installed path (for packagers); the .pc
# file still names PREFIX. CARGO names the cargo to run (default: cargo).
#
# The build goes to <target>/install, where <target> is $CARGO_TARGET_DIR or target/:
# the shared library is linked there with -Wl,-soname, which the development build in
# target/release must not have (tests and scripts link that one as -lgoalloc and load
# it from target/release, where no libgoalloc.so.X exists).
set -euo pipefail

usage() {
    echo "usage: ${0##*/} PREFIX" >&2
    exit 2
}

[[ $# -eq 1 && -n $1 && $1 != -* ]] || usage

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
cargo=${CARGO:-cargo}

prefix=$(realpath -m -- "$1")
if [[ $prefix =~ [[:space:]] ]]; then
    echo "${0##*/}: PREFIX must not contain white space (pkg-config cannot use it): '$prefix'" >&2
    exit 2
fi
dest=${DESTDIR:-}$prefix

# The version and description of the [package] in Cargo.toml.
package_field() {
    awk -v key="$1" '
        /^\[/ { in_package = ($0 == "[package]") }
        in_package && $1 == key && $2 == "=" {
            sub(/^[^=]*=[[:space:]]*"/, ""); sub(/"[[:space:]]*$/, ""); print; exit
        }' "$root/Cargo.toml"
}
version=$(package_field version)
description=$(package_field description)
if [[ ! $version =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]]; then
    echo "${0##*/}: cannot read the package version from $root/Cargo.toml (got '$version')" >&2
    exit 1
fi
major=${version%%.*}
real=libgoalloc.so.$version
soname=libgoalloc.so.$major

target=${CARGO_TARGET_DIR:-$root/target}
[[ $target == /* ]] || target=$PWD/$target # cargo takes it relative to the cwd
build=$target/install
native_file=$build/native-static-libs.txt

# One release build of both library kinds, from the workspace member goalloc-cdylib (the
# crate that links goalloc without Rust's std). The extra rustc flags reach only that
# crate: its soname, and the native libraries that its static archive needs, written to
# a file (rustc writes it only when it compiles; the file stays from the last build).
build_libraries() {
    (cd -- "$root" && "$cargo" rustc --release -p goalloc-cdylib --lib \
        --crate-type cdylib,staticlib \
        --target-dir "$build" -- \
        -C "link-arg=-Wl,-soname,$soname" \
        "--print=native-static-libs=$native_file")
}

shared=$build/release/libgoalloc.so
static=$build/release/libgoalloc.a

# Whether the built shared library has the soname (unknown without readelf: yes).
has_soname() {
    command -v readelf >/dev/null 2>&1 || return 0
    readelf -d "$shared" 2>/dev/null | grep -qF "Library soname: [$soname]"
}

echo "== building goalloc $version (release) in $build"
build_libraries
if [[ ! -s $native_file ]] || ! has_soname; then
    # cargo found the build fresh, but the list of native libraries was removed or
    # target/install/release/libgoalloc.so was overwritten (another build that shares
    # this target directory and has goalloc as a dependency): compile goalloc again.
    echo "== $native_file missing or $shared without soname: rebuilding goalloc"
    "$cargo" clean --release -p goalloc-cdylib --target-dir "$build" --manifest-path "$root/Cargo.toml"
    build_libraries
fi
for f in "$shared" "$static" "$native_file"; do
    if [[ ! -s $f ]]; then
        echo "${0##*/}: the build succeeded but $f is missing or empty" >&2
        exit 1
    fi
done
if ! has_soname; then
    echo "${0##*/}: $shared was linked without the soname $soname" >&2
    exit 1
fi
native_libs=$(tr -s '[:space:]' ' ' <"$native_file")
native_libs=${native_libs% }
native_libs=${native_libs# }

echo "== installing into ${DESTDIR:+$DESTDIR (DESTDIR) + }$prefix"
install -d "$dest/lib/pkgconfig" "$dest/include"
install -m 0755 "$shared" "$dest/lib/$real"
ln -sfn "$real" "$dest/lib/$soname"
ln -sfn "$soname" "$dest/lib/libgoalloc.so"
install -m 0644 "$static" "$dest/lib/libgoalloc.a"
install -m 0644 "$root/include/goalloc.h" "$dest/include/goalloc.h"

pc=$dest/lib/pkgconfig/goalloc.pc
cat >"$pc.tmp" <<EOF
prefix=$prefix
exec_prefix=\${prefix}
libdir=\${exec_prefix}/lib
includedir=\${prefix}/include

Name: goalloc
Description: $description
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lgoalloc
Libs.private: $native_libs
EOF
chmod 0644 "$pc.tmp"
mv -f "$pc.tmp" "$pc"

for f in "lib/$real" "lib/$soname" lib/libgoalloc.so lib/libgoalloc.a include/goalloc.h \
    lib/pkgconfig/goalloc.pc; do
    echo "  $dest/$f"
done
echo "Use it with: PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs goalloc"
