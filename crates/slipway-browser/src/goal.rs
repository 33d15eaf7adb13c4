//! A goal check's steps: at each, the page's compact state goes to a [`Planner`] (the
//! model), which answers one action; the action is taken, confined like a scripted check's
//! (the same blocked hosts; navigation only to the app's origin). The check ends when the
//! planner says done, or fails when the steps run out.

use crate::check::{eval, host_of, js, settle, take, StepTime};
use crate::page_state::{page_state, INDEX_ATTRIBUTE};
use slipway_core::ui::UiStep;
pub use slipway_core::ui_goal::GoalStep;
use slipway_core::ui_goal::{GoalAction, PageState, Planned};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// Chooses the next action (a model, behind it). `Err` is the model's failure (no usable
/// answer), never the page's.
pub trait Planner: Send {
    fn next<'a>(
        &'a mut self,
        goal: &'a str,
        state: &'a PageState,
        history: &'a [GoalStep],
    ) -> Pin<Box<dyn Future<Output = Result<Planned, String>> + Send + 'a>>;
}

/// What a goal check is given and gathers.
pub(crate) struct GoalRun<'a> {
    pub planner: &'a mut dyn Planner,
    pub mask: &'a (dyn Fn(&str) -> String + Sync),
    pub steps: Vec<GoalStep>,
    pub model_error: Option<String>,
}

/// Takes steps towards `goal` until the planner says done; `Err` is the check's failure.
pub(crate) async fn pursue(
    page: &chromiumoxide::Page,
    goal: &str,
    max_steps: u32,
    base_url: &str,
    run: &mut GoalRun<'_>,
    timeline: &mut Vec<StepTime>,
) -> Result<(), String> {
    for number in 1..=max_steps {
        let started = Instant::now();
        let state = page_state(page, run.mask)
            .await
            .map_err(|e| format!("the page's state could not be read: {e}"))?;
        let planned = match run.planner.next(goal, &state, &run.steps).await {
            Ok(planned) => planned,
            Err(error) => {
                run.model_error = Some(error.clone());
                return Err(format!(
                    "step {number}: the model gave no usable action: {error}"
                ));
            }
        };
        let result = match &planned.action {
            GoalAction::Done { success } => {
                run.steps.push(GoalStep {
                    action: planned.action.describe(),
                    reason: planned.reason.clone(),
                    error: None,
                });
                timeline.push(StepTime {
                    step: format!("goal step {number}: {}", planned.action.describe()),
                    ms: started.elapsed().as_millis() as u64,
                    ok: *success,
                });
                return match success {
                    true => Ok(()),
                    false => Err(format!(
                        "the model found the goal not reached: {}",
                        planned.reason
                    )),
                };
            }
            action => act(page, action, base_url).await,
        };
        timeline.push(StepTime {
            step: format!("goal step {number}: {}", planned.action.describe()),
            ms: started.elapsed().as_millis() as u64,
            ok: result.is_ok(),
        });
        run.steps.push(GoalStep {
            action: planned.action.describe(),
            reason: planned.reason,
            error: result.err(),
        });
    }
    Err(format!(
        "the goal was not reached within {max_steps} steps (max_steps)"
    ))
}

/// The element the page state numbered `index`.
fn indexed(index: u32) -> String {
    format!("[{INDEX_ATTRIBUTE}=\"{index}\"]")
}

/// How long one action may wait for its element (it was there when the state was read).
const ACTION_WAIT: Duration = Duration::from_secs(5);

async fn act(
    page: &chromiumoxide::Page,
    action: &GoalAction,
    base_url: &str,
) -> Result<(), String> {
    let step = match action {
        GoalAction::Click { index } => UiStep::Click {
            click: indexed(*index),
        },
        GoalAction::Fill { index, text } => UiStep::Fill {
            fill: indexed(*index),
            text: text.clone(),
        },
        GoalAction::Select { index, value } => {
            let script = format!(
                "(() => {{ const e = document.querySelector({}); if (!e || !e.options) return false; \
                 const o = [...e.options].find(o => o.value === {v} || o.text.trim() === {v}); \
                 if (!o) return false; e.value = o.value; \
                 e.dispatchEvent(new Event('input', {{bubbles: true}})); \
                 e.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
                js(&indexed(*index)),
                v = js(value)
            );
            return match eval::<bool>(page, &script).await? {
                true => Ok(()),
                false => Err(format!("[{index}] has no option {value:?}")),
            };
        }
        GoalAction::Press { key } => {
            let key = if key == "Space" { " " } else { key.as_str() };
            let focused = match page.find_element(":focus").await {
                Ok(element) => element,
                Err(_) => page.find_element("body").await.map_err(|e| e.to_string())?,
            };
            focused.press_key(key).await.map_err(|e| e.to_string())?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            return settle(page).await;
        }
        GoalAction::Navigate { path } => {
            let url = format!("{base_url}{path}");
            // Checked again on the whole URL: only the service's own origin.
            if host_of(&url) != host_of(base_url) || !url.starts_with(base_url) {
                return Err(format!("{path} is not on the app's origin"));
            }
            page.goto(url.as_str()).await.map_err(|e| e.to_string())?;
            return settle(page).await;
        }
        GoalAction::Done { .. } => return Ok(()),
    };
    match tokio::time::timeout(ACTION_WAIT, take(page, &step)).await {
        Ok(done) => done,
        Err(_) => Err(format!("{} is no longer on the page", step.describe())),
    }
}
