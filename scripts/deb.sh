#!/usr/bin/env bash
# Build a Debian package of goalloc with dpkg-deb; it does not install it:
#
#   scripts/deb.sh [--out DIR]
#
# Installs the release build with scripts/install.sh into a staging directory (DESTDIR,
# PREFIX /usr, --libdir lib/<multiarch>), compresses the manual page, adds
# /usr/share/doc/goalloc/{copyright,changelog.gz}, writes DEBIAN/control (Depends: libc6
# at the newest GLIBC_ symbol version the library uses) and DEBIAN/md5sums, and builds
# DIR/goalloc_VERSION-1_ARCH.deb (DIR: default <target>/deb, <target> being
# $CARGO_TARGET_DIR or target/). The path of the .deb is the last line it prints.
#
# One package holds everything: the shared library, the static one, the header, the .pc
# file and the manual page (Debian would split them into libgoalloc0 and
# libgoalloc-dev). Look inside with `dpkg-deb -c FILE` and `dpkg-deb -I FILE`; install it
# with `sudo apt-get install ./FILE`. DEB_MAINTAINER sets the Maintainer field.
#
# Needs dpkg-deb, gzip, readelf and what install.sh needs (cargo, cc).
set -euo pipefail

prog=${0##*/}
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
die() {
    echo "$prog: $*" >&2
    exit 2
}

target=${CARGO_TARGET_DIR:-$root/target}
[[ $target == /* ]] || target=$PWD/$target # cargo takes it relative to the cwd
out=$target/deb
while [[ $# -gt 0 ]]; do
    case $1 in
    --out)
        out=${2:?--out needs a directory}
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

for tool in dpkg-deb dpkg gzip readelf md5sum; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (Debian: dpkg, gzip, binutils, coreutils)"
done

# The version and description of the [package] in Cargo.toml (as install.sh reads them).
package_field() {
    awk -v key="$1" '
        /^\[/ { in_package = ($0 == "[package]") }
        in_package && $1 == key && $2 == "=" {
            sub(/^[^=]*=[[:space:]]*"/, ""); sub(/"[[:space:]]*$/, ""); print; exit
        }' "$root/Cargo.toml"
}
version=$(package_field version)
description=$(package_field description)
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || die "cannot read the version from Cargo.toml (got '$version')"
arch=$(dpkg --print-architecture)
multiarch=$(cc -print-multiarch 2>/dev/null || true)
[[ -n $multiarch ]] || die "cannot tell the multiarch directory (cc -print-multiarch printed nothing)"
deb_version=$version-1

mkdir -p "$out"
out=$(cd -- "$out" && pwd -P)
stage=$out/goalloc_${deb_version}_$arch
rm -rf -- "$stage"
mkdir -p "$stage/DEBIAN"

# (install.sh's closing lines, how to use and remove an install, do not apply here)
DESTDIR=$stage "$root/scripts/install.sh" --libdir "lib/$multiarch" /usr >/dev/null

doc=$stage/usr/share/doc/goalloc
install -d "$doc"
gzip -9n "$stage/usr/share/man/man3/goalloc.3"
gzip -9n <"$root/CHANGELOG.md" >"$doc/changelog.gz"
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: goalloc"
    echo
    echo "Files: *"
    echo "Copyright: the goalloc developers"
    echo "License: MIT or Apache-2.0"
    echo " goalloc is licensed under the MIT license or the Apache License, Version 2.0,"
    echo " at your option. The text of the Apache License is in"
    echo " /usr/share/common-licenses/Apache-2.0; the MIT license follows."
    echo
    echo "License: MIT"
    sed 's/^$/./; s/^/ /' "$root/LICENSE-MIT"
} >"$doc/copyright"
chmod 0644 "$doc/copyright" "$doc/changelog.gz"

lib=$stage/usr/lib/$multiarch/libgoalloc.so.$version
glibc=$(readelf --dyn-syms -W "$lib" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -t. -k1,1n -k2,2n -k3,3n | tail -1)
[[ -n $glibc ]] || die "found no GLIBC_ symbol version in $lib"
installed_kib=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)

cat >"$stage/DEBIAN/control" <<EOF
Package: goalloc
Version: $deb_version
Architecture: $arch
Maintainer: ${DEB_MAINTAINER:-goalloc developers}
Installed-Size: $installed_kib
Depends: libc6 (>= $glibc)
Section: libs
Priority: optional
Description: $description
 goalloc replaces malloc, free and the rest of the C allocator, and C++'s
 operator new and delete, in any program: preloaded with
 LD_PRELOAD=libgoalloc.so.0, or linked with -lgoalloc (pkg-config goalloc).
 Per-thread caches, size classes and a page heap as in Go's runtime; a
 background thread returns idle memory to the OS; bad frees abort with a
 message; GOALLOC_STATS=1 prints statistics at exit. See goalloc(3).
EOF
(cd -- "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"

deb=$out/goalloc_${deb_version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
rm -rf -- "$stage"
echo "== built $deb (dpkg-deb -c lists it; not installed)"
echo "$deb"
