//! Projects and their one-transaction deletion.

use crate::{from_millis, now_millis, Store, StoreError};
use slipway_core::{Project, ProjectDraft, ProjectId, RepoLocation};
use std::sync::Arc;

#[derive(sqlx::FromRow)]
struct ProjectRow {
    id: i64,
    name: String,
    description: String,
    repo: String,
    default_branch: String,
    created_at: i64,
    updated_at: i64,
}

impl From<ProjectRow> for Project {
    fn from(row: ProjectRow) -> Self {
        Project {
            id: ProjectId(row.id),
            name: row.name,
            description: row.description,
            location: RepoLocation::from_stored(&row.repo),
            repo: row.repo,
            default_branch: row.default_branch,
            created_at: from_millis(row.created_at),
            updated_at: from_millis(row.updated_at),
        }
    }
}

const COLUMNS: &str = "id, name, description, repo, default_branch, created_at, updated_at";

fn name_conflict(error: sqlx::Error, name: &str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!(
            "a project named '{name}' already exists; choose another name"
        )),
        _ => StoreError::Database(error),
    }
}

impl Store {
    /// Stores a validated draft.
    pub async fn create_project(&self, draft: &ProjectDraft) -> Result<Project, StoreError> {
        let now = now_millis();
        let row: ProjectRow = sqlx::query_as(&format!(
            "INSERT INTO projects (name, description, repo, default_branch, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        ))
        .bind(&draft.name)
        .bind(&draft.description)
        .bind(&draft.repo)
        .bind(&draft.default_branch)
        .bind(now)
        .bind(now)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| name_conflict(e, &draft.name))?;
        self.projects.invalidate();
        self.caches_changed().await?;
        Ok(row.into())
    }

    /// Every project, by id. Served from memory between writes.
    pub async fn list_projects(&self) -> Result<Arc<[Project]>, StoreError> {
        if let Some(projects) = self.projects.get() {
            return Ok(projects);
        }
        let generation = self.projects.generation();
        let rows: Vec<ProjectRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM projects ORDER BY id"))
                .fetch_all(&self.pool)
                .await?;
        let projects: Arc<[Project]> = rows.into_iter().map(Project::from).collect();
        self.projects.fill(generation, projects.clone());
        Ok(projects)
    }

    pub async fn project(&self, id: ProjectId) -> Result<Project, StoreError> {
        if let Some(projects) = self.projects.get() {
            // A miss asks the database: another process may have just created it.
            if let Ok(i) = projects.binary_search_by_key(&id, |p| p.id) {
                return Ok(projects[i].clone());
            }
        }
        let row: Option<ProjectRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM projects WHERE id = $1"))
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await?;
        row.map(Project::from).ok_or(StoreError::NotFound)
    }

    /// The projects on the GitHub repository `owner/name` (case-insensitive, as GitHub is).
    pub async fn projects_on_github_repo(
        &self,
        full_name: &str,
    ) -> Result<Vec<Project>, StoreError> {
        let projects = self.list_projects().await?;
        Ok(projects
            .iter()
            .filter(|p| p.repo.eq_ignore_ascii_case(full_name))
            .cloned()
            .collect())
    }

    /// Replaces a project's fields with a validated draft.
    pub async fn update_project(
        &self,
        id: ProjectId,
        draft: &ProjectDraft,
    ) -> Result<Project, StoreError> {
        let row: Option<ProjectRow> = sqlx::query_as(&format!(
            "UPDATE projects SET name = $1, description = $2, repo = $3, default_branch = $4, updated_at = $5
             WHERE id = $6 RETURNING {COLUMNS}"
        ))
        .bind(&draft.name)
        .bind(&draft.description)
        .bind(&draft.repo)
        .bind(&draft.default_branch)
        .bind(now_millis())
        .bind(id.0)
        .fetch_optional(&self.writer)
        .await
        .map_err(|e| name_conflict(e, &draft.name))?;
        self.projects.invalidate();
        self.caches_changed().await?;
        row.map(Project::from).ok_or(StoreError::NotFound)
    }

    /// Deletes a project with its secrets and settings, all or nothing.
    pub async fn delete_project(&self, id: ProjectId) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM secrets WHERE project_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM project_settings WHERE project_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        self.projects.invalidate();
        self.caches_changed().await?;
        Ok(())
    }
}
