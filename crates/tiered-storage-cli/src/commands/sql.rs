//! `sql`: one read-only SQL statement over the table `records`, on the files (read-only) or
//! through the service's `POST /v1/sql` with --url. Both print the same.

use std::io::Write;

use serde_json::Value;
use tiered_storage_server::api::{SqlRequest, SqlResponse};

use super::Ctx;
use crate::cli::Format;
use crate::error::{CliError, CliResult};
use crate::output::{print_csv, print_table, stdout_err};

pub async fn sql(ctx: &Ctx, query: &str) -> CliResult<()> {
    if query.trim().is_empty() {
        return Err(CliError::usage("the SQL statement is empty"));
    }
    let answer = match ctx.remote()? {
        Some(remote) => {
            let body = serde_json::to_value(SqlRequest {
                sql: query.to_owned(),
            })
            .map_err(|e| CliError::remote(format!("encoding the request: {e}")))?;
            let value = remote
                .post_json("/v1/sql", &body)?
                .ok_or_else(|| CliError::remote("POST /v1/sql: not found"))?;
            serde_json::from_value::<SqlResponse>(value)
                .map_err(|e| CliError::remote(format!("POST /v1/sql: not an SQL answer: {e}")))?
        }
        None => {
            let store = ctx.store.open_read_only().await?;
            let rows = store
                .sql(query)
                .await
                .map_err(|e| CliError::store("sql", e))?;
            SqlResponse::from(rows)
        }
    };
    let mut out = std::io::stdout().lock();
    print(&mut out, ctx.format, &answer)?;
    out.flush().map_err(stdout_err)
}

/// Print an answer: csv and table a header line then the rows (NULL an empty cell in csv,
/// `NULL` in a table); json one object per row, keys in column order.
pub fn print(out: &mut impl Write, format: Format, answer: &SqlResponse) -> CliResult<()> {
    match format {
        Format::Json => {
            for row in &answer.rows {
                let mut line = String::from("{");
                for (i, (name, value)) in answer.columns.iter().zip(row).enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    line.push_str(&Value::from(name.as_str()).to_string());
                    line.push(':');
                    line.push_str(&value.to_string());
                }
                line.push('}');
                writeln!(out, "{line}").map_err(stdout_err)?;
            }
            Ok(())
        }
        Format::Csv | Format::Table => {
            let null = if format == Format::Csv { "" } else { "NULL" };
            let mut rows = Vec::with_capacity(answer.rows.len() + 1);
            rows.push(answer.columns.clone());
            rows.extend(answer.rows.iter().map(|row| {
                row.iter()
                    .map(|v| match v {
                        Value::Null => null.to_owned(),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            }));
            if format == Format::Csv {
                print_csv(out, &rows)
            } else {
                print_table(out, &rows)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn printed(format: Format) -> String {
        let answer = SqlResponse {
            columns: vec!["d".into(), "pnl".into(), "n".into(), "note".into()],
            rows: vec![
                vec![json!("2025-11-30"), json!(1.5), json!(3), json!("a, \"b\"")],
                vec![json!("2025-12-01"), json!(-2.0), json!(1), Value::Null],
            ],
        };
        let mut out = Vec::new();
        print(&mut out, format, &answer).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sql_answers_print_as_csv_json_and_table() {
        assert_eq!(
            printed(Format::Csv),
            "d,pnl,n,note\n2025-11-30,1.5,3,\"a, \"\"b\"\"\"\n2025-12-01,-2.0,1,\n"
        );
        assert_eq!(
            printed(Format::Json),
            "{\"d\":\"2025-11-30\",\"pnl\":1.5,\"n\":3,\"note\":\"a, \\\"b\\\"\"}\n\
             {\"d\":\"2025-12-01\",\"pnl\":-2.0,\"n\":1,\"note\":null}\n"
        );
        let table = printed(Format::Table);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("d ") && lines[0].ends_with("note"),
            "{table}"
        );
        assert!(lines[2].ends_with("NULL"), "{table}");
    }
}
