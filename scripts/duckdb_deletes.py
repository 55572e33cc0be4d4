"""Check the DuckDB recipe (scripts/duckdb_deletes.sql) against the store's answer.

Usage: duckdb_deletes.py <store dir>

<store dir> is `<dir>/deletes` of `cargo run --example cold_interop -- <dir>`: a store whose
archived trades were corrected and removed after archival, then archived again, with the
store's own answer in <store dir>/expected.json (per UTC day: rows and PnL; every id). The view
`archive` of the recipe must give the same row count, ids and PnL by day. Exits 1 on a mismatch.
"""

import json
import math
import os
import sys
from pathlib import Path

import duckdb


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    store = Path(argv[1]).resolve()
    recipe = (Path(__file__).parent / "duckdb_deletes.sql").read_text()
    expected = json.loads((store / "expected.json").read_text())
    os.chdir(store)
    con = duckdb.connect()
    con.execute(recipe)
    bad = []
    (rows, distinct) = con.execute("SELECT count(*), count(DISTINCT id) FROM archive").fetchone()
    if rows != len(expected["ids"]) or distinct != rows:
        bad.append(f"rows {rows} ({distinct} distinct ids), expected {len(expected['ids'])}")
    ids = [r[0] for r in con.execute("SELECT id FROM archive ORDER BY id").fetchall()]
    if ids != expected["ids"]:
        extra = sorted(set(ids) - set(expected["ids"]))[:10]
        missing = sorted(set(expected["ids"]) - set(ids))[:10]
        bad.append(f"ids differ: extra {extra}, missing {missing}")
    got = {
        str(day): (n, pnl)
        for (day, n, pnl) in con.execute(
            'SELECT "date", count(*), coalesce(sum(pnl), 0) FROM archive GROUP BY 1 ORDER BY 1'
        ).fetchall()
    }
    for day, want in expected["days"].items():
        n, pnl = got.get(day, (0, 0.0))
        if n != want["rows"] or not math.isclose(pnl, want["pnl"], rel_tol=1e-9, abs_tol=1e-9):
            bad.append(f"{day}: {n} rows, PnL {pnl}; the store says {want['rows']} rows, PnL {want['pnl']}")
    if set(got) != set(expected["days"]):
        bad.append(f"days differ: {sorted(got)} vs {sorted(expected['days'])}")
    (raw,) = con.execute(
        "SELECT count(*) FROM read_parquet('cold/date=*/*.parquet', hive_partitioning = true)"
    ).fetchone()
    if raw <= rows:
        bad.append(f"the delete files hide nothing ({raw} data rows, {rows} live): the check is vacuous")
    if bad:
        print("duckdb_deletes: MISMATCH\n  " + "\n  ".join(bad))
        return 1
    print(f"duckdb_deletes: ok: {rows} rows, {len(got)} days, PnL by day equal to the store's")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
