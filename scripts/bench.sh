#!/usr/bin/env bash
# Benchmark goalloc against glibc, tcmalloc, jemalloc, mimalloc, mimalloc3 and snmalloc.
#
#   scripts/bench.sh [--rounds N] [--quick] [--out DIR] [--install] [--callgrind]
#                    [--only LIST] [--allocators LIST] [--lib PATH] [--baseline PATH]
#                    [--threads N] [--scale X] [--oversubscribe] [--keep]
#
# Builds goalloc (cargo build --release) and the workloads of benches/workloads/, then
# runs every workload under every allocator, round after round; within a round the
# allocators take turns on each workload (the order rotates from round to round), so that
# a noisy neighbour slows them all alike. Each run is timed by a small wrapper
# (benches/workloads/runstat.c): wall time, CPU time (user+sys, children included) and
# peak RSS. A run fails when it exits non-zero, is killed, times out, or prints other
# output than the first run of the same workload (every workload prints a deterministic
# result line and checks the contents of its objects itself).
#
# Workloads (benches/workloads/*.c take -t threads -s scale; see each file's header):
#   pairs       malloc/free pairs at 16 B .. 256 KiB, single-threaded, in batches of 32
#               (timing; --callgrind also measures the patterns fixed, cycle and ring)
#   table       server-like table whose values are replaced; most frees on another thread
#   prodcons    producer/consumer pairs across threads
#   falseshare  objects handed between threads and written in a tight loop
#   random      random sizes 8 B .. 64 KiB over a working set
#   large       64 KiB .. 32 MiB objects grown with realloc
#   peak        512 MiB peak, mostly freed, then RSS sampled every 100 ms for 5 s
#   threads     20000 short-lived threads
#   larson      server simulation after Larson and Krishnan: chains of short-lived threads
#               replace random objects (8 .. 1000 B) of an array they hand on; the first
#               frees are of the main thread's objects
#   larsonsized larson with C++ operator new and sized delete instead of malloc/free
#   xmalloc     one thread allocates (8 B .. 4 KiB), the other threads free, after
#               xmalloc-test
#   rptest      random sizes 16 B .. 16 KiB over a working set per thread, a share sent to
#               the next thread to free, after rpmalloc's benchmark
#   cachethrash1, cachethrash
#               Hoard's cache-thrash with 1 and with --threads threads: each thread
#               allocates a 1-byte object, writes it 500000 times, frees it, 250 times
#   cachescratch
#               Hoard's cache-scratch: the same after each thread frees an object that the
#               main thread allocated for it beside the others' (passive false sharing)
#   python      python3 (PYTHONMALLOC=malloc) running benches/real/python_workload.py
#   sqlite      sqlite3 inserts and queries in memory (benches/real/sqlite.sql)
#   gcc         gcc -O2 compiling a generated 4000-line file (benches/real/gen_c.py)
#   redis       redis-server on 127.0.0.1 (no persistence) with redis-benchmark -n 200000;
#               time is the client's, CPU and RSS the server's
# Allocators: goalloc (target/release/libgoalloc.so), glibc (no preload), Debian's
# tcmalloc (libtcmalloc-minimal4), jemalloc (libjemalloc2) and mimalloc (libmimalloc2.0,
# mimalloc 2.0), and two built from crates.io by the small crates of benches/peers/
# (cargo build --release there, pinned by their Cargo.lock; a first build takes about a
# minute): mimalloc3 (libmimalloc-sys, mimalloc 3) and snmalloc (snmalloc-sys). Before the
# runs, every preloaded library is checked to be the one that malloc, free, calloc,
# realloc, posix_memalign, aligned_alloc, memalign and malloc_usable_size resolve to
# (benches/workloads/whichmalloc.c).
# Under "glibc" a program runs without preload, except one that links another malloc
# (Debian's redis-server links jemalloc): it gets benches/workloads/glibc_shim.c, which
# sends the malloc family back to glibc's.
#
# Options:
#   --rounds N        rounds (default 5, at least 3); a round of the seven allocators
#                     and all workloads takes about 6 minutes on 2 cores, so the
#                     default run about half an hour
#   --quick           one short round of everything (scale 0.1, 1 s of RSS samples):
#                     checks that everything runs and verifies, asserts nothing about
#                     speed; once goalloc is built, under a minute on 2 idle cores,
#                     a few minutes on busy ones
#   --out DIR         report folder (default report/): results.csv, summary.txt,
#                     summary.md, meta.txt, *.svg, rss/, failures/
#   --install         first apt-get install what is missing of the Debian packages
#                     libtcmalloc-minimal4 libjemalloc2 libmimalloc2.0 redis-server
#                     redis-tools sqlite3 gcc g++ python3 (valgrind for --callgrind), then
#                     run as the other options say (scripts/test.sh installs them too)
#   --callgrind       instead of timing: run pairs under valgrind --tool=callgrind for
#                     each allocation pattern (pairs -P: batch, fixed, cycle, ring; see
#                     benches/workloads/pairs.c), allocator and size, twice (50000 and
#                     250000 pairs), and report instructions per malloc+free: the
#                     difference divided by the difference in pairs, less the loop's own
#                     cost, measured per pattern with pairs -N. Sizes: batch 16 B .. 256
#                     KiB (8 sizes), fixed, cycle and ring 16, 64, 1024, 32768. Writes
#                     callgrind.csv (a row per pattern, allocator and size),
#                     callgrind.txt and callgrind.md (a table per pattern); about 3
#                     minutes for the five allocators on 2 cores (with --quick: fewer
#                     sizes and pairs, about 40 s). snmalloc is left out: it cannot
#                     initialise under valgrind
#   --only LIST       workloads to run, comma separated (default: all)
#   --allocators LIST allocators, comma separated (default: all seven); also goalloc-prof:
#                     goalloc with its heap profile on (GOALLOC_PROFILE, default rate;
#                     each run writes its profile into the temporary directory), for the
#                     cost of profiling (not with --callgrind)
#   --lib PATH        the goalloc library to use (default: build target/release)
#   --baseline PATH   another build of libgoalloc.so, run as a sixth allocator named
#                     "before": a before/after comparison in the same run, interleaved
#                     with the others (e.g. a build of the previous commit)
#   --threads N       threads for the C workloads (default 2; pairs and cachethrash1
#                     always run 1)
#   --scale X         multiply the work of every workload by X
#   --oversubscribe   also run the threaded workloads (table, prodcons, falseshare,
#                     threads, and larson, xmalloc, rptest, cache-thrash where present)
#                     with 16 and 64 threads on 2 cores (pinned with taskset when the
#                     machine has more), as workloads named W@16 and W@64
#   --keep            keep the temporary directory (binaries, outputs of every run)
#
# goalloc's runs write their GOALLOC_STATS report (JSON) to locks/W-goalloc-rN.json in
# the report folder (one line per process); the summary adds the locks' traffic per
# million malloc+free, their hold times and a model of their utilisation on many cores.
#
# Exits 0 when every run passed, 1 when one failed, 2 on usage errors or when something
# it needs is missing.
set -euo pipefail
export LC_ALL=C
unset LD_PRELOAD

prog=${0##*/}
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

ALL_ALLOCATORS=(goalloc glibc tcmalloc jemalloc mimalloc mimalloc3 snmalloc)
# Run only when named in --allocators.
EXTRA_ALLOCATORS=(goalloc-prof)
ALL_WORKLOADS=(pairs table prodcons falseshare random large peak threads larson larsonsized xmalloc
    rptest cachethrash1 cachethrash cachescratch python sqlite gcc redis)
# the programs of benches/workloads/ that the workloads run
C_WORKLOADS=(pairs table prodcons falseshare random large peak threads larson xmalloc rptest cachethrash)
# Run again with 16 and 64 threads under --oversubscribe (those that exist).
THREADED_WORKLOADS=(table prodcons falseshare threads larson larsonsized xmalloc rptest cachethrash
    cachescratch)
OVERSUBSCRIBED_THREADS=(16 64)

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}
die() {
    echo "$prog: $*" >&2
    exit 2
}
log() { echo "$prog: $*" >&2; }

rounds=5
quick=0
out=$root/report
install=0
callgrind=0
only=""
allocs_opt=""
lib=""
threads=2
scale_opt=""
baseline=""
keep=0
oversubscribe=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --rounds) rounds=${2:?--rounds needs a number}; shift ;;
    --quick) quick=1 ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    --install) install=1 ;;
    --callgrind) callgrind=1 ;;
    --only) only=${2:?--only needs a list}; shift ;;
    --allocators) allocs_opt=${2:?--allocators needs a list}; shift ;;
    --lib) lib=${2:?--lib needs a path}; shift ;;
    --baseline) baseline=${2:?--baseline needs a path}; shift ;;
    --threads) threads=${2:?--threads needs a number}; shift ;;
    --scale) scale_opt=${2:?--scale needs a number}; shift ;;
    --keep) keep=1 ;;
    --oversubscribe) oversubscribe=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

[[ $rounds =~ ^[0-9]+$ ]] || die "--rounds: not a number: $rounds"
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "--threads: not a number: $threads"
if [[ $quick -eq 1 ]]; then
    rounds=1
elif [[ $rounds -lt 3 ]]; then
    die "--rounds must be at least 3 (medians of fewer rounds mean little); --quick runs one"
fi
scale=1
[[ $quick -eq 1 ]] && scale=0.1
if [[ -n $scale_opt ]]; then
    [[ $scale_opt =~ ^[0-9]*\.?[0-9]+$ ]] || die "--scale: not a number: $scale_opt"
    scale=$(awk -v a="$scale" -v b="$scale_opt" 'BEGIN { print a * b }')
fi
# seconds of RSS samples after the peak; timeout of one run
if [[ $quick -eq 1 ]]; then peak_seconds=1; run_timeout=90; else peak_seconds=5; run_timeout=300; fi

in_list() { # WORD WORD... : is $1 among the rest?
    local w=$1
    shift
    local x
    for x in "$@"; do [[ $x == "$w" ]] && return 0; done
    return 1
}

allocators=("${ALL_ALLOCATORS[@]}")
if [[ -n $allocs_opt ]]; then
    IFS=, read -r -a allocators <<<"$allocs_opt"
    for a in "${allocators[@]}"; do
        in_list "$a" "${ALL_ALLOCATORS[@]}" "${EXTRA_ALLOCATORS[@]}" ||
            die "unknown allocator: $a (known: ${ALL_ALLOCATORS[*]} ${EXTRA_ALLOCATORS[*]})"
    done
fi
workloads=("${ALL_WORKLOADS[@]}")
if [[ -n $only ]]; then
    IFS=, read -r -a workloads <<<"$only"
    for w in "${workloads[@]}"; do
        in_list "$w" "${ALL_WORKLOADS[@]}" || die "unknown workload: $w (known: ${ALL_WORKLOADS[*]})"
    done
fi
[[ ${#allocators[@]} -gt 0 && ${#workloads[@]} -gt 0 ]] || die "nothing to run"
pin=()
if [[ $oversubscribe -eq 1 && $callgrind -eq 0 ]]; then
    for w in "${workloads[@]}"; do
        in_list "$w" "${THREADED_WORKLOADS[@]}" || continue
        for n in "${OVERSUBSCRIBED_THREADS[@]}"; do workloads+=("$w@$n"); done
    done
    # 2 cores: as the machine these figures come from has
    if [[ $(nproc) -gt 2 ]]; then
        command -v taskset >/dev/null 2>&1 || die "--oversubscribe on $(nproc) cores needs taskset (util-linux)"
        pin=(taskset -c 0,1)
    fi
fi
if [[ $callgrind -eq 1 ]]; then
    workloads=(pairs)
    in_list goalloc-prof "${allocators[@]}" && die "goalloc-prof is for the timed runs, not --callgrind"
    if in_list snmalloc "${allocators[@]}"; then
        # snmalloc aborts under valgrind ("Failed to initialise snmalloc.": valgrind does
        # not grant the address space it reserves for its pagemap)
        log "snmalloc left out of --callgrind: it cannot initialise under valgrind"
        kept=()
        for a in "${allocators[@]}"; do [[ $a == snmalloc ]] || kept+=("$a"); done
        allocators=("${kept[@]}")
        [[ ${#allocators[@]} -gt 0 ]] || die "nothing to run"
    fi
fi

# ---- what is needed, and where it is ------------------------------------------------

declare -A LIB_SONAME=([tcmalloc]=libtcmalloc_minimal.so.4 [jemalloc]=libjemalloc.so.2 [mimalloc]=libmimalloc.so.2)
declare -A LIB_PACKAGE=([tcmalloc]=libtcmalloc-minimal4 [jemalloc]=libjemalloc2 [mimalloc]=libmimalloc2.0)
# Built from crates.io by benches/peers/NAME: allocator -> library file name.
declare -A PEER_LIB=([mimalloc3]=libmimalloc3.so [snmalloc]=libsnmalloc.so)

find_lib() { # SONAME -> path on stdout, or nothing
    local soname=$1 ldconfig path dir arch=""
    ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)
    if [[ -x $ldconfig ]]; then
        path=$("$ldconfig" -p 2>/dev/null | awk -v n="$soname" '$1 == n { print $NF; exit }')
        if [[ -n $path && -e $path ]]; then
            echo "$path"
            return
        fi
    fi
    command -v gcc >/dev/null 2>&1 && arch=$(gcc -print-multiarch 2>/dev/null || true)
    for dir in ${arch:+/usr/lib/$arch /lib/$arch} /usr/lib64 /usr/lib /lib; do
        if [[ -e $dir/$soname ]]; then
            echo "$dir/$soname"
            return
        fi
    done
}

needed_programs() { # prints "program:package" for what this run needs
    echo "cc:gcc"
    echo "python3:python3"
    # snmalloc is C++ (snmalloc-sys compiles it with the cc crate, which runs c++)
    in_list snmalloc "${allocators[@]}" && echo "c++:g++"
    if [[ $callgrind -eq 1 ]]; then
        echo "valgrind:valgrind"
        return
    fi
    in_list sqlite "${workloads[@]}" && echo "sqlite3:sqlite3"
    in_list gcc "${workloads[@]}" && echo "gcc:gcc"
    if in_list redis "${workloads[@]}"; then
        echo "redis-server:redis-server"
        echo "redis-benchmark:redis-tools"
        echo "redis-cli:redis-tools"
    fi
    return 0
}

missing_packages() {
    local pair a
    while IFS= read -r pair; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || echo "${pair#*:}"
    done < <(needed_programs)
    for a in "${allocators[@]}"; do
        [[ -n ${LIB_SONAME[$a]:-} ]] || continue
        [[ -n $(find_lib "${LIB_SONAME[$a]}") ]] || echo "${LIB_PACKAGE[$a]}"
    done
}

mapfile -t missing < <(missing_packages | sort -u)
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $install -eq 1 ]]; then
        log "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
        mapfile -t missing < <(missing_packages | sort -u)
        [[ ${#missing[@]} -eq 0 ]] || die "still missing after apt-get install: ${missing[*]}"
    else
        die "missing: ${missing[*]} (Debian packages; rerun with --install, or leave them out with --only/--allocators)"
    fi
fi

declare -A PRELOAD=([glibc]="")
for a in "${allocators[@]}"; do
    [[ -n ${LIB_SONAME[$a]:-} ]] || continue
    path=$(find_lib "${LIB_SONAME[$a]}")
    [[ -n $path ]] || die "$a: ${LIB_SONAME[$a]} not found (Debian package ${LIB_PACKAGE[$a]})"
    PRELOAD[$a]=$path
done

python=/usr/bin/python3
[[ -x $python ]] || python=$(python3 -c 'import sys; print(sys.executable)')

# ---- temporary directory, cleaned on exit -----------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/goalloc-bench.XXXXXX")
redis_pid=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    if [[ -n $redis_pid ]]; then
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    if [[ $keep -eq 1 ]]; then
        log "kept $tmp"
    else
        rm -rf -- "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$tmp/bin" "$tmp/runs" "$tmp/ref"

# ---- builds ---------------------------------------------------------------------------

t_start=$(date +%s)
lib_given=0
[[ -n $lib ]] && lib_given=1
if [[ -z $lib ]] && { in_list goalloc "${allocators[@]}" || in_list goalloc-prof "${allocators[@]}"; }; then
    log "cargo build --release"
    (cd -- "$root" && cargo build --release --quiet) >&2 || die "cargo build --release failed"
    target=${CARGO_TARGET_DIR:-$root/target}
    [[ $target == /* ]] || target=$root/$target
    lib=$target/release/libgoalloc.so
fi
for a in "${allocators[@]}"; do
    [[ -n ${PEER_LIB[$a]:-} ]] || continue
    # The peer crates are not in goalloc's workspace; each is built in its own directory
    # (its .cargo/config.toml applies there) into target/peers/NAME.
    peer_target=${CARGO_TARGET_DIR:-$root/target}
    [[ $peer_target == /* ]] || peer_target=$root/$peer_target
    peer_target=$peer_target/peers/$a
    log "cargo build --release (benches/peers/$a)"
    (cd -- "$root/benches/peers/$a" && cargo build --release --locked --quiet --target-dir "$peer_target") >&2 ||
        die "cargo build --release failed in benches/peers/$a"
    PRELOAD[$a]=$peer_target/release/${PEER_LIB[$a]}
    [[ -f ${PRELOAD[$a]} ]] || die "$a: ${PRELOAD[$a]} not built"
done
if [[ -n $baseline ]]; then
    [[ -f $baseline ]] || die "baseline library not found: $baseline"
    allocators+=(before)
    PRELOAD[before]=$(cd -- "$(dirname -- "$baseline")" && pwd -P)/$(basename -- "$baseline")
fi
if in_list goalloc "${allocators[@]}" || in_list goalloc-prof "${allocators[@]}"; then
    [[ -f $lib ]] || die "goalloc library not found: $lib"
    lib=$(cd -- "$(dirname -- "$lib")" && pwd -P)/$(basename -- "$lib")
    PRELOAD[goalloc]=$lib
    PRELOAD[goalloc-prof]=$lib
fi

src=$root/benches/workloads
cflags=(-O2 -g -pthread -Wall -Wextra)
for w in "${C_WORKLOADS[@]}"; do
    libs=()
    # larson calls C++'s operator new and delete (-P new, -P sized)
    [[ $w == larson ]] && libs=(-lstdc++)
    cc "${cflags[@]}" -o "$tmp/bin/$w" "$src/$w.c" "${libs[@]}" || die "cannot build $w"
done
cc "${cflags[@]}" -o "$tmp/bin/runstat" "$src/runstat.c" || die "cannot build runstat"
cc "${cflags[@]}" -o "$tmp/bin/whichmalloc" "$src/whichmalloc.c" -ldl || die "cannot build whichmalloc"
# Does each preloaded library really replace the malloc family? whichmalloc prints the
# object that each function resolves to.
for a in "${allocators[@]}"; do
    pre=${PRELOAD[$a]:-}
    [[ -n $pre ]] || continue
    want=$(readlink -f -- "$pre")
    while read -r fn obj; do
        [[ $(readlink -f -- "$obj") == "$want" ]] ||
            die "$a: $fn resolves to $obj, not to $pre under LD_PRELOAD"
    done < <(LD_PRELOAD=$pre "$tmp/bin/whichmalloc")
done
cc -O2 -shared -fPIC -Wall -o "$tmp/bin/libglibc_shim.so" "$src/glibc_shim.c" -ldl ||
    die "cannot build glibc_shim"
runstat=$tmp/bin/runstat

mkdir -p "$out"
out=$(cd -- "$out" && pwd -P)

# ---- what this run measures --------------------------------------------------------------

peer_crate() { # PEER CRATE: "CRATE VERSION" from benches/peers/PEER/Cargo.lock
    awk -v c="$2" '$1 == "name" && $3 == "\"" c "\"" { f = 1; next }
        f && $1 == "version" { gsub(/"/, "", $3); print c " " $3; exit }' "$root/benches/peers/$1/Cargo.lock"
}
mimalloc3_version() { # the version mimalloc3's library reports (30302 is 3.3.2)
    local v
    v=$(LD_PRELOAD=${PRELOAD[mimalloc3]} "$python" -c 'import ctypes; print(ctypes.CDLL(None).mimalloc3_version())' 2>/dev/null) || v=""
    [[ $v =~ ^[0-9]+$ ]] && echo "$((v / 10000)).$((v / 100 % 100)).$((v % 100))" || echo "?"
}
write_meta() {
    local head dirty changed
    head=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
    changed=$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null | awk '{ print $NF }' | paste -sd ' ' -)
    if [[ -n $changed ]]; then dirty="yes ($changed)"; else dirty=no; fi
    {
        echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "commit: $head"
        echo "dirty: $dirty"
        echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
        echo "kernel: $(uname -r)"
        echo "glibc: $(ldd --version 2>&1 | awk 'NR == 1 { print $NF }')"
        local a
        for a in tcmalloc jemalloc mimalloc; do
            in_list "$a" "${allocators[@]}" || continue
            echo "$a: $(dpkg-query -W -f '${Package} ${Version}' "${LIB_PACKAGE[$a]}" 2>/dev/null || echo "${PRELOAD[$a]}")"
        done
        in_list mimalloc3 "${allocators[@]}" &&
            echo "mimalloc3: $(peer_crate mimalloc3 libmimalloc-sys) (mimalloc $(mimalloc3_version)), ${PRELOAD[mimalloc3]}"
        in_list snmalloc "${allocators[@]}" &&
            echo "snmalloc: $(peer_crate snmalloc snmalloc-sys), ${PRELOAD[snmalloc]}"
        if [[ $lib_given -eq 1 ]]; then
            echo "goalloc: ${PRELOAD[goalloc]:-not run} (given with --lib: the commit above is the source tree's, maybe not this library's)"
        else
            echo "goalloc: ${PRELOAD[goalloc]:-not run} (built from the tree above)"
        fi
        [[ -n $baseline ]] && echo "before: ${PRELOAD[before]} (--baseline)"
        echo "rounds: $rounds"
        echo "scale: $scale"
        echo "threads: $threads"
        echo "oversubscribe: $oversubscribe${pin[*]:+ (${pin[*]})}"
        echo "quick: $quick"
    } >"$1"
}

# ---- the callgrind mode -------------------------------------------------------------------

if [[ $callgrind -eq 1 ]]; then
    patterns=(batch fixed cycle ring)
    declare -A cg_sizes=(
        [batch]="16 64 256 1024 4096 32768 65536 262144"
        [fixed]="16 64 1024 32768"
        [cycle]="16 64 1024 32768"
        [ring]="16 64 1024 32768"
    )
    n1=50000
    n2=250000
    if [[ $quick -eq 1 ]]; then
        cg_sizes=([batch]="16 1024 65536" [fixed]="16 1024" [cycle]="16 1024" [ring]="16 1024")
        n1=10000
        n2=30000
    fi
    count_instr() { # PRELOAD SIZE PAIRS [ARGS]: instructions of one run
        local pre=$1 size=$2 pairs=$3
        shift 3
        local cg=$tmp/cg.out
        rm -f "$cg"
        if ! LD_PRELOAD="$pre" timeout "$run_timeout" valgrind --tool=callgrind \
            --callgrind-out-file="$cg" "$tmp/bin/pairs" -t 1 -S "$size" -n "$pairs" "$@" \
            >"$tmp/cg.stdout" 2>"$tmp/cg.stderr"; then
            log "valgrind failed (pairs $* -S $size -n $pairs, preload '${pre:-none}'):"
            tail -5 "$tmp/cg.stderr" >&2
            return 1
        fi
        awk '/^totals:/ { print $2; exit }' "$cg"
    }
    # the loop's own cost per pattern: -N runs the same loop on a pool of slots, without
    # malloc and free (the count does not depend on the size; 64 is measured)
    declare -A harness
    for p in "${patterns[@]}"; do
        h1=$(count_instr "" 64 "$n1" -P "$p" -N)
        h2=$(count_instr "" 64 "$n2" -P "$p" -N)
        harness[$p]=$(awk -v a="$h1" -v b="$h2" -v n1="$n1" -v n2="$n2" 'BEGIN { printf "%.1f", (b - a) / (n2 - n1) }')
        log "callgrind: loop cost of $p (pairs -N): ${harness[$p]} instructions per pair"
    done
    csv=$out/callgrind.csv
    echo "pattern,allocator,size,pairs1,instr1,pairs2,instr2,instr_per_pair_raw,harness,instr_per_pair" >"$csv"
    failed=0
    for p in "${patterns[@]}"; do
        for a in "${allocators[@]}"; do
            pre=${PRELOAD[$a]}
            read -r -a szs <<<"${cg_sizes[$p]}"
            for s in "${szs[@]}"; do
                if i1=$(count_instr "$pre" "$s" "$n1" -P "$p") && i2=$(count_instr "$pre" "$s" "$n2" -P "$p"); then
                    awk -v p="$p" -v a="$a" -v s="$s" -v n1="$n1" -v n2="$n2" -v i1="$i1" -v i2="$i2" -v h="${harness[$p]}" \
                        'BEGIN { raw = (i2 - i1) / (n2 - n1); printf "%s,%s,%d,%d,%.0f,%d,%.0f,%.1f,%.1f,%.1f\n", p, a, s, n1, i1, n2, i2, raw, h, raw - h }' >>"$csv"
                    log "callgrind $p $a size $s: $(tail -1 "$csv" | cut -d, -f10) instructions per malloc+free"
                else
                    failed=1
                fi
            done
        done
    done
    write_meta "$out/callgrind-meta.txt"
    "$python" "$root/benches/report.py" callgrind --csv "$csv" --meta "$out/callgrind-meta.txt" --out "$out"
    log "wrote $out/callgrind.csv, $out/callgrind.md ($(($(date +%s) - t_start)) s)"
    exit "$failed"
fi

# ---- real programs' inputs ------------------------------------------------------------------

mul() { awk -v a="$1" -v b="$2" -v m="$3" 'BEGIN { v = int(a * b); if (v < m) v = m; print v }'; }
sqlite_rows=$(mul 300000 "$scale" 2000)
gcc_functions=$(mul 300 "$scale" 20)
redis_requests=$(mul 200000 "$scale" 5000)
if in_list gcc "${workloads[@]}"; then
    "$python" "$root/benches/real/gen_c.py" "$gcc_functions" >"$tmp/big.c"
fi
redis_check_keys=500
if in_list redis "${workloads[@]}"; then
    # keys that redis-benchmark does not touch, checked after it ran
    for ((i = 0; i < redis_check_keys; i++)); do
        v=$(printf 'v%d-%0*d' "$i" $((i % 300 + 1)) 0)
        echo "SET check:$i $v" >>"$tmp/redis-set.txt"
        echo "$v" >>"$tmp/redis-expect.txt"
    done
fi

# Programs that link another malloc run with the glibc shim under "glibc".
links_other_malloc() {
    local exe
    exe=$(command -v "$1") || return 1
    ldd "$exe" 2>/dev/null | grep -qE 'lib(jemalloc|tcmalloc|mimalloc)'
}
redis_glibc=""
if in_list redis "${workloads[@]}" && links_other_malloc redis-server; then
    redis_glibc=$tmp/bin/libglibc_shim.so
fi

free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ---- one run ---------------------------------------------------------------------------------

csv=$out/results.csv
echo "round,workload,allocator,wall_s,user_s,sys_s,cpu_s,maxrss_kib,status,output_ok" >"$csv"
rm -rf "$out/rss" "$out/failures" "$out/locks"
mkdir -p "$out/rss" "$out/locks"
failures=()

# run_redis BASE PRELOAD: writes BASE.stat (client wall, server CPU and RSS) and BASE.out
run_redis() {
    local base=$1 pre=$2 a=$3 port i up=0
    port=$(free_port)
    local env_args=()
    [[ -n $pre ]] && env_args=(-e "LD_PRELOAD=$pre")
    [[ $a == goalloc-prof ]] && env_args+=(-e "GOALLOC_PROFILE=$base.%p.heap")
    [[ $a == goalloc ]] && env_args+=(-e GOALLOC_STATS=json -e "GOALLOC_STATS_FILE=$base.%p.stats")
    "$runstat" -o "$base.server.stat" -T "$run_timeout" "${env_args[@]}" -- \
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --dir "$tmp" --logfile "$base.server.log" >"$base.server.out" 2>&1 &
    redis_pid=$!
    for ((i = 0; i < 100; i++)); do
        if [[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]]; then
            up=1
            break
        fi
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ $up -eq 0 ]]; then
        echo "redis-server did not come up on port $port" >"$base.err"
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
        redis_pid=""
        echo "0 0 0 0 failed" >"$base.stat"
        return
    fi
    redis-cli -p "$port" <"$tmp/redis-set.txt" >/dev/null
    "$runstat" -o "$base.client.stat" -T "$run_timeout" -- redis-benchmark -h 127.0.0.1 \
        -p "$port" -n "$redis_requests" -r 100000 -d 128 -c 50 -P 16 -q \
        -t set,get,lpush,lpop,sadd,hset,zadd >"$base.bench" 2>"$base.err" || true
    local keys=()
    for ((i = 0; i < redis_check_keys; i++)); do keys+=("check:$i"); done
    if redis-cli -p "$port" --raw MGET "${keys[@]}" >"$base.check" 2>>"$base.err" &&
        cmp -s "$base.check" "$tmp/redis-expect.txt"; then
        echo "redis ok: $redis_check_keys keys intact after redis-benchmark -n $redis_requests" >"$base.out"
    else
        echo "redis: check keys differ after redis-benchmark" >"$base.out"
    fi
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=""
    # wall time: the client's; CPU and peak RSS: the server's; status: the worse
    local cwall=0 cst=failed suser=0 ssys=0 srss=0 sst=failed
    [[ -s $base.client.stat ]] && read -r cwall _ _ _ cst <"$base.client.stat"
    [[ -s $base.server.stat ]] && read -r _ suser ssys srss sst <"$base.server.stat"
    local st=$cst
    [[ $st == 0 ]] && st=$sst
    echo "$cwall $suser $ssys $srss $st" >"$base.stat"
}

# run_one WORKLOAD ALLOCATOR ROUND: runs, appends to the CSV, prints a progress line
run_one() {
    # NAME is a workload, or W@N: workload W with N threads (--oversubscribe)
    local name=$1 a=$2 r=$3
    local w=${name%@*} threads=$threads
    [[ $name == *@* ]] && threads=${name#*@}
    local base=$tmp/runs/$name.$a.r$r
    local pre=${PRELOAD[$a]}
    local env_args=() cmd=() stdin=/dev/null
    [[ $w == redis && $a == glibc ]] && pre=$redis_glibc
    [[ -n $pre ]] && env_args+=(-e "LD_PRELOAD=$pre")
    [[ $a == goalloc-prof ]] && env_args+=(-e "GOALLOC_PROFILE=$base.%p.heap")
    [[ $a == goalloc ]] && env_args+=(-e GOALLOC_STATS=json -e "GOALLOC_STATS_FILE=$base.%p.stats")
    case $w in
    pairs) cmd=("$tmp/bin/pairs" -t 1 -s "$scale") ;;
    peak) cmd=("$tmp/bin/peak" -t "$threads" -s "$scale" -d "$peak_seconds" -o "$base.rss") ;;
    table | prodcons | falseshare | random | large | threads | larson | xmalloc | rptest | cachethrash)
        cmd=("$tmp/bin/$w" -t "$threads" -s "$scale") ;;
    larsonsized) cmd=("$tmp/bin/larson" -t "$threads" -s "$scale" -P sized) ;;
    cachethrash1) cmd=("$tmp/bin/cachethrash" -t 1 -s "$scale") ;;
    cachescratch) cmd=("$tmp/bin/cachethrash" -t "$threads" -s "$scale" -P scratch) ;;
    python)
        env_args+=(-e PYTHONMALLOC=malloc -e PYTHONDONTWRITEBYTECODE=1)
        cmd=("$python" "$root/benches/real/python_workload.py" "$scale") ;;
    sqlite)
        cmd=(sqlite3 -bail -cmd ".parameter set @n $sqlite_rows" :memory:)
        stdin=$root/benches/real/sqlite.sql ;;
    gcc) cmd=(gcc -O2 -c "$tmp/big.c" -o "$base.o") ;;
    redis) ;;
    esac
    if [[ $w == redis ]]; then
        run_redis "$base" "$pre" "$a"
    else
        "$runstat" -o "$base.stat" -T "$run_timeout" "${env_args[@]}" -- "${pin[@]}" "${cmd[@]}" \
            <"$stdin" >"$base.out" 2>"$base.err" || true
    fi
    if compgen -G "$base.*.stats" >/dev/null; then
        cat "$base".*.stats >"$out/locks/$name-$a-r$r.json"
        rm -f "$base".*.stats
    fi
    if [[ $w == gcc && -f $base.o ]]; then
        echo "gcc: object $(sha256sum <"$base.o" | cut -c1-64)" >>"$base.out"
        rm -f "$base.o"
    fi
    [[ $w == peak && -f $base.rss ]] && cp "$base.rss" "$out/rss/peak-$a-r$r.tsv"

    local wall=0 user=0 sys=0 rss=0 status=failed ok=1
    [[ -s $base.stat ]] && read -r wall user sys rss status <"$base.stat"
    if [[ $status == 0 ]]; then
        if [[ -f $tmp/ref/$name.out ]]; then
            cmp -s "$base.out" "$tmp/ref/$name.out" || ok=0
        else
            cp "$base.out" "$tmp/ref/$name.out"
            echo "$a" >"$tmp/ref/$name.who"
        fi
    fi
    local cpu
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.4f", u + s }')
    echo "$r,$name,$a,$wall,$user,$sys,$cpu,$rss,$status,$ok" >>"$csv"
    local verdict=ok
    if [[ $status != 0 || $ok -eq 0 ]]; then
        if [[ $status != 0 ]]; then verdict="FAILED (status $status)"; else verdict="FAILED (output differs from $(cat "$tmp/ref/$name.who")'s)"; fi
        failures+=("$name/$a/round $r: $verdict")
        mkdir -p "$out/failures"
        local f
        for f in "$base".*; do
            [[ -f $f ]] && cp "$f" "$out/failures/"
        done
        cp "$tmp/ref/$name.out" "$out/failures/$name.expected.out" 2>/dev/null || true
    fi
    printf '%s: [%d/%d] %-10s %-9s %7.2f s %7.2f s cpu %8.1f MiB  %s\n' "$prog" "$r" "$rounds" \
        "$name" "$a" "$wall" "$cpu" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')" "$verdict" >&2
}

# ---- the rounds ------------------------------------------------------------------------------

write_meta "$out/meta.txt"
log "$rounds round(s) of ${#workloads[@]} workloads x ${#allocators[@]} allocators, scale $scale, $threads threads${pin[*]:+ (${pin[*]})}; report in $out"
n=${#allocators[@]}
for ((r = 1; r <= rounds; r++)); do
    # rotate the order of the allocators from round to round
    order=()
    for ((k = 0; k < n; k++)); do order+=("${allocators[$(((k + r - 1) % n))]}"); done
    for w in "${workloads[@]}"; do
        for a in "${order[@]}"; do
            run_one "$w" "$a" "$r"
        done
    done
done

"$python" "$root/benches/report.py" summary --csv "$csv" --meta "$out/meta.txt" \
    --rss-dir "$out/rss" --locks-dir "$out/locks" --out "$out"
log "done in $(($(date +%s) - t_start)) s; report in $out"
if [[ ${#failures[@]} -gt 0 ]]; then
    log "${#failures[@]} run(s) failed (outputs in $out/failures):"
    printf '  %s\n' "${failures[@]}" >&2
    exit 1
fi
exit 0
