// Slipway's dashboard: dialogs, tabs and live updates over GET /ws. No framework.
// The page is rendered at event `data-after`; the stream resumes right after it, and after a
// dropped connection it resumes after the last event seen, so nothing is missed.

const body = document.body;
const projectId = Number(body.dataset.project || 0);
const page = body.dataset.page;
const liveStatus = document.getElementById('live-status');

export const live = { socket: null, after: Number(body.dataset.after || 0), retries: 0, received: 0, connections: 0 };
window.slipway = { live };

// Dialogs: native <dialog> keeps focus inside while open and closes on Escape.
document.addEventListener('click', (event) => {
  const opener = event.target.closest('[data-open]');
  if (opener) {
    const dialog = document.getElementById(opener.dataset.open);
    dialog.showModal();
    const first = dialog.querySelector('[role=tab][aria-selected=true], input:not([type=hidden]), textarea, select');
    if (first) first.focus();
  }
  const closer = event.target.closest('[data-close]');
  if (closer) closer.closest('dialog').close();
  const tab = event.target.closest('[role=tab]');
  if (tab) selectTab(tab);
});

function selectTab(tab) {
  const list = tab.closest('[role=tablist]');
  for (const other of list.querySelectorAll('[role=tab]')) {
    const selected = other === tab;
    other.setAttribute('aria-selected', String(selected));
    other.tabIndex = selected ? 0 : -1;
    document.getElementById(other.getAttribute('aria-controls')).hidden = !selected;
  }
  // The agent and switches belong to no tab: they step aside on the secrets and variables tabs.
  const apart = tab.id === 'tab-secrets' || tab.id === 'tab-variables';
  for (const part of list.parentElement.querySelectorAll('[data-settings-only]')) part.hidden = apart;
  // Notifications save per target, outside the settings' one form.
  const form = list.parentElement.querySelector('#settings-form');
  if (form) form.hidden = tab.id === 'tab-notifications';
  tab.focus();
}

document.addEventListener('keydown', (event) => {
  const tab = event.target.closest && event.target.closest('[role=tab]');
  if (!tab || !['ArrowLeft', 'ArrowRight', 'Home', 'End'].includes(event.key)) return;
  const tabs = [...tab.closest('[role=tablist]').querySelectorAll('[role=tab]')];
  const at = tabs.indexOf(tab);
  const next = { ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: tabs.length - 1 }[event.key];
  selectTab(tabs[(next + tabs.length) % tabs.length]);
  event.preventDefault();
});

// An agent choice shows only the fields of the chosen kind (a command's line, Codegen's model).
function showAgentFields(choice) {
  for (const part of choice.form.querySelectorAll('[data-agent]')) part.hidden = part.dataset.agent !== choice.value;
}
for (const choice of document.querySelectorAll('[data-agent-choice]')) {
  showAgentFields(choice);
  choice.addEventListener('change', () => showAgentFields(choice));
}

// The new-project dialog's repositories: searched on the server as the user types (GitHub's
// list is paged there); the datalist offers the matches, typing a name by hand still works.
const repoList = document.querySelector('datalist[data-source]');
const repoInput = repoList && document.querySelector(`input[list="${repoList.id}"]`);
if (repoInput) {
  let timer = null;
  let asked = 0;
  const search = async () => {
    const query = repoInput.value.trim();
    if (query.startsWith('/')) return; // a local path
    const ask = ++asked;
    try {
      const response = await fetch(`${repoList.dataset.source}?q=${encodeURIComponent(query)}`, { headers: { accept: 'application/json' } });
      if (!response.ok || ask !== asked) return;
      const found = await response.json();
      repoList.replaceChildren(...found.repositories.map((name) => Object.assign(document.createElement('option'), { value: name })));
      const hint = document.getElementById('np-repo-hint');
      if (hint && found.total > 0) {
        hint.textContent = query
          ? `${found.matching} of the ${found.total} GitHub repositories match${found.matching > found.repositories.length ? ` (the first ${found.repositories.length} shown)` : ''}; or give a local path.`
          : `Pick one of the ${found.total} GitHub repositories Slipway can reach, or give a local path.`;
      }
    } catch (error) {
      // The list is a convenience: typing owner/name by hand still works.
    }
  };
  repoInput.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(search, 200); });
  repoInput.addEventListener('focus', () => { if (!repoList.dataset.loaded) { repoList.dataset.loaded = '1'; search(); } });
}

const selector = document.getElementById('project-selector');
if (selector) selector.addEventListener('change', () => {
  location.href = selector.value ? `/projects/${selector.value}` : '/';
});

// ANSI colours as spans; the text itself is escaped.
const COLOURS = { 30: 'black', 31: 'red', 32: 'green', 33: 'yellow', 34: 'blue', 35: 'magenta', 36: 'cyan', 37: 'white' };
function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
export function ansiToHtml(line) {
  let out = '';
  let open = false;
  for (const part of line.split(/(\x1b\[[0-9;]*[A-Za-z])/)) {
    const sgr = /^\x1b\[([0-9;]*)m$/.exec(part);
    if (sgr) {
      if (open) { out += '</span>'; open = false; }
      const classes = sgr[1].split(';').map((code) => {
        if (code === '1') return 'ansi-bold';
        const n = Number(code);
        const colour = COLOURS[n] || COLOURS[n - 60];
        return colour ? `ansi-${colour}` : null;
      }).filter(Boolean);
      if (classes.length) { out += `<span class="${classes.join(' ')}">`; open = true; }
    } else if (!part.startsWith('\x1b')) {
      out += escapeHtml(part);
    }
  }
  return open ? `${out}</span>` : out;
}

// Logs: the page holds the tail; earlier lines load on demand; at most MAX_LINES stay in
// the document so that a long log stays fast.
const MAX_LINES = 5000;
const log = document.getElementById('log');

function lineElement(seq, step, html) {
  const div = document.createElement('div');
  div.className = 'line';
  div.id = `L${seq}`;
  div.dataset.seq = seq;
  div.dataset.step = step;
  div.innerHTML = `<a class="ln" href="#L${seq}" aria-label="Line ${seq}">${seq}</a><span class="seq">${escapeHtml(step)}</span><span class="text">${html}</span>`;
  if (search.term && div.textContent.toLowerCase().includes(search.term)) div.classList.add('match');
  hangIndent(div);
  return div;
}

// A wrapped line continues under its own indent, not at the gutter's edge.
function hangIndent(line) {
  const text = line.querySelector('.text');
  if (!text) return;
  const indent = /^[ \t]*/.exec(text.textContent)[0].replaceAll('\t', '    ').length;
  if (indent) text.style.setProperty('--indent', `${Math.min(indent, 40)}ch`);
}
if (log) for (const line of log.querySelectorAll('.line')) hangIndent(line);

// The errors of the failed steps' output: the lines that say error (or else each failed
// step's last line). The page opens at the first; ↑ and ↓ step between them.
const ERROR = /\b(error|errors|fail|failed|failure|failures|fatal|panicked|panic|exception|traceback|denied|not ok)\b/i;
const NO_ERROR = /\b0 (failed|errors?|failures)\b/i;
const errors = { lines: [], at: -1 };
function markErrors() {
  if (!log) return;
  const failedSteps = new Set([...document.querySelectorAll('[data-failed-step]')].map((f) => f.dataset.failedStep));
  errors.lines = [];
  for (const step of failedSteps) {
    const lines = [...log.querySelectorAll('.line')].filter((l) => l.querySelector('.seq')?.textContent === step);
    let hits = lines.filter((l) => ERROR.test(l.textContent) && !NO_ERROR.test(l.textContent));
    if (!hits.length && lines.length) hits = [lines[lines.length - 1]];
    errors.lines.push(...hits);
  }
  errors.lines.sort((a, b) => Number(a.dataset.seq) - Number(b.dataset.seq));
  for (const line of log.querySelectorAll('.line.error')) line.classList.remove('error');
  for (const line of errors.lines) line.classList.add('error');
  const nav = document.getElementById('error-nav');
  if (nav) nav.hidden = !errors.lines.length;
  showError(errors.at < 0 ? -1 : Math.min(errors.at, errors.lines.length - 1), false);
}
function showError(at, scroll = true) {
  errors.at = at;
  const count = document.getElementById('error-count');
  if (count) count.textContent = errors.lines.length ? `${at < 0 ? '–' : at + 1} of ${errors.lines.length} error line${errors.lines.length === 1 ? '' : 's'}` : '';
  for (const line of log.querySelectorAll('.line.current-error')) line.classList.remove('current-error');
  const line = errors.lines[at];
  if (!line) return;
  line.classList.add('current-error');
  if (scroll) {
    // The log scrolls inside its box; the page shows the box.
    log.scrollTop += line.getBoundingClientRect().top - log.getBoundingClientRect().top - log.clientHeight / 3;
    log.scrollIntoView({ block: 'nearest' });
  }
}
document.addEventListener('click', (event) => {
  const step = { 'next-error': 1, 'prev-error': -1 }[event.target.id];
  if (!step || !errors.lines.length) return;
  showError((errors.at + step + errors.lines.length) % errors.lines.length);
});

// Log search: matching lines are marked and counted; Enter goes to the next one.
const search = { term: '', at: -1 };
const searchBox = document.getElementById('log-search');
function markMatches() {
  const lines = log ? [...log.querySelectorAll('.line')] : [];
  let count = 0;
  for (const line of lines) {
    const hit = search.term !== '' && line.textContent.toLowerCase().includes(search.term);
    line.classList.toggle('match', hit);
    if (hit) count += 1;
  }
  const said = document.getElementById('log-matches');
  if (said) said.textContent = search.term ? `${count} line${count === 1 ? '' : 's'}` : '';
  search.at = -1;
}
if (searchBox) {
  searchBox.addEventListener('input', () => { search.term = searchBox.value.trim().toLowerCase(); markMatches(); });
  searchBox.addEventListener('keydown', (event) => {
    if (event.key !== 'Enter') return;
    event.preventDefault();
    const hits = [...log.querySelectorAll('.line.match')];
    if (!hits.length) return;
    search.at = (search.at + 1) % hits.length;
    for (const hit of hits) hit.classList.remove('current');
    hits[search.at].classList.add('current');
    hits[search.at].scrollIntoView({ block: 'center' });
  });
}

function appendLine(event) {
  if (!log || event.seq <= Number(log.dataset.lastSeq || 0)) return;
  const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 40;
  log.append(lineElement(event.seq, event.step, ansiToHtml(event.line)));
  log.dataset.lastSeq = event.seq;
  while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
  earlierButton().dataset.before = log.firstElementChild.dataset.seq;
  if (Number(log.firstElementChild.dataset.seq) > 1) earlierButton().hidden = false;
  if (stick) log.scrollTop = log.scrollHeight;
}

function earlierButton() {
  let button = document.getElementById('load-earlier');
  if (!button) {
    button = document.createElement('button');
    button.type = 'button';
    button.id = 'load-earlier';
    button.className = 'secondary';
    button.textContent = 'Load earlier lines';
    button.hidden = true;
    log.before(button);
  }
  return button;
}

document.addEventListener('click', async (event) => {
  if (event.target.id !== 'load-earlier') return;
  const button = event.target;
  const validation = document.getElementById('validation').dataset.validationId;
  const response = await fetch(`/validations/${validation}/lines?before=${button.dataset.before}`);
  const { lines } = await response.json();
  const height = log.scrollHeight;
  log.prepend(...lines.map((l) => lineElement(l.seq, l.step, l.html)));
  log.scrollTop += log.scrollHeight - height;
  if (lines.length) button.dataset.before = lines[0].seq;
  button.hidden = !lines.length || lines[0].seq <= 1;
});

// Re-render the page's main part in place (no reload), unless a dialog is open: then once it closes.
let refreshPending = false;
async function refreshMain() {
  if (document.querySelector('dialog[open]')) { refreshPending = true; return; }
  refreshPending = false;
  const response = await fetch(location.pathname + location.search, { headers: { accept: 'text/html' } });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), 'text/html');
  // A validation's log is built from the stream itself; only its steps and header re-render.
  const parts = page === 'validation' ? ['steps', 'validation', 'facts', 'outcome', 'browser-checks'] : ['main'];
  for (const id of parts) {
    const now = document.getElementById(id);
    const next = fresh.getElementById(id);
    if (now && next) now.replaceWith(next);
  }
  if (page === 'validation') markErrors();
  tick();
}
document.addEventListener('close', () => { if (refreshPending) refreshMain(); }, true);

let refreshTimer = null;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refreshMain, 150);
}

function setStatus(element, status) {
  if (!element) return;
  element.className = element.className.replace(/\bstatus-\S+/g, '').trim() + ` status-${status}`;
}

const label = (state) => String(state).replaceAll('_', ' ');

// A status badge: its class and, when it has one, its label.
function showStatus(badge, status) {
  if (!badge) return;
  setStatus(badge, status);
  const text = badge.querySelector('.label');
  if (text) text.textContent = label(status);
  else badge.textContent = label(status);
}

function onValidationUpdate(event) {
  const here = document.getElementById('validation');
  if (page === 'validation' && here && Number(here.dataset.validationId) === event.validation_id) {
    if (event.step_index !== null && event.step_index !== undefined) {
      const step = document.querySelector(`[data-step-index="${event.step_index}"]`);
      if (step) {
        setStatus(step, event.step_status);
        step.querySelector('.step-status').textContent = label(event.step_status);
      }
    }
    showStatus(document.getElementById('overall-badge'), event.overall_status);
    if (['passed', 'failed', 'error', 'cancelled'].includes(event.overall_status)) document.getElementById('cancel-validation')?.remove();
    if (event.step_index === null || ['running', 'passed', 'failed', 'error'].includes(event.step_status)) refreshSoon();
    return;
  }
  const row = document.querySelector(`[data-validation-id="${event.validation_id}"] [data-overall]`);
  if (row) showStatus(row, event.overall_status);
  if (page === 'home') refreshSoon();
  else if (!row || event.step_index === null) refreshSoon();
}

function handle(event) {
  live.received += 1;
  switch (event.type) {
    case 'validation_update': onValidationUpdate(event); break;
    case 'log': if (page === 'validation' && document.getElementById('validation')?.dataset.validationId == event.validation_id) appendLine(event); break;
    case 'agent_run_update':
    case 'pr_notification': refreshSoon(); break;
    default: break;
  }
}

function subscriptions() {
  if (page === 'home') return [...document.querySelectorAll('[data-project-id]')].map((e) => Number(e.dataset.projectId));
  return projectId ? [projectId] : [];
}

function connect() {
  const projects = subscriptions();
  if (!projects.length) { if (liveStatus) liveStatus.textContent = ''; return; }
  const socket = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  live.socket = socket;
  socket.onopen = () => {
    live.retries = 0;
    live.connections += 1;
    liveStatus.textContent = 'live';
    for (const project of projects) socket.send(JSON.stringify({ type: 'subscribe_project', project_id: project, after: live.after }));
  };
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === 'pong' || event.type === 'error') return;
    if (event.event_id > live.after) live.after = event.event_id;
    handle(event);
  };
  socket.onclose = () => {
    liveStatus.textContent = 'reconnecting…';
    const delay = Math.min(30000, 500 * 2 ** live.retries) * (0.5 + Math.random() / 2);
    live.retries += 1;
    setTimeout(connect, delay);
  };
}

setInterval(() => {
  if (live.socket && live.socket.readyState === WebSocket.OPEN) {
    live.socket.send(JSON.stringify({ type: 'ping', timestamp: new Date().toISOString() }));
  }
}, 20000);

// Durations of what still runs count on, every second, from their start.
function took(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor(s / 60) % 60).padStart(2, '0')} min`;
}
function tick() {
  for (const cell of document.querySelectorAll('[data-since]')) cell.textContent = took(Date.now() - Date.parse(cell.dataset.since));
  relativeTimes();
}

// Every <time datetime> reads relative ("3 min ago"), the exact moment in the reader's own
// time zone on hover.
function ago(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  const days = Math.floor(s / 86400);
  return days === 1 ? 'yesterday' : `${days} days ago`;
}
function relativeTimes() {
  for (const element of document.querySelectorAll('time[datetime]')) {
    const at = Date.parse(element.dateTime);
    if (Number.isNaN(at)) continue;
    element.textContent = ago(Date.now() - at);
    if (!element.dataset.exact) {
      element.dataset.exact = '1';
      element.title = new Date(at).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'long' });
    }
  }
}
relativeTimes();
setInterval(tick, 1000);

// A link to one line of the log (#L123) shows that line; otherwise the first error line, as
// GitHub Actions opens a failed job; otherwise the log's end.
const linked = location.hash.startsWith('#L') ? document.getElementById(location.hash.slice(1)) : null;
markErrors();
if (linked) linked.scrollIntoView({ block: 'center' });
else if (errors.lines.length) showError(0);
else if (log) log.scrollTop = log.scrollHeight;
connect();

// A link to `#some-dialog` (a card's Agent run) opens that dialog.
if (location.hash.length > 1 && !location.hash.startsWith('#L')) {
  const dialog = document.getElementById(location.hash.slice(1));
  if (dialog && dialog.showModal) dialog.showModal();
}

// A form the server refused comes back with its dialog open, holding what was typed.
for (const dialog of document.querySelectorAll('dialog[data-open-on-load]')) {
  if (!dialog.open) dialog.showModal();
  const tab = dialog.dataset.tabOnLoad && document.getElementById(dialog.dataset.tabOnLoad);
  if (tab) selectTab(tab);
}
