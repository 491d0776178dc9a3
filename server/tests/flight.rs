//! The Arrow Flight SQL front, through a real third-party client: the ADBC
//! Flight SQL driver from PyPI (scripts/python-clients.sh). It logs in with a
//! SQL user's password, browses the catalog, and gets the same rows as the
//! CLI; a wrong password and a write are refused. The gRPC SQL port requires
//! the same credentials once SQL users exist.

mod common;

use std::process::Command;

use common::*;

const CLIENT: &str = r#"
import json, sys
import adbc_driver_flightsql.dbapi as flight_sql
uri, user, password, query = sys.argv[1:5]
conn = flight_sql.connect(uri, db_kwargs={"username": user, "password": password}, autocommit=True)
info = conn.adbc_get_info()
objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
tables = {}
for catalog in objects:
    for schema in catalog["catalog_db_schemas"] or []:
        for table in schema["db_schema_tables"] or []:
            name = f'{catalog["catalog_name"]}.{schema["db_schema_name"]}.{table["table_name"]}'
            tables[name] = [c["column_name"] for c in table["table_columns"] or []]
cur = conn.cursor()
cur.execute(query)
result = cur.fetch_arrow_table()
print(json.dumps({
    "vendor": info.get("vendor_name"),
    "tables": tables,
    "columns": result.schema.names,
    "rows": [[str(v) for v in row.values()] for row in result.to_pylist()],
}))
"#;

fn adbc(py: &str, uri: &str, user: &str, password: &str, query: &str) -> Result<serde_json::Value, String> {
    let out = Command::new(py).args(["-c", CLIENT, uri, user, password, query]).output().expect("run python");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("client output is JSON"))
}

#[test]
fn adbc_logs_in_browses_and_gets_the_clis_rows() {
    let Some(py) = python() else { return };
    let data = tempfile::tempdir().unwrap();
    let flight = free_addr();
    let server = Server::start_full(
        data.path(),
        "127.0.0.1:0",
        &["--flight-listen", &flight, "--sql-user", "auditor:correct horse"],
        &[],
    );
    let root = debian_rootfs().display().to_string();
    let (ok, _, err) =
        agent(&["crawl", "--root", &root, "--server", &server.url, "--scope", "image", "--scope-id", "bookworm"]);
    assert!(ok, "{err}");

    let uri = format!("grpc://{flight}");
    let query = "SELECT name, version FROM packages WHERE scope_id = 'bookworm' ORDER BY name";
    let got = adbc(&py, &uri, "auditor", "correct horse", query).unwrap();
    assert_eq!(got["vendor"], "Periscope");
    let tables = got["tables"].as_object().unwrap();
    let packages = tables.get("periscope.public.packages").expect("packages listed").as_array().unwrap();
    assert!(packages.iter().any(|c| c == "version"), "packages columns: {packages:?}");
    assert!(tables.contains_key("periscope.public.crawl_errors"), "{:?}", tables.keys());
    assert_eq!(got["columns"], serde_json::json!(["name", "version"]));

    // The CLI over gRPC needs the same credentials now that SQL users exist.
    let target = ["--server", server.url.as_str()];
    let refused = sql_refused(&target, query, &[]);
    assert!(refused.contains("needs credentials"), "{refused}");
    let wrong = sql_refused(&target, query, &[("PERISCOPE_USER", "auditor"), ("PERISCOPE_PASSWORD", "nope")]);
    assert!(wrong.contains("wrong user name or password"), "{wrong}");
    let out = Command::new(periscope_bin())
        .args(["sql", "--server", &server.url, "--format", "json", query])
        .envs([("PERISCOPE_USER", "auditor"), ("PERISCOPE_PASSWORD", "correct horse")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Vec<Vec<String>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let row: serde_json::Map<String, serde_json::Value> = serde_json::from_str(l).unwrap();
            vec![s(&row, "name"), s(&row, "version")]
        })
        .collect();
    assert!(cli.len() > 50, "the crawl stored the root's packages: {}", cli.len());
    let flight_rows: Vec<Vec<String>> = serde_json::from_value(got["rows"].clone()).unwrap();
    assert_eq!(flight_rows, cli, "Flight SQL and the CLI agree");

    // A CASE mixing a literal and a cast: the announced schema must be the one the rows arrive in.
    let case = "SELECT CASE WHEN name = 'bash' THEN 'shell' ELSE CAST(version AS VARCHAR) END AS k \
                FROM packages WHERE scope_id = 'bookworm' ORDER BY name LIMIT 3";
    let got = adbc(&py, &uri, "auditor", "correct horse", case).unwrap();
    assert_eq!(got["rows"].as_array().unwrap().len(), 3, "{got}");

    let denied = adbc(&py, &uri, "auditor", "wrong", "SELECT 1").unwrap_err();
    assert!(denied.contains("wrong user name or password"), "{denied}");
    let write = adbc(&py, &uri, "auditor", "correct horse", "CREATE TABLE t AS SELECT 1").unwrap_err();
    assert!(write.contains("DDL not supported"), "{write}");
}

#[test]
fn flight_sql_without_a_sql_user_refuses_to_start() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(periscope_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--flight-listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env_remove("PERISCOPE_SQL_USERS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs at least one SQL user"), "{err}");
}
