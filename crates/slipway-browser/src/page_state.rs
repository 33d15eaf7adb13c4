//! The compact state of a page a model is shown at each step of a goal check: URL, title,
//! visible text (trimmed) and the visible interactive elements, numbered in document order
//! (the number is written on the element, so an action finds exactly what the model saw).
//! One script evaluated in the page; its output is bounded there and again here.

use slipway_core::ui_goal::{PageElement, PageState};

/// The most visible text and elements kept, and the longest label.
pub const TEXT_CHARS: usize = 3_000;
pub const MAX_ELEMENTS: usize = 150;
const LABEL_CHARS: usize = 100;

/// The attribute an element's index is written to.
pub const INDEX_ATTRIBUTE: &str = "data-slipway-index";

const SCRIPT: &str = r#"(() => {
  const MAX = __MAX__, LABEL = __LABEL__, TEXT = __TEXT__;
  const cut = (s, n) => (s || '').replace(/\s+/g, ' ').trim().slice(0, n);
  for (const old of document.querySelectorAll('[data-slipway-index]')) old.removeAttribute('data-slipway-index');
  const picked = document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary, [role=button], [role=link], [role=checkbox], [role=tab], [role=menuitem], [contenteditable=""], [contenteditable=true]');
  const implied = (e) => {
    const tag = e.tagName.toLowerCase(), type = (e.getAttribute('type') || '').toLowerCase();
    if (tag === 'a') return 'link';
    if (tag === 'button' || tag === 'summary') return 'button';
    if (tag === 'select') return 'combobox';
    if (tag === 'textarea') return 'textbox';
    if (tag === 'input') {
      if (['submit', 'button', 'reset', 'image'].includes(type)) return 'button';
      if (type === 'checkbox' || type === 'radio') return type;
      return 'textbox';
    }
    return 'textbox';
  };
  const label = (e) => {
    const by = e.getAttribute('aria-labelledby');
    const named = by && document.getElementById(by);
    return cut(e.getAttribute('aria-label') || (named && named.innerText)
      || (e.labels && e.labels[0] && e.labels[0].innerText) || e.getAttribute('placeholder')
      || (e.tagName === 'INPUT' && ['submit', 'button'].includes(e.type) ? e.value : '')
      || e.innerText || e.getAttribute('title') || e.getAttribute('alt') || e.getAttribute('name') || '', LABEL);
  };
  const elements = [];
  for (const e of picked) {
    if (elements.length >= MAX) break;
    if (e.disabled) continue;
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const s = getComputedStyle(e);
    if (s.visibility === 'hidden' || s.display === 'none') continue;
    const index = elements.length;
    e.setAttribute('data-slipway-index', String(index));
    const field = ['INPUT', 'TEXTAREA', 'SELECT'].includes(e.tagName) && !['submit', 'button'].includes(e.type);
    const item = { index, role: e.getAttribute('role') || implied(e), label: label(e),
      kind: e.tagName === 'INPUT' ? (e.type || 'text') : '' };
    if (field) item.value = e.type === 'password' ? (e.value ? '••••' : '') : cut(e.value, LABEL);
    elements.push(item);
  }
  const text = document.body ? cut(document.body.innerText, TEXT) : '';
  return { url: location.href, title: cut(document.title, 200), text, elements };
})()"#;

/// The script, with its bounds.
fn script() -> String {
    SCRIPT
        .replace("__MAX__", &MAX_ELEMENTS.to_string())
        .replace("__LABEL__", &LABEL_CHARS.to_string())
        .replace("__TEXT__", &TEXT_CHARS.to_string())
}

/// How often the state is read again while the page is between documents.
const NAVIGATION_RETRIES: u32 = 20;

/// The script's answer, read again while a navigation has just replaced the document the
/// script was sent to (Chromium then knows no such context): that is the page moving on,
/// not a fault of the app's.
async fn read_settled(page: &chromiumoxide::Page) -> Result<PageState, String> {
    let mut tries = 0;
    loop {
        match crate::check::eval(page, &script()).await {
            Err(error) if tries < NAVIGATION_RETRIES && between_documents(&error) => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            read => return read,
        }
    }
}

/// Chromium's words for a script whose document was replaced under it.
fn between_documents(error: &str) -> bool {
    error.contains("Cannot find context with specified id")
        || error.contains("Execution context was destroyed")
        || error.contains("Inspected target navigated or closed")
}

/// The page's state, every string passed through `mask` and bounded again (the page is the
/// code's: it may have replaced the functions the script calls).
pub async fn page_state(
    page: &chromiumoxide::Page,
    mask: &(dyn Fn(&str) -> String + Sync),
) -> Result<PageState, String> {
    let raw: PageState = read_settled(page).await?;
    let bound = |text: &str, max: usize| -> String { mask(text).chars().take(max).collect() };
    Ok(PageState {
        url: bound(&raw.url, 2_000),
        title: bound(&raw.title, 200),
        text: bound(&raw.text, TEXT_CHARS),
        elements: raw
            .elements
            .into_iter()
            .take(MAX_ELEMENTS)
            .map(|e| PageElement {
                index: e.index,
                role: bound(&e.role, 40),
                label: bound(&e.label, LABEL_CHARS),
                kind: bound(&e.kind, 40),
                value: e.value.map(|v| bound(&v, LABEL_CHARS)),
            })
            .collect(),
    })
}
