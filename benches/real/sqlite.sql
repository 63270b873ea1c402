-- Inserts and queries for scripts/bench.sh, run as
--   sqlite3 -bail -cmd '.parameter set @n N' :memory: < sqlite.sql
-- in an in-memory database (so that the page cache lives in malloc and no disk is
-- involved). Everything printed must be the same under every allocator.
PRAGMA cache_size = -200000;
CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL, d BLOB);
BEGIN;
WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < @n)
INSERT INTO t(a, b, c, d)
  SELECT (x * 2654435761) % 100003,
         printf('name-%08x-%s', (x * 40503) % 1000003, substr('abcdefghijklmnopqrstuvwxyz', 1 + x % 26)),
         ((x * 7919) % 10007) / 13.0,
         zeroblob(16 + (x % 200))
  FROM s;
COMMIT;
CREATE INDEX t_a ON t(a);
CREATE INDEX t_b ON t(b);
SELECT 'rows', count(*), sum(a), total(c) FROM t;
SELECT 'groups', count(*) FROM (SELECT a % 1000 AS k, count(*), avg(c) FROM t GROUP BY k);
SELECT 'top', a, b FROM t ORDER BY c DESC, id LIMIT 3;
SELECT 'range', count(*), min(b), max(b) FROM t WHERE a BETWEEN 1000 AND 20000;
SELECT 'like', count(*) FROM t WHERE b LIKE 'name-0001%';
CREATE TABLE u AS SELECT a % 5000 AS k, group_concat(id, ',') AS ids FROM t GROUP BY k;
SELECT 'join', count(*), sum(length(u.ids)) FROM t JOIN u ON u.k = t.a % 5000 WHERE t.id % 50 = 0;
SELECT 'distinct', count(DISTINCT substr(b, 1, 10)) FROM t;
BEGIN;
UPDATE t SET b = b || '-updated', d = zeroblob(300) WHERE id % 7 = 0;
DELETE FROM t WHERE id % 11 = 0;
COMMIT;
SELECT 'after', count(*), sum(length(b)), sum(length(d)) FROM t;
SELECT 'window', sum(r) FROM (SELECT row_number() OVER (PARTITION BY a % 100 ORDER BY c) AS r FROM t WHERE id % 3 = 0);
PRAGMA integrity_check;
