#!/usr/bin/env bash
# Smoke test of a malloc replacement on real programs.
#
#   scripts/smoke-preload.sh [--lib PATH] [--only NAME[,NAME...]] [--install]
#                            [--self-check] [--keep]
#
# Runs each workload (python3, git, sqlite3, gcc, perl, sort, xz) twice in the
# same clean environment and the same working directory: once with plain glibc
# malloc, once with LD_PRELOAD=PATH. A workload passes when both runs exit 0,
# print the same stdout (digests of everything they computed), and the preload
# run prints nothing on stderr that the glibc run did not. A preliminary check
# proves that the library is really loaded and that malloc resolves into it.
#
#   --lib PATH     allocator library to preload. Default: target/release/
#                  libgoalloc.so, built first if missing or older than src/,
#                  Cargo.toml or build.rs (like scripts/goalloc; honours
#                  CARGO_TARGET_DIR).
#   --only LIST    run only these workloads (comma separated).
#   --install      apt-get install the Debian packages of missing programs.
#   --self-check   run the glibc side twice instead of glibc vs library, to
#                  prove the comparisons are deterministic (no preload).
#   --keep         keep the temporary directory (outputs of both sides).
#
# Workloads (each a few seconds per side on 2 cores; SMOKE_TIMEOUT, default
# 120 s, bounds one run so a deadlock shows up as a FAIL):
#   python   PYTHONMALLOC=malloc so every object goes through malloc: 4 threads
#            churning dicts/lists/strings, producers/consumer across threads,
#            a 400k-entry dict, a 128 MiB bytearray grown/sliced, a 96 MiB
#            calloc'd bytes object read back as zeros, a 20k-record json trip
#   git      3000 files in 60 dirs, 2 commits with fixed dates, gc, fsck,
#            log --stat, archive, grep; HEAD hash must equal glibc's
#   sqlite3  400k inserts in one transaction (recursive CTE), 2 indexes,
#            aggregates, a join, group_concat, delete/update, integrity_check
#   gcc      1600 generated functions in 2 units, -O2 in parallel, link, run;
#            sha256 of the objects and binary
#   perl     300k-key hash, regexes over a 5 MiB text, 150k strings sorted
#   sort     40 MiB: -S 256M in memory, -S 4M with temp files, keyed, -u;
#            all --parallel=2
#   xz       32 MiB: -T2 -2 in 4 MiB blocks, -T2 decompress, -t
#
# Prints `PASS name (glibc Xs, lib Ys)` or `FAIL name: reason` per workload,
# then `N passed, M failed`; exits 1 if anything failed, 2 on usage errors or
# missing programs.
set -euo pipefail
export LC_ALL=C

prog=${0##*/}
root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)

WORKLOADS=(python git sqlite3 gcc perl sort xz)
RUN_TIMEOUT=${SMOKE_TIMEOUT:-120}   # seconds per run of one workload

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

die() { echo "$prog: $*" >&2; exit 2; }

lib=""
install=0
self_check=0
keep=0
only=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --lib) [[ $# -ge 2 ]] || die "--lib needs a path"; lib=$2; shift 2 ;;
        --lib=*) lib=${1#--lib=}; shift ;;
        --only) [[ $# -ge 2 ]] || die "--only needs a list"; only=$2; shift 2 ;;
        --only=*) only=${1#--only=}; shift ;;
        --install) install=1; shift ;;
        --self-check) self_check=1; shift ;;
        --keep) keep=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

selected=("${WORKLOADS[@]}")
if [[ -n $only ]]; then
    IFS=, read -r -a selected <<<"$only"
    for w in "${selected[@]}"; do
        [[ " ${WORKLOADS[*]} " == *" $w "* ]] || die "unknown workload '$w' (have: ${WORKLOADS[*]})"
    done
fi

# ---------------------------------------------------------------- programs --

# program -> Debian package that provides it
declare -A PKG=(
    [python3]=python3 [git]=git [sqlite3]=sqlite3 [gcc]=gcc [perl]=perl
    [sort]=coreutils [sha256sum]=coreutils [timeout]=coreutils
    [xz]=xz-utils [diff]=diffutils [cmp]=diffutils [awk]=mawk [grep]=grep
)

# Prints "program package" for each missing requirement.
missing_requirements() {
    local c
    for c in "${!PKG[@]}"; do
        command -v "$c" >/dev/null 2>&1 || echo "$c ${PKG[$c]}"
    done
    # Beyond the binaries: perl's Digest::SHA (package perl, not perl-base)
    # and a C toolchain that has libc headers (libc6-dev).
    if command -v perl >/dev/null 2>&1 && ! perl -MDigest::SHA -e 1 >/dev/null 2>&1; then
        echo "perl(Digest::SHA) perl"
    fi
    if command -v gcc >/dev/null 2>&1 &&
        ! printf '#include <stdio.h>\nint main(void){puts("");return 0;}\n' |
            gcc -x c -o /dev/null - >/dev/null 2>&1; then
        echo "libc-headers libc6-dev"
    fi
    return 0
}

missing=$(missing_requirements | sort)
if [[ -n $missing && $install -eq 1 ]]; then
    mapfile -t pkgs < <(awk '{print $2}' <<<"$missing" | sort -u)
    echo "$prog: installing ${pkgs[*]}" >&2
    sudo=()
    [[ $EUID -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-upgrade "${pkgs[@]}" >&2
    hash -r
    missing=$(missing_requirements | sort)
fi
if [[ -n $missing ]]; then
    echo "$prog: missing required program(s):" >&2
    while read -r c p; do echo "  $c (Debian package $p)" >&2; done <<<"$missing"
    echo "$prog: install them, or rerun with --install" >&2
    exit 2
fi

# ----------------------------------------------------------------- library --

if [[ $self_check -eq 1 ]]; then
    lib=""
elif [[ -n $lib ]]; then
    [[ -f $lib ]] || die "no such library: $lib"
    lib="$(cd -- "$(dirname -- "$lib")" && pwd -P)/$(basename -- "$lib")"
else
    # Same rule as scripts/goalloc.
    target=${CARGO_TARGET_DIR:-$root/target}
    [[ $target == /* ]] || target=$PWD/$target   # cargo takes it relative to the cwd
    lib=$target/release/libgoalloc.so
    inputs=()
    for p in src Cargo.toml build.rs; do
        [[ -e $root/$p ]] && inputs+=("$root/$p")
    done
    if [[ ! -f $lib ]] ||
        { [[ ${#inputs[@]} -gt 0 ]] && [[ -n $(find "${inputs[@]}" -newer "$lib" -print -quit) ]]; }; then
        echo "$prog: building $lib" >&2
        (cd -- "$root" && CARGO_TARGET_DIR=$target cargo build --release --lib --quiet) >&2 || die "cargo build failed"
        [[ -f $lib ]] || die "cargo build succeeded but $lib does not exist"
        touch -c -- "$lib"
    fi
fi

# ------------------------------------------------------------------- setup --

tmp=$(mktemp -d "${TMPDIR:-/tmp}/smoke-preload.XXXXXX")
cleanup() {
    if [[ $keep -eq 1 ]]; then
        echo "$prog: kept $tmp" >&2
    else
        rm -rf -- "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$tmp/in" "$tmp/home" "$tmp/out" "$tmp/wl"

# The real interpreter, not a version manager's shim script.
python=$(python3 -c 'import sys; print(sys.executable)')
[[ -x $python ]] || die "cannot locate the python3 executable"

# Same environment for both sides; the library side adds LD_PRELOAD only.
# TMPDIR lies inside the working directory, which is wiped between runs.
RUN=$tmp/run
BASE_ENV=(
    env -i
    PATH="$PATH" HOME="$tmp/home" LC_ALL=C TZ=UTC TMPDIR="$RUN/.tmp"
    SMOKE_IN="$tmp/in" SMOKE_PYTHON="$python"
    PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
    PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0
)
# goalloc's own options pass through to both sides (e.g. GOALLOC_CHECK=1 runs every
# program in checked mode); glibc ignores them.
while IFS= read -r name; do
    BASE_ENV+=("$name=${!name}")
done < <(compgen -e | grep '^GOALLOC_' || true)

# ------------------------------------------------------- workload programs --
# Written to $tmp/in once, read by both sides.

write_inputs() {
    cat >"$tmp/in/workload.py" <<'EOF'
import hashlib, json, queue, threading

out = []
def emit(name, data):
    h = hashlib.sha256(data if isinstance(data, bytes) else repr(data).encode()).hexdigest()
    out.append(h)
    print(name, h)

# 1. threads: each builds and tears down dicts/lists/strings; plus producers
#    and a consumer so that objects die on a thread other than their maker.
def worker(tid, res):
    acc = hashlib.sha256()
    for it in range(60):
        d = {f"k{tid}-{it}-{i}": [str(i) * (i % 13), i * tid, (i, str(it))] for i in range(1500)}
        s = "|".join(k for k in d if len(k) % 3 == tid % 3)
        lst = sorted(d.items(), key=lambda kv: kv[0][::-1])[:50]
        acc.update(s.encode())
        acc.update(repr(lst).encode())
        del d, lst, s
    res[tid] = acc.hexdigest()

res = {}
q = queue.Queue(maxsize=64)
cons_res = []
def producer(pid):
    for i in range(4000):
        q.put([f"p{pid}-{i}-" + "x" * (i % 200), bytes(i % 1024), {i: str(i)}])
    q.put(None)
def consumer(n_prod):
    done = total = 0
    while done < n_prod:
        item = q.get()
        if item is None:
            done += 1
            continue
        total = (total + len(item[0]) * 31 + len(item[1]) + sum(item[2])) % (1 << 61)
    cons_res.append(total)
threads = [threading.Thread(target=worker, args=(t, res)) for t in range(4)]
threads += [threading.Thread(target=producer, args=(p,)) for p in range(3)]
threads += [threading.Thread(target=consumer, args=(3,))]
for t in threads:
    t.start()
for t in threads:
    t.join()
emit("threads", [res[t] for t in sorted(res)] + cons_res)

# 2. big dicts: grow, delete half, regrow with other key and value types.
d = {}
for i in range(400_000):
    d[i * 7 % 1_000_003] = "v%d" % (i * i)
for i in range(0, 1_000_003, 2):
    d.pop(i, None)
for i in range(100_000):
    d["s%d" % i] = list(range(i % 7))
emit("bigdict", (len(d), sum(len(v) for v in d.values()), list(d.items())[::997]))
del d

# 3. large bytearrays: 128 MiB grown by appends (realloc), sliced, shrunk from
#    the front, extended; then 96 MiB of zeroed bytes (calloc) right after
#    96 MiB of dirty memory was freed must read as all zero.
chunk = bytes(range(256)) * 4096  # 1 MiB
ba = bytearray()
for i in range(128):
    ba += chunk
    ba[i * 4096] = i % 256
h1 = hashlib.sha256(ba).hexdigest()
mid = ba[17 * 1048576 + 5: 100 * 1048576 + 9]
strided = bytes(ba[::4099])
del ba[: 64 * 1048576]
ba.extend(mid[::3])
h2 = hashlib.sha256(ba).hexdigest()
del ba, mid
dirty = bytearray(b"\xa5") * (96 << 20)
del dirty
z = bytes(96 << 20)
zero_ok = z.count(0) == len(z)
del z
emit("bytearray", (h1, h2, hashlib.sha256(strided).hexdigest(), zero_ok))

# 4. json round trip.
doc = [{"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % k) for k in range(1, 8)],
        "score": i / 7, "nested": {"a": [i, i * 2, {"b": str(i)[::-1]}], "ok": i % 2 == 0}}
       for i in range(20_000)]
s = json.dumps(doc, sort_keys=True)
back = json.loads(s)
emit("json", (len(s), back == doc, hashlib.sha256(s.encode()).hexdigest(),
              hashlib.sha256(json.dumps(back, indent=1).encode()).hexdigest()))

print("all", hashlib.sha256(" ".join(out).encode()).hexdigest())
EOF

    cat >"$tmp/in/workload.pl" <<'EOF'
use strict;
use warnings;
use Digest::SHA qw(sha256_hex);

my @out;
sub emit { my ($name, $data) = @_; my $h = sha256_hex($data); push @out, $h; print "$name $h\n"; }

# hash: build, append to values, delete a third, invert
my %h;
my $x = 42;
for my $i (1 .. 300_000) {
    $x = ($x * 1103515245 + 12345) % 2147483648;
    my $k = sprintf("key-%x-%d", $x % 65536, $i % 977);
    $h{$k} .= chr(97 + $i % 26);
}
delete $h{$_} for grep { /-[0-4]\d*$/ } keys %h;
my %inv;
push @{ $inv{ length $h{$_} } }, $_ for keys %h;
emit("hash", join(";", scalar(keys %h), map { "$_=" . scalar(@{ $inv{$_} }) } sort { $a <=> $b } keys %inv)
    . join(",", map { "$_:$h{$_}" } (sort keys %h)[0 .. 999]));

# regex over a multi-MiB text: captures, backreferences, s///g with case
# changes, split with lookarounds
my @words = map { join("", map { chr(97 + ($_ * 7 + $_ * $_) % 26) } 1 .. (3 + $_ % 9)) . $_ } 1 .. 2000;
my $text = join(" ", map { $words[($_ * 7919) % @words] } 1 .. 400_000);
my %freq;
$freq{$1}++ while $text =~ /\b([a-z]+(\d)\2)\b/g;
(my $t2 = $text) =~ s/([aeiou])([a-z])/\U$2\E$1/g;
my @parts = split /(?<=\d) (?=[a-m])/, $t2;
emit("regex", join(",", map { "$_=$freq{$_}" } sort keys %freq) . length($t2) . scalar(@parts) . sha256_hex($t2));

# strings: repetition, 4-arg-ish substr, sprintf, reverse, sort, pack
my @lines;
for my $i (1 .. 150_000) {
    my $s = sprintf("%06d|%s|%s", $i, "ab" x ($i % 40), scalar reverse($words[$i % @words]));
    substr($s, 3, 2) = uc substr($s, 8, 2) if $i % 3 == 0;
    push @lines, $s;
}
my @sorted = sort { length($a) <=> length($b) or $b cmp $a } @lines;
my $packed = pack("N*", map { length } @sorted);
emit("strings", join("\n", @sorted[0 .. 500], @sorted[-500 .. -1]) . unpack("%32N*", $packed));
undef @lines; undef @sorted; undef $text; undef $t2; undef %h;

print "all ", sha256_hex(join " ", @out), "\n";
EOF

    cat >"$tmp/in/workload.sql" <<'EOF'
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
PRAGMA cache_size=-131072;
PRAGMA temp_store=MEMORY;
CREATE TABLE cat(id INTEGER PRIMARY KEY, label TEXT, weight REAL);
CREATE TABLE t(id INTEGER PRIMARY KEY, cat INTEGER, name TEXT, val REAL, blob BLOB);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 999)
INSERT INTO cat SELECT x, printf('cat-%03d-%s', x, hex(x * 2654435761 % 4294967296)), (x % 17) / 4.0 FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 400000)
INSERT INTO t SELECT x, (x * 7919) % 1000,
  printf('name-%d-%s', x % 5003, substr(hex(x * x), 1, 1 + x % 12)),
  (x % 1000) * 0.25, zeroblob(x % 97)
FROM c;
COMMIT;
CREATE INDEX t_cat ON t(cat, val);
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(cat), total(val), sum(length(blob)), count(DISTINCT name) FROM t;
SELECT cat, count(*), sum(val), min(name), max(name) FROM t GROUP BY cat ORDER BY cat LIMIT 12;
SELECT c.label, count(*) AS n, round(sum(t.val * c.weight), 2)
  FROM t JOIN cat c ON c.id = t.cat WHERE t.val > 100 GROUP BY c.label ORDER BY n DESC, c.label LIMIT 10;
SELECT substr(name, 1, 9) AS p, count(*) AS n, max(id) FROM t GROUP BY p ORDER BY n DESC, p LIMIT 10;
SELECT length(group_concat(name, ',')) FROM (SELECT name FROM t ORDER BY name DESC, id LIMIT 100000);
SELECT cat, val, id FROM t WHERE cat = 421 ORDER BY val DESC, id LIMIT 5;
DELETE FROM t WHERE id % 3 = 0;
UPDATE t SET name = name || '-u' WHERE id % 5 = 1;
SELECT count(*), count(DISTINCT name), sum(id) FROM t;
PRAGMA integrity_check;
EOF

    # C generator: part < 0 writes main.c, else 'n' functions in partP.c.
    cat >"$tmp/in/gen_c.awk" <<'EOF'
BEGIN {
  print "#include <stdio.h>"
  print "#include <stdint.h>"
  print "typedef uint64_t u64;"
  if (part < 0) {
    print "u64 part0(u64), part1(u64);"
    print "int main(void) {"
    print "  u64 a = part0(1), b = part1(a), c = part0(b ^ 0x5bd1e995);"
    print "  printf(\"%llu %llu %llu\\n\", (unsigned long long)a, (unsigned long long)b, (unsigned long long)c);"
    print "  return 0;"
    print "}"
    exit
  }
  print "static u64 table[256];"
  for (i = 0; i < n; i++) {
    k = i % 5
    printf "__attribute__((noinline)) static u64 f%d(u64 x) {\n", i
    if (k == 0) {
      printf "  u64 a = x ^ %dULL;\n", i * 2654435 + part + 1
      printf "  for (int j = 0; j < %d; j++) a = a * 6364136223846793005ULL + %d + (a >> 29);\n", 3 + i % 11, i
      print  "  return a;"
    } else if (k == 1) {
      printf "  switch ((x + %d) %% 4) {\n", i
      for (c = 0; c < 4; c++) printf "  case %d: x = (x << %d) ^ (x >> %d) ^ %dULL; break;\n", c, 1 + (i + c) % 13, 1 + (i * c + part) % 17, i * 31 + c
      print  "  default: break; }"
      print  "  return x;"
    } else if (k == 2) {
      printf "  u64 s = 0; unsigned char buf[%d];\n", 16 + i % 48
      print  "  for (unsigned j = 0; j < sizeof buf; j++) buf[j] = (unsigned char)(x >> (j % 8 * 8)) + j;"
      print  "  for (unsigned j = 0; j < sizeof buf; j++) s = s * 131 + table[buf[j]];"
      print  "  return s ^ x;"
    } else if (k == 3) {
      printf "  double d = (double)(x %% 100000) / %d.0;\n", 3 + i % 29
      printf "  for (int j = 0; j < %d; j++) d = d * 0.5 + %d.25;\n", 2 + i % 9, i % 100
      print  "  return x + (u64)d;"
    } else {
      printf "  return f%d(x + 1) ^ f%d(x >> 3);\n", i - 1, i - 4
    }
    print "}"
  }
  print "typedef u64 (*fn)(u64);"
  printf "static const fn fns[%d] = {\n", n
  for (i = 0; i < n; i++) printf "  f%d,\n", i
  print "};"
  printf "u64 part%d(u64 acc) {\n", part
  printf "  for (int i = 0; i < 256; i++) table[i] = (u64)i * 0x9E3779B97F4A7C15ULL + %d;\n", part
  printf "  for (int r = 0; r < 20; r++) for (int i = 0; i < %d; i++) acc = acc * 31 + fns[i](acc + (u64)i);\n", n
  printf "  for (int i = 0; i < 4; i++) printf(\"part%d %%d %%llu\\n\", i, (unsigned long long)fns[i * 97](i));\n", part
  print "  return acc;"
  print "}"
}
EOF

    # sort input: 900k lines, ~40 MiB, unique 16-hex-digit first field.
    perl -e '
        my ($x, $y) = (1, 7);
        my @w = map { my $n = $_; join "", map { chr(97 + ($_ * 13 + $_ * $_ * 7 + $n) % 26) } 1 .. (2 + $n % 11) } 1 .. 5000;
        for my $i (1 .. 900_000) {
            $x = ($x * 1103515245 + 12345) % 2147483648;
            $y = ($y * 69069 + 1) % 4294967296;
            printf "%08x%08x %s %d %s %s\n", $x, $y, $w[$y % 5000], $x % 100000, $w[($x >> 13) % 5000], $w[$i % 5000];
        }' >"$tmp/in/sort.in"

    # xz input: 32 MiB of word-salad text (compresses about 5:1 at -2).
    perl -e '
        my @w = map { join "", map { chr(97 + ($_ * 13 + $_ * $_ * 7) % 26) } 1 .. (2 + $_ % 11) } 1 .. 3000;
        my ($x, $left) = (5, 32 << 20);
        for (my $i = 1; $left > 0; $i++) {
            $x = ($x * 1103515245 + 12345) % 2147483648;
            my $line = join(" ", $i, map({ $w[($x >> $_) % 3000] } 3, 7, 11, 15), $x % 1000) . "\n";
            $line = substr($line, 0, $left) if length($line) > $left;
            print $line;
            $left -= length $line;
        }' >"$tmp/in/xz.in"
}

# --------------------------------------------------------------- workloads --
# Each runs as `bash` under the environment of its side (so bash itself and
# every program it starts get the preload), with `set -euo pipefail`, in an
# empty working directory that has the same path on both sides.

wl_python() {
    PYTHONMALLOC=malloc "$SMOKE_PYTHON" "$SMOKE_IN/workload.py"
}

wl_git() {
    export GIT_AUTHOR_NAME="Smoke Author" GIT_AUTHOR_EMAIL=author@example.invalid
    export GIT_COMMITTER_NAME="Smoke Committer" GIT_COMMITTER_EMAIL=committer@example.invalid
    export GIT_AUTHOR_DATE="2024-01-02T03:04:05+0000" GIT_COMMITTER_DATE="2024-01-02T03:04:05+0000"
    export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_TERMINAL_PROMPT=0
    git init -q -b main repo
    cd repo
    git config gc.auto 0
    git config maintenance.auto false
    # 3000 files in 60 directories, deterministic content.
    awk 'BEGIN {
      x = 12345
      for (f = 0; f < 3000; f++) {
        d = sprintf("dir%02d", f % 60)
        if (f < 60) system("mkdir -p " d)
        p = sprintf("%s/file%04d.txt", d, f)
        n = 20 + f % 50
        for (l = 0; l < n; l++) {
          x = (x * 1103515245 + 12345) % 2147483648
          printf "line %d of file %d: value %d %s\n", l, f, x, (x % 7 == 0 ? "seven" : "other") > p
        }
        close(p)
      }
    }'
    git add -A
    git commit -q -m "initial: 3000 files"
    # modify every 7th file, delete 5, rename 1, add 50
    awk 'BEGIN {
      for (f = 0; f < 3000; f += 7) {
        p = sprintf("dir%02d/file%04d.txt", f % 60, f)
        printf "appended line for %d\n", f >> p
        close(p)
      }
    }'
    local f i
    for f in 5 105 205 305 405; do
        git rm -qf "$(printf 'dir%02d/file%04d.txt' $((f % 60)) "$f")"
    done
    git mv dir01/file0001.txt dir01/renamed0001.txt
    mkdir newdir
    for i in $(seq 1 50); do seq "$i" $((i * 40)) >"newdir/seq$i.txt"; done
    git add -A
    GIT_AUTHOR_DATE="2024-01-03T03:04:05+0000" GIT_COMMITTER_DATE="2024-01-03T03:04:05+0000" \
        git commit -q -m "second: modify, delete, rename, add"
    git gc -q
    git fsck --full --strict
    git log --stat | sha256sum
    git diff --stat HEAD~1 HEAD | tail -n 1
    git ls-tree -r HEAD | sha256sum
    git archive --format=tar HEAD | sha256sum
    git grep -c seven HEAD -- dir07 | sha256sum
    git count-objects -v | grep -E '^(count|in-pack|packs|garbage):'
    git rev-parse HEAD HEAD~1 'HEAD^{tree}'
}

wl_sqlite3() {
    sqlite3 -bail smoke.db <"$SMOKE_IN/workload.sql"
}

wl_gcc() {
    awk -v part=-1 -f "$SMOKE_IN/gen_c.awk" >main.c
    awk -v part=0 -v n=800 -f "$SMOKE_IN/gen_c.awk" >part0.c
    awk -v part=1 -v n=800 -f "$SMOKE_IN/gen_c.awk" >part1.c
    local pid
    gcc -O2 -Wall -Werror -c part0.c &
    pid=$!
    gcc -O2 -Wall -Werror -c part1.c
    wait "$pid"
    gcc -O2 -Wall -Werror -o prog main.c part0.o part1.o
    echo "gcc exit 0"
    ./prog
    sha256sum part0.o part1.o prog
}

wl_perl() {
    perl "$SMOKE_IN/workload.pl"
}

wl_sort() {
    local in=$SMOKE_IN/sort.in
    sort -S 256M --parallel=2 "$in" | sha256sum              # in memory
    sort -S 4M --parallel=2 "$in" | sha256sum                # temp files + merge
    sort -S 64M --parallel=2 -t ' ' -k3,3n -k1,1r "$in" | sha256sum
    sort -S 16M --parallel=2 -u -k2,2 "$in" | sha256sum
}

wl_xz() {
    xz -T2 -2 --block-size=4MiB -c "$SMOKE_IN/xz.in" >data.xz
    sha256sum <data.xz
    xz -T2 -dc data.xz >roundtrip
    sha256sum <roundtrip
    cmp roundtrip "$SMOKE_IN/xz.in"
    xz -T2 -t data.xz
}

# ------------------------------------------------------------------ runner --

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }
fmt_secs() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); }

# describe_rc RC -> "exit RC", "killed by SIGSEGV", "timed out"
describe_rc() {
    local rc=$1
    if [[ $rc -eq 124 ]]; then
        echo "timed out after ${RUN_TIMEOUT}s"
    elif [[ $rc -gt 128 && $rc -lt 160 ]]; then
        echo "exit $rc (killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128))))"
    else
        echo "exit $rc"
    fi
}

# run_side NAME SIDE [PRELOAD] -> sets RC and ELAPSED (microseconds)
run_side() {
    local name=$1 side=$2 preload=${3:-}
    local script=$tmp/wl/$name.sh envv=("${BASE_ENV[@]}")
    [[ -n $preload ]] && envv+=(LD_PRELOAD="$preload")
    rm -rf -- "$RUN"
    mkdir -p "$RUN/.tmp"
    local t0
    t0=$(now_us)
    RC=0
    (cd -- "$RUN" && exec timeout -k 5 "$RUN_TIMEOUT" "${envv[@]}" bash "$script") \
        >"$tmp/out/$name.$side.out" 2>"$tmp/out/$name.$side.err" </dev/null || RC=$?
    ELAPSED=$(($(now_us) - t0))
}

indent() { sed 's/^/    /'; }

passed=0
failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }

run_workload() {
    local name=$1
    local o=$tmp/out/$name
    {
        echo 'set -euo pipefail'
        declare -f "wl_$name"
        echo "wl_$name"
    } >"$tmp/wl/$name.sh"

    run_side "$name" glibc
    local rc_g=$RC t_g=$ELAPSED
    if [[ $self_check -eq 1 ]]; then
        run_side "$name" lib
    else
        run_side "$name" lib "$lib"
    fi
    local rc_l=$RC t_l=$ELAPSED
    rm -rf -- "$RUN"

    local times
    times="glibc $(fmt_secs "$t_g")s, lib $(fmt_secs "$t_l")s"
    if [[ $rc_g -ne 0 ]]; then
        fail "$name: glibc run failed, $(describe_rc "$rc_g") ($times); its stderr:"
        head -n 15 "$o.glibc.err" | indent
        return
    fi
    if [[ $rc_l -ne 0 ]]; then
        fail "$name: $(describe_rc "$rc_l") under the library, 0 under glibc ($times); its stderr:"
        head -n 15 "$o.lib.err" | indent
        return
    fi
    if [[ ! -s $o.glibc.out ]]; then
        fail "$name: glibc run printed nothing to compare"
        return
    fi
    if ! cmp -s "$o.glibc.out" "$o.lib.out"; then
        fail "$name: stdout differs from glibc's ($times):"
        diff -u --label glibc --label lib "$o.glibc.out" "$o.lib.out" | head -n 20 | indent || true
        return
    fi
    local extra
    extra=$(grep -vxF -f "$o.glibc.err" "$o.lib.err" || true)
    if [[ -n $extra ]]; then
        fail "$name: stderr lines under the library that glibc did not print ($times):"
        head -n 15 <<<"$extra" | indent
        return
    fi
    pass "$name ($times)"
}

# The library must be loaded and the program's malloc calls must reach it: a
# library that is mapped but exports no malloc would make every workload pass.
# The probe calls malloc as python3 resolves it and asks the library whether the
# object is its own (goalloc_usable_size, with GOALLOC_INVALID_FREE=ignore so
# that a foreign pointer gets 0 instead of an abort). Where malloc's symbol
# resolves says nothing here: in a non-PIE python3 (Debian's /usr/bin/python3.11)
# dlsym finds the executable's canonical PLT entry, whose calls still go to the
# preloaded malloc.
check_preload() {
    local real out rc=0
    real=$(readlink -f -- "$lib")
    out=$(cd -- "$tmp" && "${BASE_ENV[@]}" GOALLOC_INVALID_FREE=ignore LD_PRELOAD="$lib" "$python" -c '
import ctypes, sys
malloc = ctypes.CDLL(None).malloc
malloc.restype, malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
usable = ctypes.CDLL(sys.argv[1]).goalloc_usable_size
usable.restype, usable.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
p = malloc(100000)
addr = ctypes.cast(ctypes.CDLL(None).malloc, ctypes.c_void_p).value
mapped, owner = set(), "?"
with open("/proc/self/maps") as f:
    for line in f:
        fields = line.split(None, 5)
        path = fields[5].strip() if len(fields) == 6 else ""
        lo, hi = (int(v, 16) for v in fields[0].split("-"))
        mapped.add(path)
        if lo <= addr < hi:
            owner = path
print("mapped" if sys.argv[1] in mapped else "unmapped",
      "ours" if usable(p) >= 100000 else "theirs", owner)
' "$real" 2>"$tmp/preload.err") || rc=$?
    if [[ $rc -ne 0 ]]; then
        fail "preload: python3 under LD_PRELOAD=$lib: $(describe_rc "$rc"):"
        head -n 15 "$tmp/preload.err" | indent
    elif [[ $out == "mapped ours "* ]]; then
        pass "preload ($real is in python3's /proc/self/maps and python3's malloc(100000) returns its object)"
    elif [[ $out == mapped* ]]; then
        fail "preload: $real is mapped but python3's malloc does not reach it (the symbol resolves to ${out#mapped theirs }; does it export malloc?)"
    else
        fail "preload: $real is not in python3's /proc/self/maps: ${out}"
    fi
}

t_setup=$(now_us)
write_inputs
if [[ $self_check -eq 1 ]]; then
    echo "self-check: glibc against glibc, no preload"
else
    echo "library: $lib"
fi
echo "inputs ready in $(fmt_secs $(($(now_us) - t_setup)))s"

[[ $self_check -eq 1 ]] || check_preload
for w in "${selected[@]}"; do
    run_workload "$w"
done

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
