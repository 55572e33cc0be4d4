"""Check that DuckDB reads the cold tier's Parquet files as the store wrote them.

Usage: duckdb_interop.py <dir> [<expected.json>]

<dir> is the output directory of `cargo run --example cold_interop -- <dir>`: the store's cold
files are under <dir>/cold/date=YYYY-MM-DD/ and what they must hold is in <dir>/expected.json
(or the file given as the second argument). Checks, with nothing but DuckDB:

- all files together (hive partitioning): the row count, the set of ids, and per id the
  signature, outcome (kind, value, message), decision and sent timestamps (as Unix ms), buy price,
  mint and market context map; the `date` partition equals the UTC date of the decision;
- the column types DuckDB infers (timestamps are TIMESTAMP WITH TIME ZONE, maps are MAP);
- each catalogued file alone: its row count, ids strictly ascending within the catalogued id
  range, the footer key `tiered_storage.format_version` = "1", ZSTD on the signature column;
- the files on disk are exactly the catalogued ones.

The session time zone is set away from UTC, so a reading that depended on it would show.
Exits 1 naming the mismatches.
"""

import json
import math
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Not UTC, with a half-hour offset: a timestamp read as local time would be off.
SESSION_TIME_ZONE = "Asia/Kolkata"
FORMAT_VERSION_KEY = "tiered_storage.format_version"
FORMAT_VERSION = "1"
MAX_REPORTED = 20

EXPECTED_TYPES = {
    "id": "BIGINT",
    "timestamp_decision_made": "TIMESTAMP WITH TIME ZONE",
    "timestamp_transaction_sent": "TIMESTAMP WITH TIME ZONE",
    "transaction_signature": "VARCHAR",
    "mint": "VARCHAR",
    "slot": "UBIGINT",
    "predicted_score": "UTINYINT",
    "buy_price_sol": "DOUBLE",
    "outcome_kind": "VARCHAR",
    "outcome_value": "DOUBLE",
    "outcome_message": "VARCHAR",
    "market_context_snapshot": "MAP(VARCHAR, DOUBLE)",
    "feature_scores": "MAP(VARCHAR, DOUBLE)",
    "date": "DATE",
}


class Mismatches:
    def __init__(self):
        self.items = []

    def add(self, message):
        self.items.append(message)

    def check(self, ok, message):
        if not ok:
            self.add(message)
        return ok


def sql_str(s):
    return "'" + str(s).replace("'", "''") + "'"


def same_float(a, b):
    """Equal as stored: NaN equals NaN, and 0.0 differs from -0.0."""
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def same_map(got, want):
    if not isinstance(got, dict):
        # Older DuckDB releases return a MAP as {"key": [...], "value": [...]}.
        got = dict(zip(got["key"], got["value"]))
    return set(got) == set(want) and all(same_float(got[k], want[k]) for k in want)


def epoch_ms(ts):
    """A tz-aware datetime from DuckDB to Unix ms, exactly (no float rounding)."""
    if ts is None:
        return None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise TypeError(f"expected a tz-aware datetime, got {ts!r}")
    return (ts - EPOCH) // timedelta(milliseconds=1)


def utc_date(ms):
    return (EPOCH + timedelta(milliseconds=ms)).date()


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(__doc__.split("\n\n")[1])
    out_dir = Path(argv[1]).resolve()
    expected_path = Path(argv[2]) if len(argv) == 3 else out_dir / "expected.json"
    cold = out_dir / "cold"
    with open(expected_path, encoding="utf-8") as f:
        expected = json.load(f)
    want = {r["id"]: r for r in expected["records"]}
    files = expected["files"]
    bad = Mismatches()
    bad.check(
        len(want) == len(expected["records"]) == expected["total_rows"],
        f"expected file is inconsistent: {len(expected['records'])} records, "
        f"{len(want)} distinct ids, total_rows {expected['total_rows']}",
    )
    bad.check(
        sum(f["rows"] for f in files) == expected["total_rows"],
        "catalogued file rows do not add up to total_rows",
    )

    con = duckdb.connect()
    con.execute(f"SET TimeZone = {sql_str(SESSION_TIME_ZONE)}")
    pattern = sql_str(f"{cold}/*/*.parquet")
    source = f"read_parquet({pattern}, hive_partitioning = true, filename = true)"

    # The files on disk are the catalogued ones.
    on_disk = {
        str(Path(p).relative_to(cold))
        for (p,) in con.execute(f"SELECT file FROM glob({pattern})").fetchall()
    }
    catalogued = {f["path"] for f in files}
    bad.check(
        on_disk == catalogued,
        f"files on disk != catalogued: extra {sorted(on_disk - catalogued)}, "
        f"missing {sorted(catalogued - on_disk)}",
    )

    # Types DuckDB infers.
    types = {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    for column, ty in EXPECTED_TYPES.items():
        bad.check(types.get(column) == ty, f"column {column}: DuckDB type {types.get(column)}, expected {ty}")

    # All files together.
    (rows, distinct) = con.execute(f"SELECT count(*), count(DISTINCT id) FROM {source}").fetchone()
    bad.check(rows == expected["total_rows"], f"row count {rows}, expected {expected['total_rows']}")
    bad.check(distinct == rows, f"{rows - distinct} duplicate ids across files")
    result = con.execute(
        f"""SELECT id, transaction_signature, outcome_kind, outcome_value, outcome_message,
                   timestamp_decision_made, epoch_ms(timestamp_decision_made),
                   timestamp_transaction_sent, buy_price_sol, mint, market_context_snapshot,
                   "date", filename
            FROM {source} ORDER BY id"""
    ).fetchall()
    got_ids = {row[0] for row in result}
    bad.check(
        got_ids == set(want),
        f"id sets differ: {len(got_ids - set(want))} unexpected (e.g. {sorted(got_ids - set(want))[:5]}), "
        f"{len(set(want) - got_ids)} missing (e.g. {sorted(set(want) - got_ids)[:5]})",
    )
    ranges = {f["path"]: (f["min_id"], f["max_id"]) for f in files}
    for (rid, sig, kind, value, message, ts, ts_ms, sent, buy, mint, market, date, filename) in result:
        w = want.get(rid)
        if w is None:
            continue
        where = f"id {rid}"
        bad.check(sig == w["signature"], f"{where}: signature {sig!r}, expected {w['signature']!r}")
        bad.check(kind == w["outcome_kind"], f"{where}: outcome_kind {kind!r}, expected {w['outcome_kind']!r}")
        bad.check(
            same_float(value, w["outcome_value"]),
            f"{where}: outcome_value {value!r}, expected {w['outcome_value']!r}",
        )
        bad.check(
            message == w["outcome_message"],
            f"{where}: outcome_message {message!r}, expected {w['outcome_message']!r}",
        )
        decided = w["timestamp_decision_made"]
        bad.check(
            epoch_ms(ts) == decided == ts_ms,
            f"{where}: timestamp_decision_made {ts!r} ({epoch_ms(ts)} ms; epoch_ms() {ts_ms}), expected {decided}",
        )
        bad.check(
            epoch_ms(sent) == w["timestamp_transaction_sent"],
            f"{where}: timestamp_transaction_sent {sent!r}, expected {w['timestamp_transaction_sent']}",
        )
        bad.check(same_float(buy, w["buy_price_sol"]), f"{where}: buy_price_sol {buy!r}, expected {w['buy_price_sol']!r}")
        bad.check(mint == w["mint"], f"{where}: mint {mint!r}, expected {w['mint']!r}")
        bad.check(
            same_map(market, w["market_context_snapshot"]),
            f"{where}: market_context_snapshot {market!r}, expected {w['market_context_snapshot']!r}",
        )
        bad.check(
            date == utc_date(decided),
            f"{where}: partition date {date}, but the decision was on {utc_date(decided)} (UTC)",
        )
        path = str(Path(filename).relative_to(cold))
        lo, hi = ranges.get(path, (None, None))
        bad.check(
            lo is not None and lo <= rid <= hi,
            f"{where}: in {path}, outside its catalogued id range {lo}..={hi}",
        )

    # Each file alone.
    row_groups = 0
    for f in files:
        p = sql_str(cold / f["path"])
        ids = [
            i
            for (i,) in con.execute(
                f"SELECT id FROM read_parquet({p}, file_row_number = true) ORDER BY file_row_number"
            ).fetchall()
        ]
        bad.check(len(ids) == f["rows"], f"{f['path']}: {len(ids)} rows, catalogued {f['rows']}")
        bad.check(
            all(a < b for a, b in zip(ids, ids[1:])),
            f"{f['path']}: ids are not strictly ascending",
        )
        bad.check(
            bool(ids) and ids[0] == f["min_id"] and ids[-1] == f["max_id"],
            f"{f['path']}: ids {ids[:1]}..{ids[-1:]}, catalogued {f['min_id']}..={f['max_id']}",
        )
        kv = {
            k.decode(): v.decode()
            for (k, v) in con.execute(f"SELECT key, value FROM parquet_kv_metadata({p})").fetchall()
        }
        bad.check(
            kv.get(FORMAT_VERSION_KEY) == FORMAT_VERSION,
            f"{f['path']}: footer {FORMAT_VERSION_KEY} = {kv.get(FORMAT_VERSION_KEY)!r}, expected {FORMAT_VERSION!r}",
        )
        codecs = con.execute(
            f"""SELECT row_group_id, compression FROM parquet_metadata({p})
                WHERE path_in_schema = 'transaction_signature' ORDER BY row_group_id"""
        ).fetchall()
        row_groups += len(codecs)
        bad.check(
            bool(codecs) and all(c == "ZSTD" for (_, c) in codecs),
            f"{f['path']}: transaction_signature compression per row group {codecs}, expected ZSTD",
        )

    if bad.items:
        print(f"duckdb interop: FAILED, {len(bad.items)} mismatches:", file=sys.stderr)
        for m in bad.items[:MAX_REPORTED]:
            print(f"  {m}", file=sys.stderr)
        if len(bad.items) > MAX_REPORTED:
            print(f"  ... and {len(bad.items) - MAX_REPORTED} more", file=sys.stderr)
        return 1
    days = len({Path(f["path"]).parent for f in files})
    print(
        f"duckdb interop: {rows} rows in {len(files)} files match "
        f"({days} day partitions, {row_groups} row groups; DuckDB {duckdb.__version__})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
