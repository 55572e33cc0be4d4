"""The Polars recipe for reading the archive with its delete files applied, checked against
the store's answer.

Usage: polars_deletes.py <store dir>

The recipe (`archive(cold_dir)` below): scan the data files `cold/date=*/*.parquet` and the
delete files `cold/_deletes/date=*/*.parquet` with hive partitioning, anti-join on (date, id).
PnL: Profit v -> v, Loss v -> -|v|, Neutral -> 0, other kinds null. <store dir> is as for
duckdb_deletes.py; row count, ids and PnL by day must equal <store dir>/expected.json.
"""

import json
import math
import sys
from pathlib import Path

import polars as pl


def archive(cold_dir):
    """The archive as the store serves it: a LazyFrame with a `pnl` column."""
    cold = Path(cold_dir)
    data = pl.scan_parquet(str(cold / "date=*" / "*.parquet"), hive_partitioning=True)
    if any((cold / "_deletes").glob("date=*/*.parquet")):
        deletes = pl.scan_parquet(
            str(cold / "_deletes" / "date=*" / "*.parquet"), hive_partitioning=True
        ).select("date", "id")
        data = data.join(deletes, on=["date", "id"], how="anti")
    pnl = (
        pl.when(pl.col("outcome_kind") == "Profit").then(pl.col("outcome_value"))
        .when(pl.col("outcome_kind") == "Loss").then(-pl.col("outcome_value").abs())
        .when(pl.col("outcome_kind") == "Neutral").then(pl.lit(0.0))
        .otherwise(None)
    )
    return data.with_columns(pnl.alias("pnl"))


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    store = Path(argv[1]).resolve()
    expected = json.loads((store / "expected.json").read_text())
    df = archive(store / "cold").collect()
    bad = []
    ids = sorted(df["id"].to_list())
    if ids != expected["ids"]:
        extra = sorted(set(ids) - set(expected["ids"]))[:10]
        missing = sorted(set(expected["ids"]) - set(ids))[:10]
        bad.append(f"{len(ids)} rows; ids differ: extra {extra}, missing {missing}")
    by_day = (
        df.group_by("date")
        .agg(pl.len().alias("rows"), pl.col("pnl").sum().alias("pnl"))
        .sort("date")
    )
    got = {str(d): (n, p or 0.0) for d, n, p in by_day.iter_rows()}
    for day, want in expected["days"].items():
        n, pnl = got.get(day, (0, 0.0))
        if n != want["rows"] or not math.isclose(pnl, want["pnl"], rel_tol=1e-9, abs_tol=1e-9):
            bad.append(f"{day}: {n} rows, PnL {pnl}; the store says {want['rows']} rows, PnL {want['pnl']}")
    if set(got) != set(expected["days"]):
        bad.append(f"days differ: {sorted(got)} vs {sorted(expected['days'])}")
    raw = pl.scan_parquet(str(store / "cold" / "date=*" / "*.parquet")).select(pl.len()).collect().item()
    if raw <= len(ids):
        bad.append(f"the delete files hide nothing ({raw} data rows, {len(ids)} live): the check is vacuous")
    if bad:
        print("polars_deletes: MISMATCH\n  " + "\n  ".join(bad))
        return 1
    print(f"polars_deletes: ok: {len(ids)} rows, {len(got)} days, PnL by day equal to the store's")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
