//! Which store errors are worth another attempt (the database busy, unreachable or restarting)
//! and which are final (missing rows, refusals, corrupt data): decided by the error's
//! variant, never by its text.

use crate::StoreError;

impl StoreError {
    /// Whether trying the same work again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(error) => transient_sqlx(error),
            StoreError::Write(_) => true,
            StoreError::NotFound
            | StoreError::Conflict(_)
            | StoreError::WrongMasterKey
            | StoreError::UnsupportedUrl(_)
            | StoreError::Undecryptable(_)
            | StoreError::Migration(_)
            | StoreError::Corrupt(_) => false,
        }
    }
}

fn transient_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        // SQLITE_BUSY, SQLITE_LOCKED (and their extended codes); PostgreSQL's serialization
        // failures, deadlocks, lost connections and shutdowns.
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            let code = code.as_ref();
            let sqlite = code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6));
            sqlite
                || matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
                || code.starts_with("08")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_row_is_final_and_a_lost_connection_is_not() {
        assert!(!StoreError::NotFound.is_transient());
        assert!(!StoreError::Corrupt("bad".into()).is_transient());
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_transient());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(StoreError::Database(sqlx::Error::Io(io)).is_transient());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_transient());
    }
}
