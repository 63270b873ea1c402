#!/usr/bin/env bash
# The whole test suite: formatting and lints, the Rust and C tests in release and debug
# builds, the benchmark suite's quick round, then real programs under LD_PRELOAD compared
# with glibc.
#
#   scripts/test.sh [--deps] [--no-install]
#
# The first stage installs what the suite needs when it is missing: Debian packages with
# apt-get (the peers tcmalloc, jemalloc and mimalloc, redis, sqlite3, g++, pkg-config,
# man-db, valgrind, google-pprof, strace, ...) and the rustup components rustfmt and clippy. When everything is there it
# installs nothing and runs no apt-get. Not as root, it prints the `sudo apt-get install`
# line to run and stops. Rust itself (cargo, stable) and a C compiler must be there.
#
#   --deps        run only that first stage
#   --no-install  install nothing: print what is missing and how to install it (exit 2)
#
# Each stage prints its name when it starts and its time when it ends; the times of all
# stages come again at the end. Exits 0 when everything passed, 1 when a stage failed, 2
# when something the suite needs is missing and was not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
prog=${0##*/}

deps_only=0
no_install=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --deps) deps_only=1 ;;
    --no-install) no_install=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
        exit 0
        ;;
    *)
        echo "$prog: unknown option: $1 (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done

# ---- what the suite needs ------------------------------------------------------------

# program:Debian package, for the programs the tests and scripts run
PROGRAMS=(
    cc:gcc gcc:gcc c++:g++ pkg-config:pkg-config readelf:binutils ldd:libc-bin
    python3:python3 git:git sqlite3:sqlite3 perl:perl xz:xz-utils
    sort:coreutils sha256sum:coreutils timeout:coreutils diff:diffutils cmp:diffutils
    redis-server:redis-server redis-benchmark:redis-tools redis-cli:redis-tools
    man:man-db gzip:gzip dpkg-deb:dpkg make:make strace:strace valgrind:valgrind
    google-pprof:google-perftools
)
# library soname:Debian package, for the peers of the benchmark suite
LIBRARIES=(
    libtcmalloc_minimal.so.4:libtcmalloc-minimal4 libjemalloc.so.2:libjemalloc2
    libmimalloc.so.2:libmimalloc2.0
)

have_library() { # SONAME: known to ld.so's cache, or without ldconfig in a usual directory
    local soname=$1 ldconfig dir
    ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
    if [[ -x $ldconfig ]]; then
        "$ldconfig" -p 2>/dev/null | awk -v n="$soname" '
            $1 == n { found = 1 } END { exit !found }'
        return
    fi
    for dir in /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu /usr/lib64 /usr/lib; do
        [[ -e $dir/$soname ]] && return 0
    done
    return 1
}

# Prints the Debian packages of what is missing, one per line (with repeats).
missing_packages() {
    local pair
    for pair in "${PROGRAMS[@]}"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || echo "${pair#*:}"
    done
    for pair in "${LIBRARIES[@]}"; do
        have_library "${pair%%:*}" || echo "${pair#*:}"
    done
    # perl's Digest::SHA is in perl, not perl-base; the C headers are in libc6-dev
    if command -v perl >/dev/null 2>&1 && ! perl -MDigest::SHA -e 1 >/dev/null 2>&1; then
        echo perl
    fi
    if command -v cc >/dev/null 2>&1 && ! cc -x c -o /dev/null - >/dev/null 2>&1 \
        <<<$'#include <stdio.h>\nint main(void) { return puts("") < 0; }'; then
        echo libc6-dev
    fi
    return 0
}

# The rustup components that cargo fmt and cargo clippy need, when missing.
missing_components() {
    cargo fmt --version >/dev/null 2>&1 || echo rustfmt
    cargo clippy --version >/dev/null 2>&1 || echo clippy
    return 0
}

deps() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "$prog: cargo is not installed: install Rust (stable) with rustup, https://rustup.rs" >&2
        return 2
    fi
    local missing components
    mapfile -t missing < <(missing_packages | sort -u)
    mapfile -t components < <(missing_components)
    if [[ ${#missing[@]} -eq 0 && ${#components[@]} -eq 0 ]]; then
        echo "everything the suite needs is installed"
        return 0
    fi
    local status=0
    if [[ ${#components[@]} -gt 0 ]]; then
        if [[ $no_install -eq 0 ]] && command -v rustup >/dev/null 2>&1; then
            echo "installing the rustup components: ${components[*]}"
            rustup component add "${components[@]}"
        else
            echo "$prog: missing: cargo ${components[*]}; install with: rustup component add ${components[*]}" >&2
            status=2
        fi
    fi
    if [[ ${#missing[@]} -gt 0 ]]; then
        if ! command -v apt-get >/dev/null 2>&1; then
            echo "$prog: missing programs or libraries; their Debian packages: ${missing[*]}" >&2
            status=2
        elif [[ $no_install -eq 1 || $EUID -ne 0 ]]; then
            echo "$prog: missing Debian packages; install them with:" >&2
            echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
            status=2
        else
            echo "installing the Debian packages: ${missing[*]}"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
            hash -r
            mapfile -t missing < <(missing_packages | sort -u)
            if [[ ${#missing[@]} -gt 0 ]]; then
                echo "$prog: still missing after apt-get install: ${missing[*]}" >&2
                status=2
            fi
        fi
    fi
    return "$status"
}

# ---- stages ----------------------------------------------------------------------------

STAGE_NAMES=()
STAGE_TIMES=()
suite_started=$SECONDS
current=""
stage_started=$SECONDS

finish_stage() {
    [[ -n $current ]] || return 0
    local took=$((SECONDS - stage_started))
    STAGE_NAMES+=("$current")
    STAGE_TIMES+=("$took")
    echo "-- $current: $(duration "$took")"
    current=""
}

stage() { # NAME: ends the stage before, starts this one
    finish_stage
    current=$1
    stage_started=$SECONDS
    echo
    echo "== [$((${#STAGE_NAMES[@]} + 1))/$N_STAGES] $current"
}

duration() {
    if [[ $1 -ge 60 ]]; then
        printf '%d min %02d s' $(($1 / 60)) $(($1 % 60))
    else
        printf '%d s' "$1"
    fi
}

report() {
    local status=$?
    local failed=$current
    finish_stage
    echo
    local i
    for i in "${!STAGE_NAMES[@]}"; do
        printf '  %-64s %s\n' "${STAGE_NAMES[$i]}" "$(duration "${STAGE_TIMES[$i]}")"
    done
    if [[ $status -eq 0 ]]; then
        echo "$prog: all ${#STAGE_NAMES[@]} stages passed in $(duration $((SECONDS - suite_started)))"
    else
        echo "$prog: FAILED in stage '$failed' (exit status $status) after $(duration $((SECONDS - suite_started)))"
    fi
}

N_STAGES=9
[[ $deps_only -eq 1 ]] && N_STAGES=1
trap report EXIT

stage "what the suite needs (installs only what is missing)"
deps || exit $?
[[ $deps_only -eq 1 ]] && exit 0

stage "cargo fmt --check, cargo clippy, cargo doc"
cargo fmt --all -- --check
cargo clippy --all-targets --release -- -D warnings
cargo clippy --lib --release --no-default-features -- -D warnings
RUSTDOCFLAGS=-Dwarnings cargo doc --no-deps --quiet

stage "cargo build --release (the libraries the C tests and smoke tests load)"
cargo build --release

stage "cargo test --release (unit, integration, C programs preloaded and linked, packaging)"
cargo test --release

stage "cargo test (debug build: debug assertions on)"
cargo test -p goalloc --lib --test api --test threads --test property --test global --test header --test docs --test large_cache --test lines --test central_bound --test thread_exit --test idle_lists

stage "cargo package -p goalloc (the crate as crates.io would get it builds; no warning)"
package_log=$(cargo package -p goalloc --allow-dirty 2>&1) || {
    echo "$package_log"
    exit 1
}
if grep -q '^warning' <<<"$package_log"; then
    echo "$package_log"
    echo "$prog: cargo package warns"
    exit 1
fi
grep -E '^ *(Packaged|Verifying)' <<<"$package_log"

stage "the Rust tests again in checked mode (GOALLOC_CHECK=1)"
GOALLOC_CHECK=1 cargo test -p goalloc --release --test api --test threads --test property --test global --test lines --test thread_exit

stage "the benchmark suite, one short round (every workload under every allocator, checked)"
scripts/bench.sh --quick --out target/bench-quick

stage "real programs under LD_PRELOAD, compared with glibc"
scripts/smoke-preload.sh
scripts/test-aarch64.sh
