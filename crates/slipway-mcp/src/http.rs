//! `/mcp`: the tools over streamable HTTP, for the server to mount. The server authenticates
//! every request first and puts its [`Caller`] in the request's extensions; a tool call the
//! caller's role does not allow is refused with 403 before it reaches the tools
//! ([`forbidden_call`]). Each session is its opener's alone, and capped ([`sessions`]).

use crate::sessions::{SessionGuard, SessionLimits, IDLE};
use crate::{tools, Caller, Scope, SlipwayMcp};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use slipway_engine::Engine;
use slipway_store::Store;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The tower service to mount at `/mcp`; `shutdown` ends its sessions. The guard is the
/// mounting server's to consult on every request ([`SessionGuard`]).
pub fn service(
    store: Store,
    engine: Engine,
    shutdown: CancellationToken,
    max_body_bytes: usize,
    limits: SessionLimits,
) -> (
    StreamableHttpService<SlipwayMcp, LocalSessionManager>,
    Arc<SessionGuard>,
) {
    let handler = SlipwayMcp::new(store, engine, Scope::Server);
    // Every request needs a bearer token, which a browser never attaches by itself, so a
    // DNS-rebound page gains nothing: any Host the server is reached by is accepted.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(shutdown)
        .with_max_request_body_bytes(max_body_bytes);
    let mut manager = LocalSessionManager::default();
    manager.session_config.keep_alive = Some(IDLE);
    let manager = Arc::new(manager);
    let guard = Arc::new(SessionGuard::new(manager.clone(), limits));
    let service = StreamableHttpService::new(move || Ok(handler.clone()), manager, config);
    (service, guard)
}

/// Why `caller` may not make the call in a request's JSON-RPC body (one message or a
/// batch): a `tools/call` of a tool that needs a role the caller does not have.
pub fn forbidden_call(caller: &Caller, body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let messages = match value {
        serde_json::Value::Array(all) => all,
        one => vec![one],
    };
    messages.iter().find_map(|message| {
        if message["method"] != "tools/call" {
            return None;
        }
        let tool = message["params"]["name"].as_str()?;
        let required = tools::required_role(tool);
        (!caller.role.allows(required)).then(|| {
            format!(
                "{tool} needs a token with the {required} role; yours has {}",
                caller.role
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_core::Role;

    fn caller(role: Role) -> Caller {
        Caller {
            role,
            name: "token t".into(),
        }
    }

    #[test]
    fn a_viewer_may_read_but_not_validate_or_start_runs() {
        let call = |name: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}"}}}}"#
            )
        };
        let viewer = caller(Role::Viewer);
        for tool in ["validate", "start_run", "reply_to_run"] {
            let why = forbidden_call(&viewer, call(tool).as_bytes()).unwrap();
            assert!(why.contains("operator role"), "{why}");
        }
        for tool in ["get_validation", "get_logs", "list_projects", "get_run"] {
            assert_eq!(forbidden_call(&viewer, call(tool).as_bytes()), None);
        }
        let batch = format!(
            "[{{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\",\"id\":2}},{}]",
            call("validate")
        );
        assert!(forbidden_call(&viewer, batch.as_bytes()).is_some());
        assert_eq!(
            forbidden_call(&caller(Role::Operator), call("validate").as_bytes()),
            None
        );
    }
}
