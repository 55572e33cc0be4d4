"""Polars reads the archive in an S3 bucket through the S3 endpoint, and must find what the
store serves (examples/s3_interop.rs wrote it to <dir>/expected.json).

Usage: polars_s3.py <dir> <prefix>

The endpoint, bucket and credentials come from TIERED_STORAGE_S3_ENDPOINT,
TIERED_STORAGE_S3_BUCKET, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. The recipe (`archive`
below) is the local one (scripts/polars_deletes.py) on s3:// URLs: the data files
`<prefix>/date=*/*.parquet` minus the rows listed in the delete files
`<prefix>/_deletes/date=*/*.parquet`, anti-joined on (date, id). The `**/*.parquet` glob also
matches the delete files, so the second check reads it with the data files' schema and the
file paths, and splits off those under `_deletes/` before applying them.
"""

import json
import os
import sys

import polars as pl


def storage_options():
    return {
        "aws_endpoint_url": os.environ["TIERED_STORAGE_S3_ENDPOINT"],
        "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
        "aws_region": os.environ.get("AWS_REGION", "us-east-1"),
        "aws_allow_http": "true",
    }


def archive(url):
    """The archive under `url` (s3://bucket/prefix) as the store serves it."""
    opts = storage_options()
    data = pl.scan_parquet(f"{url}/date=*/*.parquet", hive_partitioning=True, storage_options=opts)
    deletes = pl.scan_parquet(
        f"{url}/_deletes/date=*/*.parquet", hive_partitioning=True, storage_options=opts
    ).select("date", "id")
    return data.join(deletes, on=["date", "id"], how="anti")


def archive_recursive(url):
    """The same from the one glob `<prefix>/**/*.parquet`: delete files told apart by path.

    Polars takes the schema of the first file it finds, which is a delete file (`_deletes/`
    sorts before `date=`): the data files' schema is given, and the delete files' missing
    columns are inserted as nulls."""
    opts = storage_options()
    schema = pl.scan_parquet(f"{url}/date=*/*.parquet", storage_options=opts).collect_schema()
    everything = pl.scan_parquet(
        f"{url}/**/*.parquet",
        hive_partitioning=True,
        storage_options=opts,
        schema=schema,
        missing_columns="insert",
        include_file_paths="path",
    )
    is_delete = pl.col("path").str.contains("/_deletes/")
    data = everything.filter(~is_delete).drop("path")
    deletes = everything.filter(is_delete).select("date", "id")
    return data.join(deletes, on=["date", "id"], how="anti")


def compare(name, df, expected, bad):
    want = {r[0]: r[1] for r in expected["records"]}
    got = dict(zip(df["id"].to_list(), df["transaction_signature"].to_list()))
    if df.height != expected["rows"]:
        bad.append(f"{name}: {df.height} rows, the store serves {expected['rows']}")
    if len(got) != df.height:
        bad.append(f"{name}: {df.height - len(got)} ids seen twice")
    if set(got) != set(want):
        extra = sorted(set(got) - set(want))[:10]
        missing = sorted(set(want) - set(got))[:10]
        bad.append(f"{name}: ids differ: extra {extra}, missing {missing}")
    wrong = [i for i in want if i in got and got[i] != want[i]][:10]
    if wrong:
        bad.append(f"{name}: signatures differ for ids {wrong}")


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    expected = json.loads(open(os.path.join(argv[1], "expected.json")).read())
    url = f"s3://{os.environ['TIERED_STORAGE_S3_BUCKET']}/{argv[2]}"
    bad = []
    df = archive(url).select("id", "transaction_signature", "date").collect()
    compare("date=*/*.parquet minus _deletes", df, expected, bad)
    raw = (
        pl.scan_parquet(f"{url}/date=*/*.parquet", storage_options=storage_options())
        .select(pl.len())
        .collect()
        .item()
    )
    if raw <= df.height:
        bad.append(f"the delete files hide nothing ({raw} data rows, {df.height} live): the check is vacuous")
    df2 = archive_recursive(url).select("id", "transaction_signature").collect()
    compare("**/*.parquet", df2, expected, bad)
    if bad:
        print("polars_s3: MISMATCH\n  " + "\n  ".join(bad))
        return 1
    days = df["date"].n_unique()
    print(
        f"polars_s3: ok: {df.height} rows over {days} days read from {url} through "
        f"{os.environ['TIERED_STORAGE_S3_ENDPOINT']}; ids and signatures equal to the store's "
        f"({raw - df.height} rows hidden by the delete files)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
