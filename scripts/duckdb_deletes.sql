-- The archive as the store serves it, for DuckDB: every archived row whose (date, id) is in no
-- delete file of its day partition. Run from the data directory (paths are relative to it):
--   duckdb -c ".read scripts/duckdb_deletes.sql" -c "SELECT count(*) FROM archive"
-- `date` comes from the hive partition directories (cold/date=YYYY-MM-DD/...).
-- PnL follows the store's sign convention: Profit v -> v, Loss v -> -|v|, Neutral -> 0, other
-- kinds have no PnL (NULL).
-- Archival gives every day partition a delete file (empty while nothing there is dead), so
-- the delete glob matches whenever the data glob does.
CREATE OR REPLACE VIEW archive AS
SELECT d.*,
       CASE d.outcome_kind WHEN 'Profit' THEN d.outcome_value
                           WHEN 'Loss' THEN -abs(d.outcome_value)
                           WHEN 'Neutral' THEN 0.0 END AS pnl
FROM read_parquet('cold/date=*/*.parquet', hive_partitioning = true) AS d
ANTI JOIN read_parquet('cold/_deletes/date=*/*.parquet', hive_partitioning = true) AS x
  ON d."date" = x."date" AND d.id = x.id;
