//! The analysis step's findings on a validation's page, grouped by file, each with the
//! line's code (masked when it was kept).

use crate::state::AppState;
use slipway_core::ValidationId;

pub struct FindingView {
    pub line: String,
    pub severity: String,
    pub rule: String,
    pub message: String,
    pub code: Option<String>,
}

pub struct FileFindings {
    pub file: String,
    pub findings: Vec<FindingView>,
}

/// The findings of `analysis.json`, in its order (by file, then line), grouped by file.
pub async fn findings_of(state: &AppState, id: ValidationId) -> Vec<FileFindings> {
    let Some(evidence) = state.engine.analysis_evidence(id).await else {
        return Vec::new();
    };
    let mut files: Vec<FileFindings> = Vec::new();
    for finding in evidence["findings"].as_array().into_iter().flatten() {
        let text = |key: &str| finding[key].as_str().unwrap_or_default().to_owned();
        let file = match text("file") {
            file if file.is_empty() => "(the change)".to_owned(),
            file => file,
        };
        let view = FindingView {
            line: finding["line"]
                .as_u64()
                .map(|l| l.to_string())
                .unwrap_or_default(),
            severity: text("severity"),
            rule: text("rule"),
            message: text("message"),
            code: finding["code"].as_str().map(str::to_owned),
        };
        match files.last_mut().filter(|f| f.file == file) {
            Some(group) => group.findings.push(view),
            None => files.push(FileFindings {
                file,
                findings: vec![view],
            }),
        }
    }
    files
}
