"""Allocation-heavy python3 workload for scripts/bench.sh.

    python3 python_workload.py SCALE

Run with PYTHONMALLOC=malloc, so that every object goes through malloc (python's own
small-object allocator would otherwise serve objects of up to 512 bytes). Builds and
tears down dicts, lists, tuples, strings, bytes and small class instances, sorts them,
round-trips them through json, and prints one digest of everything it computed, which
must be the same under every allocator.
"""
import hashlib
import json
import sys


class Node:
    __slots__ = ("key", "value", "children")

    def __init__(self, key, value):
        self.key = key
        self.value = value
        self.children = []


def lcg(seed):
    x = seed
    while True:
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        yield x >> 33


def round_(h, rnd, n):
    # dict of strings to lists, grown and shrunk
    table = {}
    for i in range(n):
        r = next(rnd)
        key = "k%x-%d" % (r, i % 97)
        table.setdefault(key, []).append(("v" * (r % 40), i, r % 1000))
    for i, key in enumerate(list(table)):
        if i % 3 == 0:
            del table[key]
    h.update(str(len(table)).encode())
    # sort of tuples and strings
    rows = sorted((len(v), k, sum(x[1] for x in v)) for k, v in table.items())
    h.update(repr(rows[: 50]).encode())
    # a tree of small objects
    root = Node("root", 0)
    level = [root]
    for d in range(4):
        nxt = []
        for node in level:
            for c in range(6):
                child = Node("%s.%d" % (node.key, c), node.value * 7 + c)
                node.children.append(child)
                nxt.append(child)
        level = nxt
    h.update(str(sum(n.value for n in level)).encode())
    # json round trip
    doc = [{"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 13), "u%d" % (i % 7)],
            "score": (i * 37) % 101 / 7.0} for i in range(n // 4)]
    text = json.dumps(doc, sort_keys=True)
    back = json.loads(text)
    h.update(hashlib.sha256(text.encode()).digest())
    h.update(str(sum(d["id"] for d in back)).encode())
    # strings and bytes: split, join, replace, grow
    words = text.split(",")
    joined = "|".join(w.strip() for w in words if len(w) % 5 != 0)
    h.update(hashlib.md5(joined.replace("item", "ITEM").encode()).digest())
    buf = bytearray()
    for i in range(n // 8):
        buf += (b"%d:" % i) * (i % 17)
    h.update(hashlib.sha1(bytes(buf)).digest())
    # set operations
    a = {x % 50021 for x in range(0, n * 3, 7)}
    b = {x % 50021 for x in range(0, n * 3, 11)}
    h.update(str((len(a & b), len(a | b), len(a ^ b))).encode())


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    n = max(2000, int(60000 * min(scale, 1.0)))
    rounds = max(1, int(round(6 * scale)))
    h = hashlib.sha256()
    rnd = lcg(12345)
    for _ in range(rounds):
        round_(h, rnd, n)
    print("python ok: %d rounds of %d, digest %s" % (rounds, n, h.hexdigest()))


if __name__ == "__main__":
    main()
