#!/usr/bin/env bash
# Benchmark goalloc's GoAlloc against Rust's allocator crates, each as #[global_allocator].
#
#   scripts/bench-rust.sh [--rounds N] [--quick] [--out DIR] [--scale X] [--only LIST]
#                         [--allocators LIST] [--callgrind] [--keep]
#
# Builds benches/rust (its own workspace: cargo build --release --manifest-path
# benches/rust/Cargo.toml, into benches/rust/target), which has one binary per allocator:
#   goalloc   goalloc::GoAlloc (goalloc with default-features = false: Rust's allocator only)
#   system    std::alloc::System (glibc's malloc)
#   mimalloc  mimalloc::MiMalloc (the mimalloc crate, mimalloc 3)
#   snmalloc  snmalloc_rs::SnMalloc (the snmalloc-rs crate, built with cc)
#   jemalloc  tikv_jemallocator::Jemalloc (the tikv-jemallocator crate, jemalloc 5.3)
# Versions are pinned in benches/rust/Cargo.toml and Cargo.lock.
#
# Workloads (see benches/rust/src/lib.rs):
#   json      serde_json: parse a generated document of 20000 records and rebuild it,
#             4 rounds, single-threaded
#   threads   4 waves of 16 threads building and dropping Vec/String/BTreeMap/HashMap and
#             passing Boxes to the next thread through channels (freed there)
# Rounds run every workload under every allocator, the allocators' order rotating from
# round to round, each run timed by benches/workloads/runstat.c (wall, CPU, peak RSS). A
# run fails when it exits non-zero or prints another result line than the first run.
# The report gives per workload the median wall time, its ratio to the best allocator's
# median, the spread of the rounds (min..max as ratios to the median), the median CPU time
# (user+sys; on a busy machine wall time also counts the waits for a core) and the median
# peak RSS, each with its ratio to the best; then the geometric means over the workloads.
#
# Options:
#   --rounds N        rounds (default 5, at least 3)
#   --quick           one round at scale 0.1: checks that everything runs and agrees
#   --out DIR         report folder (default report-rust/): results.csv, summary.md
#   --scale X         multiply the work of every workload by X
#   --only LIST       workloads, comma separated (default: json,threads)
#   --allocators LIST allocators, comma separated (default: all five)
#   --callgrind       instead of timing: instructions per Box alloc+drop pair under
#                     valgrind --tool=callgrind, for each allocator and size (16, 64, 256,
#                     1024), as the difference of two runs (200000 and 1000000 pairs)
#                     divided by the difference in pairs, less the loop's own cost (the
#                     same loop on the stack); also goalloc's sized free (GoAlloc.alloc +
#                     dealloc, the class from the layout) against goalloc::malloc + free
#                     (the class from the page map). Writes callgrind.csv, callgrind.md
#   --keep            keep the temporary directory (outputs of every run)
#
# Exits 0 when every run passed, 1 when one failed, 2 on usage errors or when something
# it needs is missing.
set -euo pipefail
export LC_ALL=C
unset LD_PRELOAD

prog=${0##*/}
cmdline="$prog $*"
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

ALL_ALLOCATORS=(goalloc system mimalloc snmalloc jemalloc)
ALL_WORKLOADS=(json threads)

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
out=$root/report-rust
scale_opt=""
only=""
allocs_opt=""
callgrind=0
keep=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --rounds) rounds=${2:?--rounds needs a number}; shift ;;
    --quick) quick=1 ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    --scale) scale_opt=${2:?--scale needs a number}; shift ;;
    --only) only=${2:?--only needs a list}; shift ;;
    --allocators) allocs_opt=${2:?--allocators needs a list}; shift ;;
    --callgrind) callgrind=1 ;;
    --keep) keep=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

[[ $rounds =~ ^[0-9]+$ ]] || die "--rounds: not a number: $rounds"
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

in_list() {
    local x=$1
    shift
    local y
    for y in "$@"; do [[ $x == "$y" ]] && return 0; done
    return 1
}
allocators=("${ALL_ALLOCATORS[@]}")
if [[ -n $allocs_opt ]]; then
    IFS=, read -r -a allocators <<<"$allocs_opt"
    for a in "${allocators[@]}"; do
        in_list "$a" "${ALL_ALLOCATORS[@]}" || die "unknown allocator: $a (${ALL_ALLOCATORS[*]})"
    done
fi
workloads=("${ALL_WORKLOADS[@]}")
if [[ -n $only ]]; then
    IFS=, read -r -a workloads <<<"$only"
    for w in "${workloads[@]}"; do
        in_list "$w" "${ALL_WORKLOADS[@]}" || die "unknown workload: $w (${ALL_WORKLOADS[*]})"
    done
fi

need=(cargo cc python3)
[[ $callgrind -eq 1 ]] && need+=(valgrind)
for t in "${need[@]}"; do
    command -v "$t" >/dev/null || die "$t not found"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-rust.XXXXXX")
cleanup() {
    if [[ $keep -eq 1 ]]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

log "building benches/rust (cargo build --release)"
cargo build --release --quiet --manifest-path "$root/benches/rust/Cargo.toml" ||
    die "cannot build benches/rust"
bin=$root/benches/rust/target/release
cc -O2 -Wall -o "$tmp/runstat" "$root/benches/workloads/runstat.c" || die "cannot build runstat"

mkdir -p "$out"
out=$(cd -- "$out" && pwd -P)

meta() {
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "rustc: $(rustc --version)"
    echo "crates: $(awk '/^name = "(mimalloc|libmimalloc-sys|snmalloc-rs|tikv-jemallocator|serde_json)"$/ { n = $3; getline; printf "%s %s  ", n, $3 }' "$root/benches/rust/Cargo.lock" | tr -d '"')"
    echo "command: $cmdline"
}

# ---- the callgrind mode -------------------------------------------------------------------

if [[ $callgrind -eq 1 ]]; then
    n1=200000
    n2=1000000
    sizes=(16 64 256 1024)
    if [[ $quick -eq 1 ]]; then
        n1=20000
        n2=100000
        sizes=(16 1024)
    fi
    count_instr() { # BINARY MODE N SIZE: instructions of one run
        local cg=$tmp/cg.out
        rm -f "$cg"
        if ! valgrind --tool=callgrind --callgrind-out-file="$cg" "$bin/rust-$1" "$2" "$3" "$4" \
            >"$tmp/cg.stdout" 2>"$tmp/cg.stderr"; then
            log "valgrind failed (rust-$1 $2 $3 $4):"
            tail -5 "$tmp/cg.stderr" >&2
            return 1
        fi
        awk '/^totals:/ { print $2; exit }' "$cg"
    }
    # snmalloc does not start under valgrind ("Failed to initialise snmalloc": its page
    # map reservation fails there), so a failed run gives "n/a" rather than ending all
    per_pair() { # BINARY MODE SIZE: instructions per pair (the difference of two runs)
        local a b
        a=$(count_instr "$1" "$2" "$n1" "$3") && b=$(count_instr "$1" "$2" "$n2" "$3") ||
            { echo n/a; return 0; }
        awk -v a="$a" -v b="$b" -v n1="$n1" -v n2="$n2" 'BEGIN { printf "%.1f", (b - a) / (n2 - n1) }'
    }
    csv=$out/callgrind.csv
    echo "binary,mode,size,loop_per_pair,instr_per_pair" >"$csv"
    for s in "${sizes[@]}"; do
        # the loop's own cost: the same loop with the array on the stack (goalloc's binary;
        # it does not allocate)
        lp=$(per_pair goalloc loop "$s")
        for a in "${allocators[@]}"; do
            x=$(per_pair "$a" boxes "$s")
            [[ $x == n/a ]] || x=$(awk -v x="$x" -v l="$lp" 'BEGIN { printf "%.1f", x - l }')
            echo "$a,boxes,$s,$lp,$x" >>"$csv"
            log "callgrind: $a Box alloc+drop $s B: $(tail -1 "$csv" | cut -d, -f5) instructions per pair"
        done
        if in_list goalloc "${allocators[@]}"; then
            for m in goalloc-sized goalloc-free; do
                x=$(per_pair goalloc "$m" "$s")
                echo "goalloc,$m,$s,0,$x" >>"$csv"
                log "callgrind: $m $s B: $x instructions per pair (loop included)"
            done
        fi
    done
    meta >"$out/callgrind-meta.txt"
    python3 - "$csv" "$out/callgrind-meta.txt" >"$out/callgrind.md" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("# Instructions per Box alloc+drop pair (callgrind)\n")
print("".join("    " + l for l in open(sys.argv[2])))
sizes = sorted({int(r["size"]) for r in rows})
boxes = [r for r in rows if r["mode"] == "boxes"]
allocs = list(dict.fromkeys(r["binary"] for r in boxes))
print("Box<[u8; SIZE]> alloc+drop, the loop's own cost subtracted:\n")
print("| allocator | " + " | ".join(f"{s} B" for s in sizes) + " |")
print("|---|" + "---:|" * len(sizes))
for a in allocs:
    v = {int(r["size"]): r["instr_per_pair"] for r in boxes if r["binary"] == a}
    print(f"| {a} | " + " | ".join(v.get(s, "") for s in sizes) + " |")
loops = {int(r["size"]): r["loop_per_pair"] for r in boxes}
print("| (loop) | " + " | ".join(loops.get(s, "") for s in sizes) + " |")
go = [r for r in rows if r["mode"].startswith("goalloc-")]
if go:
    print("\ngoalloc called directly, loop included (the same loop in both rows):\n")
    print("| call | " + " | ".join(f"{s} B" for s in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for m, what in (("goalloc-sized", "GoAlloc.alloc + GoAlloc.dealloc (class from the layout)"),
                    ("goalloc-free", "goalloc::malloc + goalloc::free (class from the page map)")):
        v = {int(r["size"]): r["instr_per_pair"] for r in go if r["mode"] == m}
        print(f"| {what} | " + " | ".join(v.get(s, "") for s in sizes) + " |")
EOF
    log "wrote $out/callgrind.csv, $out/callgrind.md"
    cat "$out/callgrind.md"
    exit 0
fi

# ---- the timed runs -----------------------------------------------------------------------

csv=$out/results.csv
echo "round,workload,allocator,wall_s,user_s,sys_s,maxrss_kib,status" >"$csv"
failed=0
n=${#allocators[@]}
for ((r = 1; r <= rounds; r++)); do
    for w in "${workloads[@]}"; do
        for ((i = 0; i < n; i++)); do
            a=${allocators[$(((i + r - 1) % n))]}
            base=$tmp/$w.$a.$r
            status=0
            "$tmp/runstat" -o "$base.stat" -T 600 -- "$bin/rust-$a" "$w" "$scale" \
                >"$base.out" 2>"$base.err" || status=$?
            read -r wall user sys rss st <"$base.stat"
            if [[ $status -ne 0 ]]; then
                log "FAIL: $w under $a (round $r): status $st"
                tail -3 "$base.err" >&2
                failed=1
            elif [[ ! -f $tmp/$w.expected ]]; then
                cp "$base.out" "$tmp/$w.expected"
            elif ! cmp -s "$base.out" "$tmp/$w.expected"; then
                log "FAIL: $w under $a (round $r) printed $(cat "$base.out") instead of $(cat "$tmp/$w.expected")"
                st=mismatch
                failed=1
            fi
            echo "$r,$w,$a,$wall,$user,$sys,$rss,$st" >>"$csv"
            log "round $r/$rounds $w $a: ${wall} s, $((rss / 1024)) MiB"
        done
    done
done
meta >"$out/meta.txt"
for w in "${workloads[@]}"; do
    [[ -f $tmp/$w.expected ]] && echo "$w: $(cat "$tmp/$w.expected")" >>"$out/meta.txt"
done

python3 - "$csv" "$out/meta.txt" >"$out/summary.md" <<'EOF'
import csv, math, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["status"] == "0"]
works = list(dict.fromkeys(r["workload"] for r in rows))
allocs = list(dict.fromkeys(r["allocator"] for r in rows))
for r in rows:
    r["cpu_s"] = float(r["user_s"]) + float(r["sys_s"])
def med(w, a, key):
    v = [float(r[key]) for r in rows if r["workload"] == w and r["allocator"] == a]
    return (statistics.median(v), min(v), max(v), len(v)) if v else None
def gmean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs))
print("# Rust allocator crates as #[global_allocator]\n")
print("".join("    " + l for l in open(sys.argv[2])))
gm_t, gm_c, gm_r = {}, {}, {}
for w in works:
    t = {a: med(w, a, "wall_s") for a in allocs if med(w, a, "wall_s")}
    c = {a: med(w, a, "cpu_s") for a in t}
    m = {a: med(w, a, "maxrss_kib") for a in t}
    bt = min(v[0] for v in t.values())
    bc = min(v[0] for v in c.values())
    bm = min(v[0] for v in m.values())
    print(f"## {w}\n")
    print("| allocator | wall s (median) | ratio to best | spread of rounds | CPU s (user+sys) | ratio to best | peak RSS MiB | ratio to lowest |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for a in sorted(t, key=lambda a: t[a][0]):
        md, lo, hi, k = t[a]
        print(f"| {a} | {md:.3f} | {md / bt:.3f} | {lo / md:.2f}..{hi / md:.2f} | "
              f"{c[a][0]:.3f} | {c[a][0] / bc:.3f} | {m[a][0] / 1024:.1f} | {m[a][0] / bm:.3f} |")
        gm_t.setdefault(a, []).append(md)
        gm_c.setdefault(a, []).append(c[a][0])
        gm_r.setdefault(a, []).append(m[a][0])
    print()
full = [a for a in allocs if len(gm_t.get(a, [])) == len(works)]
g = {a: gmean(gm_t[a]) for a in full}
gc = {a: gmean(gm_c[a]) for a in full}
gr = {a: gmean(gm_r[a]) for a in full}
print("## Geometric means over the workloads\n")
print("| allocator | wall s | ratio to best | CPU s | ratio to best | peak RSS MiB | ratio to lowest |")
print("|---|---:|---:|---:|---:|---:|---:|")
for a in sorted(full, key=lambda a: g[a]):
    print(f"| {a} | {g[a]:.3f} | {g[a] / min(g.values()):.3f} | {gc[a]:.3f} | "
          f"{gc[a] / min(gc.values()):.3f} | {gr[a] / 1024:.1f} | {gr[a] / min(gr.values()):.3f} |")
EOF
log "wrote $out/results.csv, $out/summary.md"
cat "$out/summary.md"
exit "$failed"
