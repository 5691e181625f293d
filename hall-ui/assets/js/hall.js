// The supervisor's hall view: the line live (stations, devices, current jobs, operators),
// queues by class and age, throughput and on-time, alerts; and the supervisor's commands:
// device pause/resume, job hold/release/reprioritise/cancel, custody co-signing, destruction
// witnessing, the shift's reconciliation; the people (accounts and their shift rosters: a
// supervisor manages operators, an admin everyone). Other roles (auditor, admin, monitor) see the line
// without the commands.
//
// The line changes several times a second on a busy hall, and the view changes with it in
// place: station cards are keyed by station, alerts by alert id, and only the text and
// attributes that changed are set. An element under the pointer is never replaced, so a press
// and its release land on the same button (they did not when the view was built anew on every
// snapshot, and most clicks on "Pause" were lost).
//
// `?wall=1`: the wall screen, for the hall's big screen: large type, every station in view, no
// commands and no controls.

import {
  Api, ApiError, $, h, render, announce, onSubmit, field, select, openStream, jobId,
  className, clock, age, shiftOf, READINESS, PHASE, catchPageErrors, debounce, parseSerials,
  expandRange, showStorage, setText, setAttr, setHidden, keyedList, noteButtons, unsteadyClick,
} from './common.js';
import { table, reconciliationView, serialLink as auditLink } from './reports.js';
import { Activity } from './activity.js';
import { throughputChart, chartData, HEIGHT } from './throughput.js';

catchPageErrors();

/** A serial as a link to its trace in the auditor view, opened beside the hall view. */
function serialLink(serial) {
  const a = auditLink(serial);
  if (a instanceof Node) {
    a.target = '_blank';
    a.rel = 'noopener';
  }
  return a;
}

/** Serials as links to their traces, separated by `sep`. */
function serialLinks(list, sep) {
  return list.flatMap((s, i) => (i ? [sep, serialLink(s)] : [serialLink(s)]));
}

/** The wall screen (`?wall=1`): large type, no commands, no controls. */
const WALL = ['1', 'true', 'yes', ''].includes(new URLSearchParams(window.location.search).get('wall'));
if (WALL) document.body.classList.add('wall');

const api = new Api('hallctl.hall');
const STAGES = [
  ['print', 'Print'],
  ['laminate', 'Laminate'],
  ['qc', 'QC'],
  ['dispatch', 'Dispatch'],
];
const CLASSES = [['normal', 'normal'], ['urgent', 'urgent'], ['fast_track', 'fast-track']];
const AGES = ['< 1 h', '1–4 h', '4–24 h', '≥ 24 h'];
const JOB_STATES = ['queued', 'held', 'needs_inspection', 'defect_reported', 'received', 'spoiled_requeued', 'printing',
  'printed', 'laminating', 'laminated', 'qc', 'ready', 'dispatched', 'cancelled'];

const state = {
  snap: null,
  stopStream: null,
  chart: null,
  chartKey: '',
  events: 0,
  tab: 'line',
};

const supervisor = () => !WALL && api.session && api.session.role === 'supervisor';
/** Who manages accounts: supervisors (operators') and admins (everyone's). */
const manager = () => !WALL && api.session && ['supervisor', 'admin'].includes(api.session.role);

// ---- sign in / out ---------------------------------------------------------------------------

onSubmit($('signin-form'), async (v, form) => {
  const s = await api.signIn(v.user.toUpperCase(), v.pin);
  form.elements.pin.value = '';
  await start();
  return `${s.user} signed in (${s.role})`;
});

$('sign-out').addEventListener('click', async () => {
  // Refused or not, this page signs out (only a station's session can be refused).
  await api.signOut().catch(() => api.forget());
  stop();
  showSignIn('Signed out.');
});

api.onSignedOut = () => {
  stop();
  showSignIn('Your session ended: sign in again.');
};

function showSignIn(message) {
  $('app').hidden = true;
  $('tabs').hidden = true;
  $('signin').hidden = false;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  $('stream').textContent = '';
  if (message) announce(message);
  $('si-user').focus();
}

async function start() {
  const me = await api.get('/session');
  if (me.role === 'operator') {
    await api.signOut();
    throw new ApiError(403, 'forbidden', 'operators work at station terminals (/station), not in the hall view');
  }
  $('signin').hidden = true;
  $('app').hidden = false;
  $('tabs').hidden = WALL;
  $('sign-out').hidden = false;
  $('who').textContent = `${me.user} (${me.role})`;
  document.body.dataset.role = me.role;
  buildForms();
  setHidden($('tab-people'), !manager());
  setRoles();
  state.stopStream = openStream(api, onEvent, onStreamState);
}

function stop() {
  if (state.stopStream) state.stopStream();
  state.stopStream = null;
  state.snap = null;
  openJob = null;
  forgetPin();
  people.list = [];
  keyedList($('people'), [], (u) => u.id, () => h('tr'), () => {});
  if (state.tab === 'people') showTab('line', false);
}

// Events move the open job on; a short poll catches a change no event names (and a stream
// that is reconnecting).
setInterval(() => refreshOpenJob(), 5000);

// ---- tabs (arrow keys move between them, as WAI-ARIA tabs do) --------------------------------

const tabs = [...document.querySelectorAll('[role=tab]')];
function showTab(id, focus) {
  for (const t of tabs) {
    const on = t.id === `tab-${id}`;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute('aria-controls')).hidden = !on;
    if (on && focus) t.focus();
  }
  state.tab = id;
  if (id === 'jobs') loadJobs().catch(showIn('jobs-table'));
  if (id === 'reconcile') loadReconciliation().catch(showIn('reconcile'));
  if (id === 'custody') drawSessions();
  if (id === 'people') loadPeople().catch(showPeopleError);
}
for (const t of tabs) {
  t.addEventListener('click', () => showTab(t.id.slice(4), false));
  t.addEventListener('keydown', (e) => {
    const shown = tabs.filter((x) => !x.hidden);
    const i = shown.indexOf(t);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: shown.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    showTab(shown[(next + shown.length) % shown.length].id.slice(4), true);
  });
}

function showIn(id) {
  return (e) => render($(id), h('p', { class: 'form-error', role: 'alert', text: e.message }));
}

// ---- the stream ------------------------------------------------------------------------------

function onStreamState(s, detail) {
  const el = $('stream');
  el.textContent = { live: 'live', connecting: 'connecting…', down: 'reconnecting…', offline: 'offline' }[s] || s;
  el.dataset.state = s;
  el.title = s === 'down' || s === 'offline' ? detail || '' : '';
}

function onEvent(name, data) {
  state.events += 1;
  document.body.dataset.events = String(state.events);
  if (name === 'snapshot') {
    setSnapshot(data);
    return;
  }
  if (name === 'storage') showStorage(data);
  noteActivity(name, data);
  // Events name what changed; the snapshot has the whole picture: fetch it, once per burst.
  refreshSoon();
  refreshOpenJob();
}

const refreshSoon = debounce(async () => {
  try {
    setSnapshot(await api.get('/line'));
  } catch (e) {
    if (!(e instanceof ApiError) || !e.sessionDead) announce(`Could not refresh the line: ${e.message}`);
  }
}, 200);

function setSnapshot(s) {
  // Never go back: a snapshot fetched before one the stream sent is older.
  if (state.snap && s.events < state.snap.events) return;
  state.snap = s;
  drawLine();
  if (state.tab === 'custody') drawSessions();
}

// ---- recent activity: the events as they come (ids and names only), a burst as one line ----

const activity = new Activity(12);

function noteActivity(name, d) {
  activity.add(name, d);
  keyedList($('activity'), activity.lines(), (a) => a.id,
    () => h('li', null, h('time'), h('span', { class: 'text' })),
    (li, a) => {
      setAttr(li, 'data-kind', a.kind);
      setAttr(li, 'data-second', a.second);
      setAttr(li, 'data-count', a.count);
      const t = li.firstElementChild;
      setAttr(t, 'datetime', a.at || '');
      setText(t, a.at ? new Date(a.at).toLocaleTimeString([], { hourCycle: 'h23' }) : '');
      setText(li.lastElementChild, ` ${a.text}`);
    });
}

// ---- the line --------------------------------------------------------------------------------

function drawLine() {
  const s = state.snap;
  keyedList($('diagram'), STAGES.map(([kind, title], i) => ({ kind, title, i })), (g) => g.kind,
    (g) => h('section', { class: 'stage', 'data-stage': g.kind, 'aria-labelledby': `stage-${g.kind}` },
      h('h2', { id: `stage-${g.kind}` }, g.title, h('span', { class: 'count', 'data-queued': g.kind })),
      h('ol', { class: 'stations' })),
    (section, g) => {
      setText(section.querySelector('.count'), `${s.queued[g.i]} waiting`);
      keyedList(section.querySelector('ol'), s.stations.filter((st) => st.kind === g.kind), (st) => st.id,
        newStationCard, updateStationCard);
    });
  showStorage(s.storage);
  drawAlerts(s.alerts || []);
  drawQueues(s);
  drawThroughput(s);
  noteButtons($('diagram'));
  noteButtons($('alerts'));
}

/** A step's phase on a card, in few words (the card's label has the whole phrase). */
const CARD_PHASE = { assigned: 'assigned', running: 'working', awaiting_confirmation: 'to be confirmed' };

/** A station's card, empty: `updateStationCard` fills it. */
function newStationCard() {
  return h('li', null, h('article', { class: 'station' },
    h('header', null, h('h3'), h('span', { class: 'badge' })),
    h('div', { class: 'op-line' },
      h('p', { class: 'op' }, h('span', { class: 'who' }), h('span', { class: 'held' })),
      // "Clear fault" comes and goes left of the toggle, which keeps its place at the right.
      h('div', { class: 'actions' },
        h('button', { type: 'button', 'data-role': 'clear', 'data-verb': 'clear-fault', text: 'Clear fault' }),
        h('button', { type: 'button', class: 'quiet', 'data-role': 'toggle' }))),
    h('p', { class: 'job' }, h('strong', { class: 'job-id' }), h('span', { class: 'class' }), h('span', { class: 'phase' }))));
}

function updateStationCard(li, st) {
  const card = li.firstElementChild;
  const w = st.work;
  const ready = st.readiness;
  const word = READINESS[ready] || ready;
  const phase = w ? PHASE[w.phase] || w.phase : '';
  setAttr(card, 'class', `station ready-${ready}`);
  setAttr(card, 'data-station', st.id);
  setAttr(card, 'data-readiness', ready);
  setAttr(card, 'data-phase', w ? w.phase : 'idle');
  setAttr(card, 'data-job', w ? jobId(w.job) : '');
  setAttr(card, 'aria-label', `${st.id}: ${word}${st.operator ? `, ${st.operator}` : ', nobody signed in'}${w ? `, job ${jobId(w.job)} ${phase}` : ', idle'}`);
  setText(card.querySelector('h3'), st.id);
  const badge = card.querySelector('.badge');
  setHidden(badge, !st.device);
  setAttr(badge, 'class', `badge state-${ready}`);
  setText(badge, st.device ? `${st.device} ${word}` : '');
  const who = card.querySelector('.op .who');
  setAttr(who, 'class', st.operator ? 'who operator' : 'who none');
  setText(who, st.operator || 'no operator');
  setText(card.querySelector('.op .held'), st.session ? ` · ${st.held} held` : '');
  // The buttons stay the same elements; what they do is read from them when clicked.
  const commands = supervisor() && st.device;
  const toggle = card.querySelector('[data-role=toggle]');
  const verb = ready === 'paused' ? 'resume' : 'pause';
  setHidden(toggle, !commands);
  setAttr(toggle, 'data-verb', commands ? verb : null);
  setAttr(toggle, 'data-device', commands ? st.device : null);
  setAttr(toggle, 'data-key', commands ? `${verb}-${st.device}` : null);
  setAttr(toggle, 'class', verb === 'pause' ? 'quiet' : '');
  setText(toggle, `${verb === 'pause' ? 'Pause' : 'Resume'} ${st.device || st.id}`);
  const clear = card.querySelector('[data-role=clear]');
  const clearing = commands && ready === 'faulted';
  setHidden(clear, !clearing);
  setAttr(clear, 'data-device', clearing ? st.device : null);
  setAttr(clear, 'data-key', clearing ? `clear-${st.device}` : null);
  setHidden(card.querySelector('.actions'), !commands);
  const job = card.querySelector('p.job');
  setAttr(job, 'class', w ? `job class-${w.class}` : 'job idle');
  setText(job.querySelector('.job-id'), w ? jobId(w.job) : '');
  setText(job.querySelector('.class'), w ? ` ${className(w.class)} · ` : 'idle');
  const ph = job.querySelector('.phase');
  setText(ph, w ? CARD_PHASE[w.phase] || phase : '');
  setAttr(ph, 'title', w ? phase : null);
}

// One listener for every card's buttons: a button keeps its element while its command changes.
// A click on a button that had just changed or moved is not sent (see `unsteadyClick`).
$('diagram').addEventListener('click', (e) => {
  const b = e.target.closest('button[data-verb][data-device]');
  if (!b || b.hidden || notSent(e, b)) return;
  deviceCommand(b.dataset.device, b.dataset.verb);
});

/** Refuses, in the page, a click that was aimed at something else; true when refused. */
function notSent(e, b) {
  const why = unsteadyClick(e, b);
  if (!why) return false;
  const text = `Not sent: "${b.textContent}": ${why}. Click again if you mean it.`;
  announce(text);
  flash(text, '');
  return true;
}

function button(text, key, fn, cls) {
  return h('button', { type: 'button', class: cls || '', 'data-key': key, on: { click: fn } }, text);
}

async function deviceCommand(device, verb) {
  try {
    await api.post(`/devices/${encodeURIComponent(device)}/${verb}`);
    announce(`${device}: ${verb === 'clear-fault' ? 'fault cleared' : `${verb}d`}`);
    refreshSoon();
  } catch (e) {
    announce(`Refused: ${e.message}`);
    flash(e.message);
  }
}

/** A refusal of a command given from the line diagram: shown at the top of the alerts. */
function flash(message, prefix = 'Refused: ') {
  const el = $('flash');
  el.hidden = false;
  el.textContent = `${prefix}${message}`;
  clearTimeout(flash.t);
  flash.t = setTimeout(() => { el.hidden = true; }, 10000);
}

function drawAlerts(alerts) {
  setText($('alert-count'), alerts.length ? String(alerts.length) : '');
  const items = alerts.length === 0 ? [{ id: '' }] : alerts;
  keyedList($('alerts'), items, (a) => a.id || 'none',
    (a) => (a.id
      ? h('li', null,
        h('p', null, h('strong'), h('span', { class: 'detail' })),
        h('p', { class: 'occurrences' }),
        h('p', { class: 'serials' }),
        h('p', { class: 'meta' }),
        h('button', { type: 'button', 'data-verb': 'ack', text: 'Acknowledge' }),
        h('button', { type: 'button', 'data-verb': 'resolve', text: 'Resolve…' }))
      : h('li', { class: 'none', text: 'No open alert.' })),
    (li, a) => {
      if (a.id) updateAlert(li, a);
    });
}

function updateAlert(li, a) {
  setAttr(li, 'class', `alert kind-${a.kind} severity-${a.severity || 'warning'}`);
  setAttr(li, 'data-alert', a.id);
  setText(li.querySelector('strong'), a.subject);
  setText(li.querySelector('.detail'), ` ${a.detail}`);
  const many = (a.occurrences || 1) > 1;
  const occ = li.querySelector('.occurrences');
  setHidden(occ, !many);
  setText(occ, many ? `${a.occurrences} occurrences, last at ${clock(a.last_at)}: ${a.last_detail || ''}` : '');
  const serials = a.serials || [];
  const sp = li.querySelector('.serials');
  setHidden(sp, !serials.length);
  // Each serial links to its trace in the auditor view; drawn anew only when they change (a
  // link under the pointer must not be replaced by each update of the alert).
  const shown = serials.join(' ');
  if (sp.dataset.serials !== shown) {
    sp.dataset.serials = shown;
    render(sp, serials.length
      ? ['Serials: ', ...serialLinks(serials.slice(0, 12), ', '), serials.length > 12 ? ` … (${serials.length})` : '']
      : []);
  }
  setText(li.querySelector('.meta'), `${a.id} · ${a.severity || 'warning'} · ${a.kind.replace(/_/g, ' ')} · since ${clock(a.raised_at)}${a.acknowledged ? ` · acknowledged by ${a.acknowledged.by}` : ''}`);
  const ack = li.querySelector('[data-verb=ack]');
  const acking = supervisor() && !a.acknowledged;
  setHidden(ack, !acking);
  setAttr(ack, 'data-key', acking ? `ack-${a.id}` : null);
  const res = li.querySelector('[data-verb=resolve]');
  const resolving = supervisor() && !CONDITIONS.has(a.kind);
  setHidden(res, !resolving);
  setAttr(res, 'data-key', resolving ? `resolve-${a.id}` : null);
}

$('alerts').addEventListener('click', (e) => {
  const b = e.target.closest('button[data-verb]');
  const li = b && b.closest('li[data-alert]');
  if (!li || b.hidden || notSent(e, b)) return;
  if (b.dataset.verb === 'ack') acknowledge(li.dataset.alert);
  if (b.dataset.verb === 'resolve') resolve(li.dataset.alert);
});

/** Alert kinds that close by themselves; the others are incidents a supervisor resolves. */
const CONDITIONS = new Set(['device_fault', 'device_offline', 'backlog', 'due_at_risk', 'storage_fault', 'storage_low']);

async function resolve(id) {
  // eslint-disable-next-line no-alert
  const note = window.prompt(`Resolve ${id}: what was found and done?`);
  if (note === null) return;
  try {
    await api.post(`/alerts/${encodeURIComponent(id)}/resolve`, { note });
    announce(`Alert ${id} resolved`);
    refreshSoon();
  } catch (e) {
    flash(e.message);
  }
}

async function acknowledge(id) {
  try {
    await api.post(`/alerts/${encodeURIComponent(id)}/ack`);
    announce(`Alert ${id} acknowledged`);
    refreshSoon();
  } catch (e) {
    flash(e.message);
  }
}

function drawQueues(s) {
  const byClass = Object.fromEntries((s.queues || []).map((q) => [q.class, q]));
  const oldest = s.oldest_queued ? `Longest wait: ${age(Date.now() - Date.parse(s.oldest_queued))}.` : 'Nothing waits.';
  render($('queues'), [
    table(null, [
      ['Class', (c) => className(c[0])],
      ...AGES.map((a, i) => [a, (c) => String(byClass[c[0]] ? byClass[c[0]].by_age[i] : 0)]),
      ['All', (c) => h('strong', { text: String(byClass[c[0]] ? byClass[c[0]].queued : 0) })],
    ], CLASSES, { class: 'grid compact', 'data-report': 'queues' }),
    h('p', { class: 'meta' }, oldest, ` Held: ${s.held}. Needs inspection: ${s.needs_inspection}. Open jobs: ${s.open_jobs}.`),
  ]);
}

function drawThroughput(s) {
  const tp = s.throughput || { hourly: [], shifts: [], rate_per_hour: 0 };
  setText($('tp-rate'), `${tp.rate_per_hour.toFixed(0)}/h now`);
  const [xs, ys] = chartData(tp.hourly);
  const key = JSON.stringify([xs[0], ys]);
  const box = $('throughput');
  if (!state.chart || !box.contains(state.chart.root)) {
    state.chart = throughputChart(box, tp.hourly);
    state.chartKey = key;
  } else if (key !== state.chartKey) {
    state.chart.setData([xs, ys]);
    state.chartKey = key;
  }
  box.setAttribute('aria-label', `Passports dispatched per hour over the last 24 hours: ${ys.reduce((a, b) => a + b, 0)} in all, ${ys[ys.length - 1] || 0} this hour`);
  const shifts = (tp.shifts || []).map((x) => `${x.shift}: ${x.completed}`).join(' · ');
  render($('ontime'), [
    table(null, [
      ['On time, last 24 h', (o) => className(o.class)],
      ['Dispatched', (o) => String(o.completed)],
      ['By due time', (o) => String(o.on_time)],
      ['%', (o) => h('strong', {
        class: o.percent === null || o.percent === undefined ? '' : o.percent >= 99 ? 'good' : 'bad',
        text: o.percent === null || o.percent === undefined ? '—' : `${o.percent.toFixed(o.percent >= 99.95 ? 0 : 1)} %`,
      })],
    ], s.on_time || [], { class: 'grid compact', 'data-report': 'on-time' }),
    shifts ? h('p', { class: 'meta', text: `Per shift: ${shifts}` }) : null,
  ]);
}

window.addEventListener('resize', () => {
  if (state.chart) {
    const box = $('throughput');
    state.chart.setSize({ width: Math.max(280, box.clientWidth), height: HEIGHT });
  }
});

// ---- jobs ------------------------------------------------------------------------------------

let jobsBuilt = false;

function buildForms() {
  if (jobsBuilt) return;
  jobsBuilt = true;
  const filter = $('jobs-filter');
  filter.append(
    select('State', 'state', [['', 'any'], ...JOB_STATES.map((s) => [s, s.replace(/_/g, ' ')])], { 'data-key': 'jobs-state' }),
    select('Class', 'class', [['', 'any'], ...CLASSES], { 'data-key': 'jobs-class' }),
    field('Destination', 'destination', { 'data-key': 'jobs-destination', autocapitalize: 'characters' }),
    field('Search: tracking number, booklet or patch serial', 'q', { 'data-key': 'jobs-q', spellcheck: 'false' }),
    field('Or a job id', 'id', { 'data-key': 'jobs-id', placeholder: 'J-00000042' }),
    h('button', { type: 'submit', text: 'Show' }),
    h('p', { class: 'form-error', role: 'alert' }));
  // A new filter starts again at the newest job.
  onSubmit(filter, () => { jobsPage.cursors = []; return loadJobs(); });
  buildCustodyForms();
  const rf = $('reconcile-form');
  rf.append(field('Shift (date and A 06–14, B 14–22, C 22–06 UTC)', 'shift', { value: shiftOf(new Date()), 'data-key': 'rec-shift' }),
    h('button', { type: 'submit', text: 'Show' }), h('p', { class: 'form-error', role: 'alert' }));
  onSubmit(rf, () => loadReconciliation());
  buildPeopleForm();
}

/** The jobs list's paging: newest first; `cursors` holds the `before` of each page shown
 * after the first (so "Newer" goes back one), `next` the cursor of the next older page. */
const jobsPage = { cursors: [], next: null };
const JOBS_PER_PAGE = 50;

async function loadJobs(cursors = jobsPage.cursors) {
  const f = Object.fromEntries(new FormData($('jobs-filter')).entries());
  let jobs;
  if (f.id && f.id.trim()) {
    jobs = [await api.get(`/jobs/${encodeURIComponent(f.id.trim())}`)];
    jobsPage.cursors = [];
    jobsPage.next = null;
  } else {
    const q = new URLSearchParams({ order: 'newest', limit: String(JOBS_PER_PAGE) });
    if (f.state) q.set('state', f.state);
    if (f.class) q.set('class', f.class);
    if (f.destination && f.destination.trim()) q.set('destination', f.destination.trim().toUpperCase());
    if (f.q && f.q.trim()) q.set('q', f.q.trim());
    const before = cursors[cursors.length - 1];
    if (before) q.set('before', String(before));
    const page = await api.get(`/jobs?${q}`);
    jobs = page.jobs;
    // The page moves only once it has loaded (a failed load stays on the page shown).
    jobsPage.cursors = cursors;
    jobsPage.next = page.next ?? null;
  }
  const pageNo = jobsPage.cursors.length + 1;
  const pager = h('nav', { class: 'inline-form', 'aria-label': 'Job pages', 'data-pager': 'jobs' },
    button('Newer', 'jobs-newer', () => turn(jobsPage.cursors.slice(0, -1))),
    h('span', { text: `page ${pageNo}, newest first` }),
    button('Older', 'jobs-older', () => turn([...jobsPage.cursors, jobsPage.next])));
  // One turn at a time: a second click before the page has loaded turns nothing.
  function turn(cursors) {
    for (const b of pager.querySelectorAll('button')) b.disabled = true;
    loadJobs(cursors).catch(showIn('jobs-table'));
  }
  pager.querySelector('[data-key="jobs-newer"]').disabled = pageNo === 1;
  pager.querySelector('[data-key="jobs-older"]').disabled = jobsPage.next === null;
  render($('jobs-table'), [pager, table(`${jobs.length} job(s)`, [
    ['Job', (j) => jobId(j.id)],
    ['Tracking', (j) => j.tracking_number],
    ['Class', (j) => className(j.class)],
    ['State', (j) => j.state.state.replace(/_/g, ' ')],
    ['Due', (j) => clock(j.due)],
    ['Destination', (j) => j.destination],
    ['Booklet', (j) => serialLink(j.booklet)],
    ['', (j) => button(`Act on ${jobId(j.id)}`, `act-${j.id}`, () => showJob(j, null, true))],
  ], jobs, { 'data-report': 'jobs' })]);
}

/** The job the panel shows, as last read from the controller. */
let openJob = null;

/** Each drawing of the job panel: an answer asked for before the latest drawing is stale. */
let jobDrawn = 0;

/**
 * Re-reads the open job and, when it moved on (state, class, crew...), redraws the panel; but
 * not under a supervisor who is using it (the cursor in it, or a reason typed): then the panel
 * says the job changed and offers to show it as it is now, keeping what was typed.
 */
const refreshOpenJob = debounce(async () => {
  if (!openJob || document.hidden || $('job-actions').hidden || $('panel-jobs').hidden) return;
  const drawn = jobDrawn;
  try {
    const v = await api.get(`/jobs/${openJob.id}`);
    if (drawn !== jobDrawn || !openJob || v.id !== openJob.id) return;
    if (JSON.stringify(v) === JSON.stringify(openJob)) return;
    const box = $('job-actions');
    const typed = [...box.querySelectorAll('input')].some((i) => i.value.trim() !== '');
    const typing = box.contains(document.activeElement) && document.activeElement.matches('input, select, textarea');
    if (typing || typed) {
      jobChanged(v);
      return;
    }
    // The keyboard's place in the panel is kept (its first button, as when it was opened).
    showJob(v, null, box.contains(document.activeElement));
    // A button drawn under a resting pointer was not what it was aimed at: not sent for a moment.
    noteButtons($('job-actions-body'), performance.now(), true);
  } catch (e) {
    if (!(e instanceof ApiError) || !e.sessionDead) announce(`Could not refresh ${jobId(openJob.id)}: ${e.message}`);
  }
}, 300);

/** Says, in the panel, that its job changed; the supervisor chooses when to see it anew. */
function jobChanged(v) {
  const note = $('job-actions-body').querySelector('[data-changed=job]');
  const text = `${jobId(v.id)} changed since this panel was drawn: it is now ${v.state.state.replace(/_/g, ' ')}.`;
  if (note) {
    note.firstChild.textContent = `${text} `;
    return;
  }
  $('job-actions-body').prepend(h('p', { class: 'form-error', role: 'status', 'data-changed': 'job' }, `${text} `,
    button('Show it as it is now', 'job-redraw', () => showJob(v, null, true), 'quiet')));
}

// A click on a panel button that had just been drawn under the pointer is not sent.
$('job-actions-body').addEventListener('click', (e) => {
  const b = e.target.closest('button');
  if (b && notSent(e, b)) {
    e.preventDefault();
    e.stopPropagation();
  }
}, true);

function showJob(j, refusal, focus) {
  openJob = j;
  jobDrawn += 1;
  const box = $('job-actions');
  box.hidden = false;
  box.dataset.job = String(j.id);
  box.dataset.state = j.state.state;
  $('job-actions-title').textContent = `${jobId(j.id)} · ${j.tracking_number} · ${className(j.class)} · ${j.state.state.replace(/_/g, ' ')}`;
  // The form announces what this returns (once).
  const after = async (v, said) => {
    await loadJobs().catch(() => {});
    showJob(v);
    return said;
  };
  // A refused command (the job moved on since the panel was drawn): say so where the buttons
  // are, and redraw them for the job as it is now.
  const act = async (verb, body, said) => {
    let v;
    try {
      v = await api.post(`/jobs/${j.id}/${verb}`, body);
    } catch (e) {
      if (!(e instanceof ApiError) || e.sessionDead || e.status !== 409) throw e;
      const now = await api.get(`/jobs/${j.id}`).catch(() => j);
      await loadJobs().catch(() => {});
      showJob(now, `The controller refused to ${verb} ${jobId(j.id)}: ${e.message}`);
      return null;
    }
    return after(v, said);
  };
  const forms = [];
  if (!supervisor()) {
    forms.push(h('p', { class: 'hint', text: 'Only a supervisor changes jobs.' }));
  } else {
    const hold = h('form', { class: 'inline-form', 'data-form': 'hold' },
      h('button', { type: 'submit', text: j.state.state === 'held' ? 'Release' : 'Hold' }),
      h('p', { class: 'form-error', role: 'alert' }));
    onSubmit(hold, async () => {
      const verb = j.state.state === 'held' ? 'release' : 'hold';
      return act(verb, undefined, `${jobId(j.id)} ${verb === 'hold' ? 'held' : 'released'}`);
    });
    const rep = h('form', { class: 'inline-form', 'data-form': 'reprioritise' },
      select('New class', 'class', CLASSES),
      field('Why', 'reason', { required: true }),
      h('button', { type: 'submit', text: 'Reprioritise' }),
      h('p', { class: 'form-error', role: 'alert' }));
    onSubmit(rep, async (f) => {
      return act('reprioritise', { class: f.class, reason: f.reason }, `${jobId(j.id)} is now ${className(f.class)}`);
    });
    const cancel = h('form', { class: 'inline-form', 'data-form': 'cancel' },
      field('Why cancel', 'reason', { required: true }),
      h('button', { type: 'submit', class: 'danger', text: 'Cancel the job' }),
      h('p', { class: 'form-error', role: 'alert' }));
    onSubmit(cancel, async (f) => {
      return act('cancel', { reason: f.reason }, `${jobId(j.id)} cancelled`);
    });
    forms.push(hold, rep, cancel);
    if (j.state.state === 'needs_inspection') {
      const insp = h('form', { class: 'inline-form', 'data-form': 'inspect' },
        select('Verdict', 'verdict', [['step_completed', 'the step was completed'], ['retry_step', 'do the step again'], ['spoil', 'spoil the item']]),
        field('Booklet or patch found (for "completed")', 'serial'),
        h('button', { type: 'submit', text: 'Decide' }),
        h('p', { class: 'form-error', role: 'alert' }));
      onSubmit(insp, async (f) => {
        const body = { verdict: f.verdict };
        if (f.serial) body.serial = f.serial.toUpperCase();
        return act('inspect', body, `${jobId(j.id)}: ${f.verdict.replace(/_/g, ' ')}`);
      });
      forms.push(insp);
    }
  }
  render($('job-actions-body'), [
    refusal ? h('p', { class: 'form-error', role: 'alert', 'data-refusal': 'job', text: refusal }) : [],
    h('dl', { class: 'facts' },
      h('dt', { text: 'State' }), h('dd', { 'data-field': 'state', text: j.state.state.replace(/_/g, ' ') }),
      h('dt', { text: 'Booklet' }), h('dd', null, serialLink(j.booklet)),
      h('dt', { text: 'Patch' }), h('dd', null, serialLink(j.patch)),
      h('dt', { text: 'Due' }), h('dd', { text: clock(j.due) }),
      h('dt', { text: 'Destination' }), h('dd', { text: j.destination }),
      h('dt', { text: 'Printed by' }), h('dd', { text: j.printed_by || '—' }),
      h('dt', { text: 'Laminated by' }), h('dd', { text: j.laminated_by || '—' }),
      h('dt', { text: 'Checked by' }), h('dd', { text: j.checked_by || '—' }),
      h('dt', { text: 'Spoiled so far' }), h('dd', { text: String(j.spoiled) })),
    forms,
  ]);
  // Focus moves to the panel only when a person opened it, never on a live redraw.
  if (focus && box.querySelector('button')) box.querySelector('button').focus();
}

// ---- custody ---------------------------------------------------------------------------------

function signer(prefix, label) {
  return h('fieldset', { class: 'signer' }, h('legend', { text: label }),
    field('Id', `${prefix}_user`, { required: true, autocapitalize: 'characters', 'data-key': `${prefix}-user` }),
    field('PIN', `${prefix}_pin`, { type: 'password', inputmode: 'numeric', required: true, 'data-key': `${prefix}-pin` }));
}

/** A labelled text area: a scanner's Enter starts a new line instead of sending the form. */
function textArea(label, name, attrs) {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
  return h('div', { class: 'field' }, h('label', { for: id, text: label }),
    h('textarea', { id, name, spellcheck: 'false', autocomplete: 'off', ...(attrs || {}) }));
}

function clearPins(form) {
  for (const el of form.querySelectorAll('input[type=password]')) el.value = '';
}

function buildCustodyForms() {
  const cs = $('cosign-form');
  cs.append(
    field('Session', 'session', { required: true, 'data-key': 'cosign-session', list: 'open-sessions' }),
    h('datalist', { id: 'open-sessions' }),
    select('Count', 'direction', [['issue', 'issue from the vault to the session'], ['return', 'return from the session to the vault']]),
    field('Serials: a range first-last, or a list', 'serials', { required: true, 'data-key': 'cosign-serials' }),
    signer('c1', 'First counter'),
    signer('c2', 'Second counter'),
    h('button', { type: 'submit', text: 'Record the count' }),
    h('p', { class: 'form-error', role: 'alert' }));
  onSubmit(cs, async (f, form) => {
    const body = {
      ...parseSerials(f.serials),
      counters: [{ user: f.c1_user.toUpperCase(), pin: f.c1_pin }, { user: f.c2_user.toUpperCase(), pin: f.c2_pin }],
    };
    try {
      await api.post(`/custody/sessions/${encodeURIComponent(f.session)}/${f.direction}`, body);
    } finally {
      clearPins(form);
    }
    form.reset();
    refreshSoon();
    return `Count recorded: ${f.direction} ${f.serials} for ${f.session}`;
  });

  const sp = $('spoilage-form');
  sp.append(
    field('Report (one of its serials)', 'serial', { required: true, 'data-key': 'spoilage-serial', autocapitalize: 'characters' }),
    textArea('Scan every item of the report in hand (one a line)', 'scanned', { required: true, 'data-key': 'spoilage-scanned', rows: 2 }),
    select('Decision', 'decision', [['approve', 'approve: spoiled, to be destroyed before witnesses'], ['reject', 'reject: the item is fine, the job goes on']], { 'data-key': 'spoilage-decision' }),
    field('Note', 'note', { 'data-key': 'spoilage-note', maxlength: 200 }),
    h('button', { type: 'submit', text: 'Record the decision' }),
    h('p', { class: 'form-error', role: 'alert' }));
  onSubmit(sp, async (f, form) => {
    const serial = f.serial.trim().toUpperCase();
    const scanned = f.scanned.split(/\s+/).map((x) => x.trim().toUpperCase()).filter(Boolean);
    await api.post(`/custody/spoilage/${encodeURIComponent(serial)}/${f.decision}`, { scanned, note: f.note });
    form.reset();
    refreshSoon();
    drawSpoilage();
    return f.decision === 'approve'
      ? `Spoilage of ${scanned.join(', ')} approved: to be destroyed before two witnesses`
      : `Spoilage of ${scanned.join(', ')} rejected: back in use`;
  });

  const d = $('destroy-form');
  d.append(
    field('Destruction batch', 'batch', { required: true, 'data-key': 'destroy-batch' }),
    textArea('Serials destroyed: scan each item (one a line), or a range first-last', 'serials', { required: true, 'data-key': 'destroy-serials', rows: 3 }),
    select('Method', 'method', [['shredding', 'shredding'], ['incineration', 'incineration']]),
    field('Certificate number', 'certificate', { required: true, 'data-key': 'destroy-cert' }),
    signer('w1', 'First witness (never held these items)'),
    signer('w2', 'Second witness (never held these items)'),
    h('button', { type: 'submit', text: 'Record the destruction' }),
    h('p', { class: 'form-error', role: 'alert' }));
  onSubmit(d, async (f, form) => {
    const serials = expandRange(f.serials) || parseSerials(f.serials).serials || [];
    try {
      await api.post('/custody/destructions', {
        batch: f.batch,
        serials,
        method: f.method,
        certificate: f.certificate,
        witnesses: [{ user: f.w1_user.toUpperCase(), pin: f.w1_pin }, { user: f.w2_user.toUpperCase(), pin: f.w2_pin }],
      });
    } finally {
      clearPins(form);
    }
    form.reset();
    return `Destruction of ${serials.length} item(s) recorded (batch ${f.batch})`;
  });

  const lot = $('lot-form');
  lot.append(
    field('Lot id (box or roll)', 'lot', { required: true, 'data-key': 'lot-id', autocapitalize: 'characters' }),
    select('Kind', 'kind', [['booklet', 'booklets'], ['patch', 'patches']], { 'data-key': 'lot-kind' }),
    field('Supplier', 'supplier', { required: true, 'data-key': 'lot-supplier' }),
    field('Serial range (first-last)', 'range', { required: true, 'data-key': 'lot-range' }),
    h('button', { type: 'submit', text: 'Receive' }),
    h('p', { class: 'form-error', role: 'alert' }));
  onSubmit(lot, async (f, form) => {
    await api.post('/custody/lots', { lot: f.lot.toUpperCase(), kind: f.kind, supplier: f.supplier, range: f.range.toUpperCase() });
    form.reset();
    return `Lot ${f.lot.toUpperCase()} received into the vault`;
  });

  const miss = $('missing-form');
  miss.append(
    field('Serial', 'serial', { required: true, 'data-key': 'missing-serial' }),
    field('Circumstances', 'note', { required: true, 'data-key': 'missing-note' }),
    h('button', { type: 'submit', class: 'danger', text: 'Report missing' }),
    h('p', { class: 'form-error', role: 'alert' }));
  onSubmit(miss, async (f, form) => {
    await api.post('/custody/missing', { serial: f.serial.toUpperCase(), note: f.note });
    form.reset();
    return `${f.serial.toUpperCase()} reported missing`;
  });
}

let spoilageAt = 0;
let spoilageLater = null;
/**
 * The spoilage awaiting a decision or destruction (`GET /custody/spoilage`), at most every 2 s;
 * a call within the 2 s is not dropped but made when they are up (a report that came in just
 * after the last fetch, with nothing after it to draw the list again, stayed unseen).
 */
async function drawSpoilage() {
  const now = Date.now();
  const wait = spoilageAt + 2000 - now;
  if (wait > 0) {
    if (!spoilageLater) {
      spoilageLater = setTimeout(() => {
        spoilageLater = null;
        drawSpoilage();
      }, wait);
    }
    return;
  }
  spoilageAt = now;
  try {
    const list = await api.get('/custody/spoilage');
    const rows = [...list.pending, ...list.to_destroy];
    render($('spoilage'), table(null, [
      ['Items', (r) => r.serials.join(', ')],
      ['Job', (r) => (r.job == null ? '—' : jobId(r.job))],
      ['Reason', (r) => r.reason],
      ['Reported by', (r) => r.reported_by],
      ['Status', (r) => h('span', { class: r.status === 'awaiting_approval' ? 'pill open' : 'pill bad', text: r.status.replace('_', ' ') })],
      ['', (r) => (r.status === 'awaiting_approval' ? button('Decide', `spoilage-${r.serials[0]}`, () => {
        const f = $('spoilage-form');
        f.elements.serial.value = r.serials[0];
        f.elements.scanned.focus();
      }, 'quiet') : '')],
    ], rows, { class: 'grid compact', 'data-report': 'spoilage' }));
  } catch (e) {
    showIn('spoilage')(e);
  }
}

function drawSessions() {
  drawSpoilage();
  const s = state.snap;
  if (!s) return;
  const open = s.stations.filter((st) => st.session);
  // Rebuilt only when what it shows changed: a snapshot several times a second would otherwise
  // replace the "Co-sign" buttons under the pointer and close the session list being typed in.
  const shown = JSON.stringify(open.map((st) => [st.id, st.operator, st.session, st.consumables, st.held]));
  if (shown === drawSessions.shown) return;
  drawSessions.shown = shown;
  const dl = document.getElementById('open-sessions');
  if (dl) dl.replaceChildren(...open.map((st) => h('option', { value: st.session, text: `${st.id} (${st.operator || 'no operator'})` })));
  render($('sessions'), table(null, [
    ['Station', (st) => st.id],
    ['Operator', (st) => st.operator || '—'],
    ['Session', (st) => st.session],
    ['Issued', (st) => String(st.consumables ? st.consumables.issued : '—')],
    ['Used', (st) => String(st.consumables ? st.consumables.applied : '—')],
    ['Spoiled', (st) => String(st.consumables ? st.consumables.spoiled : '—')],
    ['Awaiting approval', (st) => String(st.consumables ? (st.consumables.spoiled_pending || 0) : '—')],
    ['Returned', (st) => String(st.consumables ? st.consumables.returned : '—')],
    ['Held', (st) => String(st.held)],
    ['', (st) => button('Co-sign', `cosign-${st.session}`, () => {
      const f = $('cosign-form');
      f.elements.session.value = st.session;
      f.elements.serials.focus();
    }, 'quiet')],
  ], open, { class: 'grid compact', 'data-report': 'open-sessions' }));
}

// ---- reconciliation --------------------------------------------------------------------------

async function loadReconciliation() {
  const shift = $('reconcile-form').elements.shift.value.trim() || shiftOf(new Date());
  const rec = await api.get(`/ledger/reconcile?shift=${encodeURIComponent(shift)}`);
  render($('reconcile'), reconciliationView(rec));
}

// ---- people: accounts and shift rosters -----------------------------------------------------
//
// The list is read again every few seconds while shown; rows are keyed by account and change in
// place (a roster being ticked is left as the supervisor ticked it). A PIN, new or reset, is
// chosen by the controller and shown once, in the notice, until "I have noted it" takes it out
// of the page: it is never announced (the notice is no live region: "A new PIN is shown on
// screen" is), logged or kept, and never shown once the session that asked for it has ended.
// One's own account is not disabled nor its PIN reset here (the controller refuses it: it would
// sign this page out for good).

const SHIFTS = ['A', 'B', 'C'];
const ROLES = ['operator', 'supervisor', 'auditor', 'admin'];
const people = { list: [] };

/** Whether the signed-in person may change the account `u`. */
function mayManage(u) {
  const r = api.session && api.session.role;
  return !WALL && (r === 'admin' || (r === 'supervisor' && u.role === 'operator'));
}

/** Shows `pin` of `user`, asked for by `asker` (the page's session then): not if it has ended. */
function showPin(user, pin, asker) {
  if (!pin || !asker || api.session !== asker) return false;
  setText($('pin-for'), `The new PIN of ${user} is`);
  setText($('pin-shown'), pin);
  setHidden($('pin-notice'), false);
  $('pin-noted').focus();
  return true;
}

function forgetPin() {
  setText($('pin-shown'), '');
  setText($('pin-for'), '');
  setHidden($('pin-notice'), true);
}

$('pin-noted').addEventListener('click', () => {
  forgetPin();
  announce('The PIN is no longer shown.');
});

function showPeopleError(e) {
  setText($('people-error'), e.message || String(e));
}

/** The role choices of the add form: a supervisor adds operators, an admin anyone. */
function setRoles() {
  const sel = $('add-user-form').elements.role;
  if (!sel) return;
  const roles = api.session && api.session.role === 'admin' ? ROLES : ['operator'];
  sel.replaceChildren(...roles.map((r) => h('option', { value: r, text: r })));
}

function buildPeopleForm() {
  const f = $('add-user-form');
  f.append(
    field('Id (staff number: A-Z, 0-9, -)', 'id', { required: true, autocapitalize: 'characters', 'data-key': 'add-user-id' }),
    field('Name', 'name', { required: true, maxlength: 100, 'data-key': 'add-user-name' }),
    select('Role', 'role', [['operator', 'operator']], { 'data-key': 'add-user-role' }),
    h('button', { type: 'submit', text: 'Add, with a new PIN' }),
    h('p', { class: 'form-error', role: 'alert' }));
  onSubmit(f, async (v, form) => {
    const asker = api.session;
    const r = await api.post('/users', { id: v.id.toUpperCase(), name: v.name, role: v.role, generate_pin: true });
    form.reset();
    await loadPeople().catch(showPeopleError);
    const shown = showPin(r.user.id, r.pin, asker);
    return `${r.user.id} added (${r.user.role})${shown ? '. A new PIN is shown on screen' : ''}`;
  });
}

async function loadPeople(live = false) {
  if (!manager()) return;
  people.list = await api.get('/users');
  setText($('people-error'), '');
  drawPeople(live);
}

// Read again while shown: a lockout or another supervisor's change shows without a reload.
setInterval(() => {
  if (state.tab === 'people' && !document.hidden && api.signedIn) loadPeople(true).catch(() => {});
}, 5000);

function drawPeople(live) {
  const body = $('people');
  keyedList(body, people.list, (u) => u.id, newPersonRow, updatePersonRow);
  // A button a live update drew (or moved) under a resting pointer is not sent for a moment.
  noteButtons(body, performance.now(), live);
}

function newPersonRow() {
  return h('tr', null,
    h('td', { class: 'serial', 'data-field': 'id' }),
    h('td', { 'data-field': 'name' }),
    h('td', { 'data-field': 'role' }),
    h('td', null, h('span', { 'data-field': 'status' })),
    h('td', null,
      h('span', { 'data-field': 'shifts' }),
      h('fieldset', { class: 'shifts' }, h('legend'),
        SHIFTS.map((x) => h('label', null, h('input', { type: 'checkbox', value: x }), ` ${x}`)),
        h('button', { type: 'button', class: 'quiet', 'data-verb': 'shifts', text: 'Save shifts' }))),
    h('td', null, h('div', { class: 'actions' },
      h('button', { type: 'button', 'data-verb': 'disable' }),
      h('button', { type: 'button', class: 'quiet', 'data-verb': 'reset', text: 'Reset PIN…' }),
      h('span', { class: 'question', 'data-field': 'question' }),
      h('button', { type: 'button', class: 'danger', 'data-verb': 'confirm' }),
      h('button', { type: 'button', class: 'quiet', 'data-verb': 'cancel', text: 'Keep as it is' }))));
}

/** The shifts ticked in a row: `any` when none. */
function ticked(tr) {
  const t = [...tr.querySelectorAll('fieldset.shifts input:checked')].map((b) => b.value);
  return t.length ? t : ['any'];
}

function updatePersonRow(tr, u) {
  const manage = mayManage(u);
  const own = Boolean(api.session) && api.session.user === u.id;
  const locked = u.locked_until && Date.parse(u.locked_until) > Date.now();
  setAttr(tr, 'data-user', u.id);
  setAttr(tr, 'data-disabled', String(u.disabled));
  setText(tr.querySelector('[data-field=id]'), u.id);
  setText(tr.querySelector('[data-field=name]'), u.name);
  setText(tr.querySelector('[data-field=role]'), u.service ? `${u.role} (service)` : u.role);
  const st = tr.querySelector('[data-field=status]');
  setAttr(st, 'class', u.disabled ? 'pill bad' : locked ? 'pill open' : 'pill good');
  setText(st, u.disabled ? 'disabled' : locked ? `locked until ${clock(u.locked_until)}` : 'active');
  const roster = (u.shifts && u.shifts.length ? u.shifts : ['any']).join(', ');
  setText(tr.querySelector('[data-field=shifts]'), u.service ? '—' : roster);
  const fs = tr.querySelector('fieldset.shifts');
  setHidden(fs, !manage || u.service);
  setText(fs.querySelector('legend'), `Shifts of ${u.id}`);
  // A roster being ticked (differing from what was last shown) is left as it is.
  if (tr.dataset.roster === undefined || ticked(tr).join(', ') === tr.dataset.roster) {
    for (const b of fs.querySelectorAll('input')) b.checked = (u.shifts || []).includes(b.value);
  }
  tr.dataset.roster = roster;
  // Disable and reset ask first, in the row: "Yes, ..." or "Keep as it is".
  const asking = manage ? tr.dataset.confirm || '' : '';
  const toggle = tr.querySelector('[data-verb=disable], [data-verb=enable]');
  setHidden(tr.querySelector('.actions'), !manage);
  setAttr(toggle, 'data-verb', u.disabled ? 'enable' : 'disable');
  setText(toggle, u.disabled ? `Enable ${u.id}` : `Disable ${u.id}…`);
  setAttr(toggle, 'class', u.disabled ? '' : 'danger');
  setHidden(toggle, Boolean(asking) || own);
  setHidden(tr.querySelector('[data-verb=reset]'), Boolean(asking) || u.service || own);
  const q = tr.querySelector('[data-field=question]');
  setHidden(q, !asking);
  setText(q, asking === 'disable' ? `Disable ${u.id}? They are signed out and cannot sign in until enabled.`
    : asking === 'reset' ? `Reset the PIN of ${u.id}? Their old PIN stops working and they are signed out.` : '');
  const yes = tr.querySelector('[data-verb=confirm]');
  setHidden(yes, !asking);
  setText(yes, asking === 'disable' ? `Yes, disable ${u.id}` : asking === 'reset' ? `Yes, reset the PIN of ${u.id}` : 'Yes');
  setHidden(tr.querySelector('[data-verb=cancel]'), !asking);
}

$('people').addEventListener('click', (e) => {
  const b = e.target.closest('button[data-verb]');
  const tr = b && b.closest('tr[data-user]');
  if (!tr || b.hidden || notSent(e, b)) return;
  personCommand(tr, b.dataset.verb).catch(showPeopleError);
});

async function personCommand(tr, verb) {
  const id = tr.dataset.user;
  const path = `/users/${encodeURIComponent(id)}`;
  setText($('people-error'), '');
  if (verb === 'disable' || verb === 'reset' || verb === 'cancel') {
    if (verb === 'cancel') delete tr.dataset.confirm;
    else tr.dataset.confirm = verb;
    drawPeople(false);
    const next = tr.querySelector(verb === 'cancel' ? '[data-verb=disable], [data-verb=enable]' : '[data-verb=confirm]');
    if (next) next.focus();
    return;
  }
  try {
    if (verb === 'confirm') {
      const what = tr.dataset.confirm;
      delete tr.dataset.confirm;
      if (what === 'disable') {
        await api.post(`${path}/disable`);
        announce(`${id} disabled: signed out, and cannot sign in until enabled`);
      } else if (what === 'reset') {
        const asker = api.session;
        const r = await api.post(`${path}/reset-pin`, { generate_pin: true });
        const shown = showPin(id, r.pin, asker);
        announce(`The PIN of ${id} was reset${shown ? '. A new PIN is shown on screen' : ''}`);
      }
    } else if (verb === 'enable') {
      await api.post(`${path}/enable`);
      announce(`${id} enabled`);
    } else if (verb === 'shifts') {
      const shifts = ticked(tr);
      await api.post(`${path}/shifts`, { shifts });
      announce(`${id} rostered for shift(s) ${shifts.join(', ')}`);
    }
  } catch (e) {
    if (e instanceof ApiError && e.sessionDead) return;
    setText($('people-error'), `${id}: ${e.message}`);
  }
  await loadPeople().catch(showPeopleError);
}

// ---- start -----------------------------------------------------------------------------------

if (api.signedIn) {
  start().catch((e) => {
    api.forget();
    showSignIn(e.message);
  });
} else {
  showSignIn();
}
