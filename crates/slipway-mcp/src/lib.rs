//! Slipway's MCP server (the official Rust SDK, `rmcp`): coding agents validate their own work
//! in Slipway's sandbox before a pull request exists, and read validations, logs and runs.
//! One handler, two scopes: a local repository over stdio (`slipway mcp`, no server needed)
//! and the server's projects over streamable HTTP (`/mcp`, bearer token, role-checked).

mod error;
pub mod http;
pub mod report;
mod runs;
pub mod sessions;
mod tools;
mod validate;

use error::ToolError;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use slipway_core::validation::StepName;
use slipway_core::{Role, ValidationId};
use slipway_engine::Engine;
use slipway_store::{Store, ValidationRecord};
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use error::ToolError as Error;
pub use report::Report;

/// The protocol versions spoken: 2025-06-18 and later.
const PROTOCOL_VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
    ProtocolVersion::V_2026_07_28,
];

/// A boxed future, for the local repositories' trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How `slipway mcp` submits a local repository: the same code path as `slipway validate`.
pub trait LocalRepos: Send + Sync + 'static {
    /// Records and queues a validation of the HEAD of the repository at `path`, merged onto
    /// `base` when given. A bad path or base is a [`ToolError::BadArgument`].
    fn submit<'a>(
        &'a self,
        path: &'a str,
        base: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ValidationRecord, ToolError>>;
}

/// What the tools act on.
#[derive(Clone)]
pub enum Scope {
    /// Repositories on this machine (stdio): every tool allowed, no projects.
    Local(Arc<dyn LocalRepos>),
    /// The server's projects (HTTP): the caller's role decides.
    Server,
}

/// Who calls over HTTP: put in the request's extensions by the server's authentication.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    /// As lists show who started something: "token ci-bot".
    pub name: String,
}

/// The MCP server's handler.
#[derive(Clone)]
pub struct SlipwayMcp {
    store: Store,
    engine: Engine,
    scope: Scope,
}

impl SlipwayMcp {
    pub fn new(store: Store, engine: Engine, scope: Scope) -> Self {
        Self {
            store,
            engine,
            scope,
        }
    }

    /// The caller of a request: over stdio the local user (who may do anything the tools
    /// offer); over HTTP the authenticated token, which the server always puts there.
    fn caller(&self, context: &RequestContext<RoleServer>) -> Result<Caller, ToolError> {
        match self.scope {
            Scope::Local(_) => Ok(Caller {
                role: Role::Admin,
                name: "slipway mcp".into(),
            }),
            Scope::Server => context
                .extensions
                .get::<::http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Caller>())
                .cloned()
                .ok_or_else(|| {
                    ToolError::Slipway("the request reached the tools unauthenticated".into())
                }),
        }
    }

    async fn call(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ToolError> {
        let name = request.name.as_ref();
        if !tools::list(&self.scope).iter().any(|t| t.name == name) {
            let names: Vec<_> = tools::list(&self.scope)
                .into_iter()
                .map(|t| t.name.to_string())
                .collect();
            return Err(ToolError::BadArgument(format!(
                "there is no tool '{name}' here; call one of {}",
                names.join(", ")
            )));
        }
        let caller = self.caller(&context)?;
        let required = tools::required_role(name);
        if !caller.role.allows(required) {
            return Err(ToolError::Forbidden(format!(
                "{name} needs a token with the {required} role; yours has {}",
                caller.role
            )));
        }
        let arguments = request.arguments;
        match name {
            "validate" => validate::call(self, arguments, &caller, context).await,
            "get_validation" => {
                let args: tools::ValidationArgs = tools::parse(name, arguments)?;
                let record = self.validation(args.id).await?;
                report_result(&self.report(&record).await?)
            }
            "get_logs" => self.logs(tools::parse(name, arguments)?).await,
            "list_projects" => {
                let _: tools::NoArgs = tools::parse(name, arguments)?;
                runs::list_projects(&self.store).await
            }
            "start_run" => runs::start(self, tools::parse(name, arguments)?, &caller).await,
            "get_run" => {
                let args: tools::RunArgs = tools::parse(name, arguments)?;
                runs::get(self, args.id).await
            }
            "reply_to_run" => runs::reply(self, tools::parse(name, arguments)?).await,
            other => Err(ToolError::Slipway(format!("tool {other} has no handler"))),
        }
    }

    /// Serves the tools on stdin and stdout until the client closes them (or `stop` fires).
    pub async fn serve_stdio(self, stop: CancellationToken) -> Result<(), String> {
        use rmcp::ServiceExt;
        let service = self
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| format!("the MCP client did not start a session on stdio: {e}"))?;
        let cancel = service.cancellation_token();
        tokio::select! {
            ended = service.waiting() => ended.map(drop).map_err(|e| e.to_string()),
            _ = stop.cancelled() => {
                cancel.cancel();
                Ok(())
            }
        }
    }

    async fn validation(&self, id: i64) -> Result<ValidationRecord, ToolError> {
        self.store.validation(ValidationId(id)).await.map_err(|e| {
            ToolError::store(e, || {
                format!("there is no validation {id}; give the id `validate` returned")
            })
        })
    }

    /// The report of a validation; the path of its evidence is said only to a local user.
    /// Every text of the record is masked with its project's secrets, as its logs are.
    async fn report(&self, record: &ValidationRecord) -> Result<Report, ToolError> {
        let record = &self.engine.masked_validation(record.clone()).await?;
        let dir = self.engine.artifacts_dir(record.id);
        let evidence = dir.is_dir().then_some(dir.as_path());
        let analysis = self.engine.analysis_evidence(record.id).await;
        let mut report = Report::build(&self.store, record, evidence, analysis).await?;
        if let Scope::Server = self.scope {
            report.artifacts = None;
        }
        Ok(report)
    }

    async fn logs(&self, args: tools::LogsArgs) -> Result<CallToolResult, ToolError> {
        const DEFAULT: u32 = 200;
        const MOST: u32 = 1_000;
        let step = args
            .step
            .as_deref()
            .map(|text| {
                text.parse::<StepName>().map_err(|_| {
                    ToolError::BadArgument(format!(
                        "step: '{text}' is not a step; send one of checkout, setup, build, \
                         deploy, test, ui, analysis, judge, merge, or leave it out"
                    ))
                })
            })
            .transpose()?;
        let limit = match args.limit {
            None => DEFAULT,
            Some(limit @ 1..=MOST) => limit,
            Some(other) => {
                return Err(ToolError::BadArgument(format!(
                    "limit: {other} is out of range; send 1 to {MOST}"
                )))
            }
        };
        let after = args.after.unwrap_or(0);
        if after < 0 {
            return Err(ToolError::BadArgument(
                "after: send 0 or a sequence number a page gave as next_after".into(),
            ));
        }
        let record = self.validation(args.id).await?;
        let mut lines = self.store.logs(record.id, step, after, limit + 1).await?;
        let more = lines.len() > limit as usize;
        lines.truncate(limit as usize);
        let page = tools::LogPage {
            next_after: lines.last().map_or(after, |l| l.seq),
            more,
            lines: lines
                .into_iter()
                .map(|l| tools::LogLineOut {
                    seq: l.seq,
                    step: l.step,
                    line: l.line,
                })
                .collect(),
        };
        let text = format!(
            "{} line(s) of validation {}{}:\n{}",
            page.lines.len(),
            args.id,
            if page.more {
                format!(" (more after {})", page.next_after)
            } else {
                String::new()
            },
            page.lines
                .iter()
                .map(|l| format!("[{}] {}", l.step, l.line))
                .collect::<Vec<_>>()
                .join("\n")
        );
        structured(&page, text)
    }
}

/// A result with `value` as structured content and `text` for clients that read only text.
fn structured<T: serde::Serialize>(value: &T, text: String) -> Result<CallToolResult, ToolError> {
    let value =
        serde_json::to_value(value).map_err(|e| ToolError::Slipway(format!("serialize: {e}")))?;
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(value);
    Ok(result)
}

fn report_result(report: &Report) -> Result<CallToolResult, ToolError> {
    structured(report, report.summary())
}

impl ServerHandler for SlipwayMcp {
    fn get_info(&self) -> ServerConfig {
        let instructions = match self.scope {
            Scope::Local(_) => {
                "Slipway validates a local repository's HEAD commit in a sandbox, as its gate \
                 would before a merge. Commit, then call validate with the repository's path \
                 (and base, e.g. main) before you open a pull request; fix what the failing \
                 step's log tail and the findings say, and validate again."
            }
            Scope::Server => {
                "Slipway gates this server's projects: validate a pushed branch or commit \
                 before you open a pull request, read validations and their logs, and start or \
                 answer agent runs. list_projects names the projects."
            }
        };
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("slipway", env!("CARGO_PKG_VERSION")))
            .with_instructions(instructions)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Owned(PROTOCOL_VERSIONS.to_vec())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        // A caller sees the tools its role may call.
        let role = self
            .caller(&context)
            .map(|c| c.role)
            .unwrap_or(Role::Viewer);
        let tools = tools::list(&self.scope)
            .into_iter()
            .filter(|t| role.allows(tools::required_role(&t.name)))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let result = match self.call(request, context).await {
            Ok(result) => result,
            Err(error) => {
                if let ToolError::Slipway(message) = &error {
                    tracing::error!(%message, "an MCP tool failed");
                }
                error.into_result()
            }
        };
        Ok(result.into())
    }
}
