//! Who owns each `/mcp` session, and how many there may be. An `mcp-session-id` is as good
//! as a bearer token while its session lives, so a session answers only the token that
//! opened it (any other gets 404, as for a session that does not exist), and sessions are
//! capped per token and in all; rmcp ends a session idle for [`IDLE`].

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Open sessions one token may hold.
pub const PER_TOKEN: usize = 32;
/// Open sessions in all.
pub const IN_ALL: usize = 1024;
/// A session with no message for this long is closed.
pub const IDLE: Duration = Duration::from_secs(15 * 60);

/// Why a new session is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The token holds [`SessionLimits::per_token`] sessions already.
    TokenFull(usize),
    /// The server holds [`SessionLimits::in_all`] sessions already.
    ServerFull(usize),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = IDLE.as_secs() / 60;
        match self {
            Refusal::TokenFull(most) => write!(
                f,
                "this token has {most} open MCP sessions, the most one token may hold; close \
                 one you no longer use (DELETE /mcp with its mcp-session-id) or wait for idle \
                 ones to end after {idle} minutes"
            ),
            Refusal::ServerFull(most) => write!(
                f,
                "the server has {most} open MCP sessions, the most it holds; try again when \
                 idle ones have ended (after {idle} minutes)"
            ),
        }
    }
}

/// The caps: [`PER_TOKEN`] and [`IN_ALL`] unless a test sets its own.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub per_token: usize,
    pub in_all: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            per_token: PER_TOKEN,
            in_all: IN_ALL,
        }
    }
}

/// Sessions by id with their owner, plus the initializes under way (their slots held).
#[derive(Default)]
struct Book {
    owners: HashMap<String, String>,
    opening: HashMap<String, usize>,
}

impl Book {
    fn held_by(&self, owner: &str) -> usize {
        self.owners.values().filter(|o| *o == owner).count()
            + self.opening.get(owner).copied().unwrap_or(0)
    }

    fn held(&self) -> usize {
        self.owners.len() + self.opening.values().sum::<usize>()
    }

    fn release(&mut self, owner: &str) {
        if let Some(count) = self.opening.get_mut(owner) {
            *count -= 1;
            if *count == 0 {
                self.opening.remove(owner);
            }
        }
    }
}

/// The owners of `/mcp`'s sessions. `owner` is any stable name of the token (its id).
pub struct SessionGuard {
    manager: Arc<LocalSessionManager>,
    limits: SessionLimits,
    book: Arc<Mutex<Book>>,
}

/// A slot held for a session being opened; dropped unused, it is given back.
pub struct Reservation {
    owner: String,
    book: Arc<Mutex<Book>>,
    bound: bool,
}

impl Reservation {
    /// The session `id` that the initialize opened is `owner`'s from now on.
    pub fn bind(mut self, id: &str) {
        let mut book = self.book.lock().unwrap();
        book.release(&self.owner);
        book.owners.insert(id.to_owned(), self.owner.clone());
        self.bound = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.bound {
            self.book.lock().unwrap().release(&self.owner);
        }
    }
}

impl SessionGuard {
    pub(crate) fn new(manager: Arc<LocalSessionManager>, limits: SessionLimits) -> Self {
        Self {
            manager,
            limits,
            book: Arc::default(),
        }
    }

    /// A slot for a new session of `owner`, unless a cap is reached. Sessions rmcp has
    /// ended (idle, closed) are forgotten first.
    pub async fn admit(&self, owner: &str) -> Result<Reservation, Refusal> {
        let live: Vec<String> = {
            let sessions = self.manager.sessions.read().await;
            let book = self.book.lock().unwrap();
            book.owners
                .keys()
                .filter(|id| sessions.contains_key(id.as_str()))
                .cloned()
                .collect()
        };
        let mut book = self.book.lock().unwrap();
        book.owners.retain(|id, _| live.contains(id));
        if book.held_by(owner) >= self.limits.per_token {
            return Err(Refusal::TokenFull(self.limits.per_token));
        }
        if book.held() >= self.limits.in_all {
            return Err(Refusal::ServerFull(self.limits.in_all));
        }
        *book.opening.entry(owner.to_owned()).or_default() += 1;
        Ok(Reservation {
            owner: owner.to_owned(),
            book: self.book.clone(),
            bound: false,
        })
    }

    /// Whether session `id` was opened by `owner` (false for a session unknown).
    pub fn owns(&self, id: &str, owner: &str) -> bool {
        self.book.lock().unwrap().owners.get(id).map(String::as_str) == Some(owner)
    }

    /// Session `id` was closed by its owner.
    pub fn forget(&self, id: &str) {
        self.book.lock().unwrap().owners.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(per_token: usize, in_all: usize) -> SessionGuard {
        SessionGuard::new(
            Arc::new(LocalSessionManager::default()),
            SessionLimits { per_token, in_all },
        )
    }

    #[tokio::test]
    async fn slots_are_capped_per_token_and_in_all_and_given_back_unused() {
        let guard = guard(2, 3);
        let a1 = guard.admit("a").await.unwrap();
        let a2 = guard.admit("a").await.unwrap();
        assert_eq!(guard.admit("a").await.err(), Some(Refusal::TokenFull(2)));
        let b1 = guard.admit("b").await.unwrap();
        assert_eq!(guard.admit("b").await.err(), Some(Refusal::ServerFull(3)));
        // An initialize that opened nothing gives its slot back.
        drop(a2);
        drop(b1);
        let _a3 = guard.admit("a").await.unwrap();
        // A bound session of a session manager that does not know it (ended) is forgotten.
        a1.bind("gone");
        assert!(guard.owns("gone", "a"));
        assert!(!guard.owns("gone", "b"));
        let _a4 = guard.admit("a").await.unwrap();
        assert!(!guard.owns("gone", "a"));
    }

    #[test]
    fn the_refusals_say_what_to_do() {
        let token = Refusal::TokenFull(32).to_string();
        assert!(token.contains("32 open MCP sessions") && token.contains("DELETE"));
        assert!(Refusal::ServerFull(1024).to_string().contains("15 minutes"));
    }
}
