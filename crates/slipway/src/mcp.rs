//! `slipway mcp`: the MCP server over stdio for repositories on this machine, with no
//! server: each `validate` goes the way of `slipway validate` (the same session, target and
//! submission), on one temporary store kept for the session.

use crate::validate::{local_target, Session};
use crate::Failure;
use slipway_mcp::{BoxFuture, Error as ToolError, LocalRepos, Scope, SlipwayMcp};
use slipway_store::ValidationRecord;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args)]
pub struct McpArgs {
    /// Do not keep or reuse setup snapshots
    #[arg(long)]
    no_cache: bool,
}

pub async fn run(args: McpArgs) -> Result<(), Failure> {
    let session = Arc::new(Session::open(args.no_cache).await?);
    let shutdown = CancellationToken::new();
    let workers = session.engine.spawn_workers(shutdown.clone());
    let handler = SlipwayMcp::new(
        session.store.clone(),
        session.engine.clone(),
        Scope::Local(Arc::new(Local(session.clone()))),
    );
    tokio::spawn(crate::stop_on_signal(shutdown.clone()));
    if let Err(error) = handler.serve_stdio(shutdown.clone()).await {
        tracing::warn!(%error, "the MCP session ended with an error");
    }
    // Whatever still runs is cancelled, and stops, before the temporary store goes.
    cancel_running(&session).await;
    shutdown.cancel();
    let _ = workers.await;
    Ok(())
}

/// Cancels the session's validations that have not ended.
async fn cancel_running(session: &Session) {
    let Ok(projects) = session.store.list_projects().await else {
        return;
    };
    for project in projects.iter() {
        let filter = slipway_store::ValidationFilter::default();
        let Ok(page) = session
            .store
            .list_validations(project.id, &filter, 500)
            .await
        else {
            continue;
        };
        for record in page.iter().filter(|v| !v.status.is_final()) {
            let _ = session.engine.cancel(record.id).await;
        }
    }
}

struct Local(Arc<Session>);

impl LocalRepos for Local {
    fn submit<'a>(
        &'a self,
        path: &'a str,
        base: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ValidationRecord, ToolError>> {
        Box::pin(async move {
            let (repo, target) = local_target(path, None, None).await.map_err(tool_error)?;
            self.0
                .submit(repo, target, base.map(str::to_owned), None, "slipway mcp")
                .await
                .map_err(tool_error)
        })
    }
}

/// A refusal is the caller's to fix; anything else is Slipway's own failure.
fn tool_error(failure: Failure) -> ToolError {
    match failure {
        Failure::Refused(error) => ToolError::BadArgument(format!("{error:#}")),
        Failure::Failed(error) => ToolError::Slipway(format!("{error:#}")),
        Failure::Exit(code) => ToolError::Slipway(format!("stopped with exit code {code}")),
    }
}
