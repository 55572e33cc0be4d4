"""DuckDB baseline for benches/cold.rs: point reads by id and by signature on the same Parquet
files, with the same ids and signatures. Prints one line per measure: a name, then each
lookup's time in nanoseconds.

Usage: python duckdb_cold.py <cold dir> <sample file of "id signature" lines>
"""
import sys
import time

import duckdb

cold, sample = sys.argv[1], sys.argv[2]
pairs = [line.split() for line in open(sample) if line.strip()]
con = duckdb.connect()
con.execute(
    f"CREATE VIEW archive AS SELECT * FROM read_parquet('{cold}/*/*.parquet', hive_partitioning = true)"
)
# One query to warm DuckDB's metadata caches, as the store's own metadata cache is warm.
con.execute("SELECT count(*) FROM archive").fetchall()
by_id = []
for id_, _ in pairs:
    t = time.perf_counter_ns()
    rows = con.execute("SELECT * FROM archive WHERE id = ?", [int(id_)]).fetchall()
    by_id.append(time.perf_counter_ns() - t)
    assert len(rows) == 1, (id_, len(rows))
by_sig = []
for _, sig in pairs:
    t = time.perf_counter_ns()
    rows = con.execute("SELECT * FROM archive WHERE transaction_signature = ?", [sig]).fetchall()
    by_sig.append(time.perf_counter_ns() - t)
    assert len(rows) == 1, (sig, len(rows))
print("get_by_id", *by_id)
print("get_by_signature", *by_sig)
