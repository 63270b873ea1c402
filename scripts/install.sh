#!/usr/bin/env bash
# Build goalloc in release mode and install it under PREFIX, or remove it from there:
#
#   scripts/install.sh [--libdir DIR] PREFIX              e.g. scripts/install.sh /usr/local
#   scripts/install.sh [--libdir DIR] --uninstall PREFIX
#
# Installs
#   LIBDIR/libgoalloc.so.X.Y.Z            the shared library, soname libgoalloc.so.X
#   LIBDIR/libgoalloc.so.X                -> libgoalloc.so.X.Y.Z  (what programs load)
#   LIBDIR/libgoalloc.so                  -> libgoalloc.so.X      (what -lgoalloc finds)
#   LIBDIR/libgoalloc.a                   the static library (Rust's core is inside; no std)
#   LIBDIR/pkgconfig/goalloc.pc           Libs.private: what the static library needs
#   PREFIX/include/goalloc.h
#   PREFIX/share/man/man3/goalloc.3       the manual page: man goalloc
#
# LIBDIR is PREFIX/lib, or what --libdir gives: a directory relative to PREFIX (Debian's
# multiarch: --libdir lib/x86_64-linux-gnu) or an absolute one.
#
# --uninstall removes those files (every libgoalloc.so.* in LIBDIR, whatever its version)
# and builds nothing; it leaves the directories. Give it the PREFIX and --libdir of the
# install: when LIBDIR holds no libgoalloc it removes nothing and exits 1.
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
    echo "usage: ${0##*/} [--libdir DIR] [--uninstall] PREFIX" >&2
    exit 2
}

libdir_opt=lib
uninstall=0
prefix_arg=""
while [[ $# -gt 0 ]]; do
    case $1 in
    --libdir)
        [[ $# -ge 2 && -n $2 ]] || usage
        libdir_opt=$2
        shift
        ;;
    --libdir=?*) libdir_opt=${1#--libdir=} ;;
    --uninstall) uninstall=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    -*) usage ;;
    *)
        [[ -z $prefix_arg && -n $1 ]] || usage
        prefix_arg=$1
        ;;
    esac
    shift
done
[[ -n $prefix_arg ]] || usage

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
cargo=${CARGO:-cargo}

prefix=$(realpath -m -- "$prefix_arg")
if [[ $libdir_opt == /* ]]; then
    libdir=$(realpath -m -- "$libdir_opt")
else
    libdir=$(realpath -m -- "$prefix/$libdir_opt")
fi
for d in "$prefix" "$libdir"; do
    if [[ $d =~ [[:space:]] ]]; then
        echo "${0##*/}: PREFIX and LIBDIR must not contain white space (pkg-config cannot use it): '$d'" >&2
        exit 2
    fi
done
dest=${DESTDIR:-}$prefix
destlib=${DESTDIR:-}$libdir
mandir=share/man/man3

if [[ $uninstall -eq 1 ]]; then
    removed=0
    shopt -s nullglob
    # The libraries tell that this is the install's LIBDIR: without them remove nothing,
    # rather than the header and the manual page alone.
    libs=0
    for f in "$destlib"/libgoalloc.so "$destlib"/libgoalloc.so.* "$destlib/libgoalloc.a"; do
        [[ -e $f || -L $f ]] && libs=$((libs + 1))
    done
    if [[ $libs -eq 0 ]]; then
        echo "${0##*/}: no libgoalloc in ${DESTDIR:+$DESTDIR (DESTDIR) + }$libdir; nothing removed" \
            "(give the PREFIX and --libdir of the install)" >&2
        exit 1
    fi
    for f in "$destlib"/libgoalloc.so "$destlib"/libgoalloc.so.* "$destlib/libgoalloc.a" \
        "$destlib/pkgconfig/goalloc.pc" "$dest/include/goalloc.h" "$dest/$mandir/goalloc.3"; do
        if [[ -e $f || -L $f ]]; then
            rm -f -- "$f"
            echo "  removed $f"
            removed=$((removed + 1))
        fi
    done
    echo "removed $removed files of goalloc"
    exit 0
fi

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

echo "== installing into ${DESTDIR:+$DESTDIR (DESTDIR) + }$prefix (libdir $libdir)"
install -d "$destlib/pkgconfig" "$dest/include" "$dest/$mandir"
install -m 0755 "$shared" "$destlib/$real"
ln -sfn "$real" "$destlib/$soname"
ln -sfn "$soname" "$destlib/libgoalloc.so"
install -m 0644 "$static" "$destlib/libgoalloc.a"
install -m 0644 "$root/include/goalloc.h" "$dest/include/goalloc.h"
install -m 0644 "$root/man/goalloc.3" "$dest/$mandir/goalloc.3"

# The .pc file's libdir: under ${exec_prefix} when LIBDIR is inside PREFIX.
if [[ $libdir == "$prefix" ]]; then
    pc_libdir='${exec_prefix}'
elif [[ $libdir == "$prefix"/* ]]; then
    pc_libdir='${exec_prefix}'/${libdir#"$prefix"/}
else
    pc_libdir=$libdir
fi
pc=$destlib/pkgconfig/goalloc.pc
cat >"$pc.tmp" <<EOF
prefix=$prefix
exec_prefix=\${prefix}
libdir=$pc_libdir
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

for f in "$real" "$soname" libgoalloc.so libgoalloc.a pkgconfig/goalloc.pc; do
    echo "  $destlib/$f"
done
echo "  $dest/include/goalloc.h"
echo "  $dest/$mandir/goalloc.3"
echo "Use it with: PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --cflags --libs goalloc"
echo "Remove it with: ${0##*/} --libdir $libdir --uninstall $prefix"
