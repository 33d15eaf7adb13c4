//! The database a test's server uses: a SQLite file in its data directory, or, with
//! `SLIPWAY_TEST_DATABASE=postgres`, a new database of its own on the PostgreSQL server
//! `SLIPWAY_TEST_POSTGRES_URL` names (`scripts/test.sh` starts one), so that the suites of
//! the server and the engine run unchanged on either backend.

use std::path::Path;

/// The URL of a fresh database for one test.
pub async fn url(data_dir: &Path) -> String {
    if std::env::var("SLIPWAY_TEST_DATABASE").as_deref() != Ok("postgres") {
        return format!("sqlite://{}", data_dir.join("slipway.db").display());
    }
    let server = std::env::var("SLIPWAY_TEST_POSTGRES_URL")
        .expect("SLIPWAY_TEST_DATABASE=postgres needs SLIPWAY_TEST_POSTGRES_URL (a server to create databases on)");
    postgres_database(&server).await
}

/// A new, empty database on `server` (a URL whose database the test may create others from).
pub async fn postgres_database(server: &str) -> String {
    use sqlx::Connection;
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).expect("the OS random source");
    let name = format!(
        "slipway_test_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .expect("the test PostgreSQL server answers");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("a test database is created");
    let _ = admin.close().await;
    let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
    format!("{base}/{name}")
}
