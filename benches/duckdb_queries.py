"""DuckDB baseline for benches/queries.rs: PnL by UTC day over a time range, on the same Parquet
files, with the store's sign convention (Profit v -> v, Loss v -> -|v|, Neutral -> 0, other
kinds no PnL). Prints "day <day start, Unix ms> <sum>" per day, then "nanos" and each run's time.

Usage: python duckdb_queries.py <cold dir> <from ms> <to ms>   (inclusive)
The benchmark's store has no removed or superseded archived records, so no delete files apply.
"""
import sys
import time

import duckdb

cold, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = duckdb.connect()
con.execute(
    f"CREATE VIEW archive AS SELECT * FROM read_parquet('{cold}/date=*/*.parquet', hive_partitioning = true)"
)
QUERY = """
SELECT (epoch_ms(timestamp_decision_made) // 86400000) * 86400000 AS day,
       sum(CASE outcome_kind WHEN 'Profit' THEN outcome_value
                             WHEN 'Loss' THEN -abs(outcome_value)
                             WHEN 'Neutral' THEN 0.0 END) AS pnl
FROM archive
WHERE epoch_ms(timestamp_decision_made) BETWEEN ? AND ?
  AND outcome_kind IN ('Profit', 'Loss', 'Neutral')
GROUP BY day ORDER BY day
"""
# One run to warm DuckDB's metadata caches, as the store's own metadata cache is warm.
rows = con.execute(QUERY, [lo, hi]).fetchall()
times = []
for _ in range(10):
    t = time.perf_counter_ns()
    rows = con.execute(QUERY, [lo, hi]).fetchall()
    times.append(time.perf_counter_ns() - t)
for day, pnl in rows:
    print("day", day, repr(pnl))
print("nanos", *times)
