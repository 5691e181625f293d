// The station terminal: one operator at one station, keyboard and barcode scanner first (a
// scanner types into the focused field and sends Enter). It shows only this station's assigned
// work, says every refusal in the controller's own words, and opens and closes the operator's
// custody session with its two-person counts.
//
// Scanner-safe: after every action the cursor is back in the task's scan field, and a scan that
// arrives anywhere else (a button, the skip chooser, the defect's reason, nowhere) is taken out
// of there and sent from the task's scan field (`takeScan`). Fields a scan may go into as typed
// carry `data-scan`: the task's scan fields, the custody serials and the ids of people (not the
// PINs: a badge scanned into a PIN field would count as a wrong PIN).

import {
  Api, ApiError, $, h, render, announce, onSubmit, showError, field, select, openStream, jobId,
  className, clock, READINESS, catchPageErrors, debounce, parseSerials, showStorage, routeScans,
} from './common.js';

catchPageErrors();

const api = new Api('hallctl.station');
const TERMINAL_KEY = 'hallctl.terminal.station';

/** What the terminal knows: the station's view from the controller, and the session's detail. */
const state = {
  view: null,
  session: null,
  /** The task the screen shows (`job/phase`): when it changes, the cursor goes to its first field. */
  taskKey: null,
  taskWork: null,
  stopStream: null,
  poll: null,
  lastBag: null,
  /** The status stream broke and has not been live since. */
  streamBroke: false,
  /** The stream has been silent too long: no task is shown until it is live again. */
  offline: false,
};

// ---- sign in / out ---------------------------------------------------------------------------

const signinForm = $('signin-form');
const params = new URLSearchParams(location.search);
$('si-station').value = (params.get('station') || localStorage.getItem(TERMINAL_KEY) || '').toUpperCase();

onSubmit(signinForm, async (v, form) => {
  const s = await api.signIn(v.user.toUpperCase(), v.pin, v.station.toUpperCase());
  form.elements.pin.value = '';
  localStorage.setItem(TERMINAL_KEY, s.station);
  await start();
  return `${s.user} signed in at ${s.station}`;
});

$('sign-out').addEventListener('click', async () => {
  try {
    await api.signOut();
  } catch (e) {
    // Still signed in (a step is running on the device): say why.
    showRefusal(e);
    return;
  }
  stop();
  showSignIn('Signed out.');
});

api.onSignedOut = () => {
  stop();
  showSignIn('Your session ended: sign in again.');
};

function showSignIn(message) {
  $('terminal').hidden = true;
  $('signin').hidden = false;
  $('sign-out').hidden = true;
  $('st-device').hidden = true;
  $('st-operator').textContent = '';
  $('st-stream').textContent = '';
  if (message) announce(message);
  const st = $('si-station');
  (st.value ? $('si-user') : st).focus();
}

async function start() {
  const me = await api.get('/session');
  if (me.role !== 'operator' || !me.station) {
    await api.signOut();
    throw new ApiError(403, 'forbidden', 'station terminals are for operators signed in at a station');
  }
  $('signin').hidden = true;
  $('terminal').hidden = false;
  $('sign-out').hidden = false;
  $('st-id').textContent = me.station;
  $('st-operator').textContent = `Operator ${me.user}`;
  document.title = `${me.station} · hallctl`;
  state.taskKey = null;
  $('custody-body').replaceChildren();
  await refresh();
  state.stopStream = openStream(api, onEvent, onStreamState);
  // A backstop: what the stream does not name (a count co-signed at the hall view) still
  // shows within a few seconds.
  state.poll = setInterval(() => refreshSoon(), 5000);
}

function stop() {
  // Nothing of this operator's work stays in the page.
  $('task-body').replaceChildren();
  $('custody-body').replaceChildren();
  $('refusal').hidden = true;
  $('done').textContent = '';
  state.taskKey = null;
  state.lastBag = null;
  if (state.stopStream) state.stopStream();
  if (state.poll) clearInterval(state.poll);
  state.stopStream = null;
  state.poll = null;
  state.streamBroke = false;
  state.offline = false;
  state.view = null;
  state.session = null;
}

// ---- live updates ----------------------------------------------------------------------------

function onStreamState(s, detail) {
  const el = $('st-stream');
  el.textContent = { live: 'live', connecting: 'connecting…', down: 'reconnecting…', offline: 'offline' }[s] || s;
  el.dataset.state = s;
  el.title = s === 'down' || s === 'offline' ? detail || '' : '';
  if (s === 'offline') showOffline();
  // Back after a break: a cursor lost in the break (on nothing) goes back to the task. One in a
  // field stays where it is being typed: moved from the defect's reason to the task's main
  // button, the operator's next Enter would confirm the step instead of reporting the defect.
  if (s === 'down' || s === 'offline') state.streamBroke = true;
  if (s === 'live') state.offline = false;
  if (s === 'live' && state.streamBroke) {
    state.streamBroke = false;
    const a = document.activeElement;
    if (!a || a === document.body || !a.isConnected) focusTask();
  }
}

/**
 * The controller is not answering: the task shown may be done or gone by now, so none is shown
 * (its buttons would send nothing), nor the last answer or the device's readiness, until the
 * stream is live again; its snapshot draws them anew.
 */
function showOffline() {
  state.offline = true;
  state.taskKey = null;
  $('done').textContent = '';
  $('refusal').hidden = true;
  $('st-device').hidden = true;
  render($('task-body'), [
    h('p', { class: 'prompt offline', text: 'Offline: the controller is not answering.' }),
    h('p', { class: 'hint', text: 'The task shows here again as soon as it answers; nothing confirmed is lost.' }),
  ]);
  $('task').dataset.phase = 'offline';
}

/** Only what concerns this station (or its job) leads to a refresh. */
function onEvent(name, data) {
  const me = api.session && api.session.station;
  if (!me) return;
  if (name === 'storage') {
    showStorage(data);
    return;
  }
  if (name === 'snapshot') {
    showStorage(data.storage);
    const v = (data.stations || []).find((s) => s.id === me);
    if (v) setView(v);
    return;
  }
  const job = state.view && state.view.work ? state.view.work.job : null;
  if (data.station === me || (job !== null && data.job === job)) refreshSoon();
}

const refreshSoon = debounce(() => refresh().catch(quiet), 150);

function quiet(e) {
  if (!(e instanceof ApiError) || !e.sessionDead) announce(`Could not refresh: ${e.message}`);
}

/** Fetches the station's view and draws it (done when it is drawn). */
async function refresh() {
  if (!api.session) return;
  const v = await api.get(`/stations/${encodeURIComponent(api.session.station)}`);
  await setView(v);
}

async function setView(v) {
  const sessionChanged = !state.view || state.view.session !== v.session || state.view.held !== v.held;
  state.view = v;
  if (sessionChanged) {
    state.session = v.session
      ? await api.get(`/custody/sessions/${encodeURIComponent(v.session)}`).catch(() => null)
      : null;
  }
  draw();
}

// ---- drawing ---------------------------------------------------------------------------------

function draw() {
  const v = state.view;
  if (!v) return;
  const dev = $('st-device');
  dev.hidden = !v.device;
  if (v.device) {
    dev.textContent = `${v.device}: ${READINESS[v.readiness] || v.readiness}`;
    dev.dataset.state = v.readiness;
  }
  if (state.offline) return; // (an answer that comes in meanwhile waits for the stream)
  // The task is drawn again only when it changed: a scan being typed is never wiped.
  const key = JSON.stringify([v.work, v.session, v.device && v.readiness === 'ready', state.lastBag && state.lastBag.id]);
  if (key !== state.taskKey) {
    const focusMoves = !state.taskKey || JSON.stringify(v.work && [v.work.job, v.work.phase])
      !== state.taskWork;
    state.taskKey = key;
    state.taskWork = JSON.stringify(v.work && [v.work.job, v.work.phase]);
    render($('task-body'), task(v));
    if (focusMoves) focusTask();
  }
  $('task').dataset.phase = v.work ? v.work.phase : 'idle';
  $('task').dataset.job = v.work ? jobId(v.work.job) : '';
  drawCustody(v);
}

/** The custody forms are built once per session; the counts are updated in place. */
function drawCustody(v) {
  const body = $('custody-body');
  const key = `${v.session || ''}`;
  if (body.dataset.session !== key || !body.firstChild) {
    body.dataset.session = key;
    render(body, custody(v));
    return;
  }
  const c = v.consumables || { issued: 0, applied: 0, spoiled: 0, returned: 0, left: v.held };
  const old = body.querySelector('.counts');
  if (old) old.replaceWith(counts(c));
  const idLine = body.querySelector('.session-id');
  if (idLine) idLine.replaceWith(sessionLine(v));
  const hint = body.querySelector('.close-hint');
  if (hint) hint.replaceWith(closeHint(c));
}

/**
 * The cursor goes to the task's scan field (else its main button, else the task): where the next
 * scan is expected. A live redraw leaves an operator typing in a custody form alone; after an
 * action of the operator's own (`afterAction`) the cursor always goes back to the task.
 */
function focusTask(afterAction) {
  const a = document.activeElement;
  if (!afterAction && a && $('custody').contains(a) && a.tagName !== 'BUTTON') return;
  if ($('terminal').hidden) return;
  const body = $('task-body');
  const first = body.querySelector('input[data-scan]') || body.querySelector('button.primary');
  (first || $('task')).focus();
}

function workLine(w) {
  return h(
    'dl',
    { class: 'work-facts' },
    h('dt', { text: 'Job' }), h('dd', { class: 'job-id', text: jobId(w.job) }),
    h('dt', { text: 'Class' }), h('dd', { class: `class-${w.class}`, text: className(w.class) }),
    h('dt', { text: 'Destination' }), h('dd', { text: w.destination }),
    w.booklet ? [h('dt', { text: 'Booklet' }), h('dd', { class: 'serial', text: w.booklet })] : null,
    w.patch ? [h('dt', { text: 'Patch' }), h('dd', { class: 'serial', text: w.patch })] : null,
    h('dt', { text: 'Assigned' }), h('dd', { text: clock(w.assigned_at) }),
  );
}

function task(v) {
  const w = v.work;
  if (!v.session && v.kind !== 'qc' && v.kind !== 'dispatch') {
    return [
      h('p', { class: 'prompt', text: 'Open a custody session to receive booklets or patches.' }),
      h('p', { class: 'hint', text: 'The line assigns work to this station once its session holds items.' }),
      h('button', { type: 'button', class: 'primary', 'data-key': 'open-session', on: { click: openSession } }, 'Open custody session'),
    ];
  }
  if (w && w.phase === 'running') {
    return [
      workLine(w),
      h('p', { class: 'prompt running', text: `${v.kind === 'print' ? 'Printing' : 'Laminating'} on ${v.device}…` }),
      h('p', { class: 'hint', text: 'Wait for the device; then confirm the result or report a defect.' }),
    ];
  }
  if (w && w.phase === 'awaiting_confirmation') return confirmStep(v, w);
  const head = w
    ? [workLine(w)]
    : [h('p', { class: 'prompt idle', text: 'No work assigned.' }),
      h('p', { class: 'hint', text: 'The line gives this station its next job when one is ready; it appears here. A scan now is checked and answered all the same.' })];
  switch (v.kind) {
    case 'print':
      return [...head, scanForm(w, [['booklet', 'Scan a blank booklet from your session']], (f) =>
        api.post(`/stations/${v.id}/print`, withJob({ booklet: f.booklet }, w)).then(() => `Booklet ${f.booklet} is printing`))];
    case 'laminate':
      return [...head, laminateForm(v, w)];
    case 'qc':
      return [...head, scanForm(w, [['booklet', 'Scan the booklet'], ['mrz1', 'MRZ line 1 (read from the data page)'], ['mrz2', 'MRZ line 2']], async (f) => {
        const r = await api.post(`/stations/${v.id}/qc`, { booklet: f.booklet, mrz: [f.mrz1, f.mrz2] });
        if (r.outcome === 'reread') throw new ApiError(409, 'qc_reread', r.message);
        if (!r.passed) throw new ApiError(409, 'qc_failed', r.message);
        return r.message;
      })];
    case 'dispatch':
      return [...head, scanForm(w, [['booklet', 'Scan the finished booklet']], async (f) => {
        const bag = await api.post(`/stations/${v.id}/pack`, { booklet: f.booklet });
        state.lastBag = bag;
        return `Booklet ${f.booklet} packed into bag ${bag.id} (${bag.items.length} in it)`;
      }), bagLine(v)];
    default:
      return [h('p', { class: 'prompt', text: `This is a ${v.kind} station: nothing to scan here.` })];
  }
}

function withJob(body, w) {
  if (w) body.job = w.job;
  return body;
}

/**
 * A form of scan fields: Enter in a field moves to the next, Enter in the last one sends.
 * `send(values)` returns what to say when it went through.
 */
function scanForm(w, inputs, send) {
  const form = h('form', { class: 'scan', autocomplete: 'off' },
    inputs.map(([name, label]) => field(label, name, {
      'data-key': `scan-${name}`,
      'data-scan': true,
      class: name.startsWith('mrz') ? 'mono' : 'scan-input',
      autocapitalize: 'characters',
      required: true,
      maxlength: name.startsWith('mrz') ? 44 : 40,
    })),
    h('button', { type: 'submit', class: 'primary', 'data-key': 'scan-send' }, 'Send'),
    h('p', { class: 'form-error', role: 'alert' }));
  chainEnter(form);
  onSubmit(form, async (f) => {
    for (const k of Object.keys(f)) f[k] = f[k].toUpperCase();
    try {
      cleared(await send(f));
      form.reset();
      await refresh();
      focusTask(true);
      return null;
    } catch (e) {
      showRefusal(e);
      form.reset();
      focusTask(true);
      return null;
    }
  });
  return form;
}

/** Enter in a field that is not the last moves to the next field instead of sending. */
function chainEnter(form) {
  form.addEventListener('keydown', (e) => {
    if (e.key !== 'Enter' || e.target.tagName !== 'INPUT') return;
    const inputs = [...form.querySelectorAll('input:not([hidden])')].filter((i) => !i.closest('[hidden]'));
    const i = inputs.indexOf(e.target);
    if (i >= 0 && i < inputs.length - 1) {
      e.preventDefault();
      if (e.target.value.trim()) inputs[i + 1].focus();
    }
  });
}

/** Why a patch may be skipped: a fixed list, so that a scan can never become the reason. The
 *  controller records the words. */
const SKIP_REASONS = [
  ['damaged', 'damaged patch'],
  ['misprinted', 'misprinted patch'],
  ['liner', 'patch stuck to the liner'],
  ['torn-roll', 'torn roll'],
];

/**
 * Lamination: the booklet in hand, then the patch. A patch out of roll order is refused; the
 * scans are kept, the cursor is back in the patch field with its text selected (the next scan,
 * the right patch, replaces it) and the skip chooser shows. Enter (a scan) always sends the
 * scans as they are, without a reason; only the chooser's own button skips to the refused patch,
 * with the reason chosen from the list.
 */
function laminateForm(v, w) {
  /** The scans refused as out of roll order: what the skip button would send. */
  let refused = null;
  const reasonField = select('Why skip? (the supervisor is alerted)', 'skip_choice',
    [['', 'Choose a reason…'], ...SKIP_REASONS], { 'data-key': 'skip-reason' });
  const skipButton = h('button', { type: 'button', class: 'danger', 'data-key': 'skip-send', on: { click: skip } },
    'Skip anyway');
  const chooser = h('fieldset', { class: 'roll-skip', hidden: true },
    h('legend', { text: 'Out of roll order: scan the right patch, or skip with a reason' }), reasonField, skipButton);
  const form = h('form', { class: 'scan', autocomplete: 'off' },
    field('Scan the booklet in your hands', 'booklet', { 'data-key': 'scan-booklet', 'data-scan': true, class: 'scan-input', required: true, maxlength: 40 }),
    field('Scan the next patch from your roll', 'patch', { 'data-key': 'scan-patch', 'data-scan': true, class: 'scan-input', required: true, maxlength: 40 }),
    h('button', { type: 'submit', class: 'primary', 'data-key': 'scan-send' }, 'Send'),
    chooser,
    h('p', { class: 'form-error', role: 'alert' }));
  const patchField = form.elements.namedItem('patch');
  const reasonSelect = reasonField.querySelector('select');
  chainEnter(form);

  async function send(body) {
    try {
      await api.post(`/stations/${v.id}/laminate`, withJob(body, w));
      const said = `Patch ${body.patch} applied to booklet ${body.booklet}: laminating`;
      cleared(said);
      form.reset();
      refused = null;
      chooser.hidden = true;
      await refresh();
      focusTask(true);
      return null;
    } catch (e) {
      showRefusal(e);
      if (e.rule === 'out_of_roll_order') {
        refused = { booklet: body.booklet, patch: body.patch };
        skipButton.textContent = `Skip to ${body.patch} anyway`;
        reasonSelect.value = '';
        chooser.hidden = false;
        patchField.focus();
        patchField.select();
      } else {
        form.reset();
        refused = null;
        chooser.hidden = true;
        focusTask(true);
      }
      return null;
    }
  }

  // Enter or Send: the scans, never a skip.
  onSubmit(form, (f) => send({ booklet: f.booklet.toUpperCase(), patch: f.patch.toUpperCase() }));

  // The explicit skip: the refused scans, with the chosen reason's words.
  async function skip() {
    const out = form.querySelector('.form-error');
    out.textContent = '';
    if (!refused) return;
    if (!reasonSelect.value) {
      out.textContent = 'Choose why the patch is skipped.';
      reasonSelect.focus();
      return;
    }
    const reason = reasonSelect.selectedOptions[0].text;
    skipButton.disabled = true;
    try {
      await send({ ...refused, skip_reason: reason });
    } finally {
      skipButton.disabled = false;
    }
  }
  return form;
}

function confirmStep(v, w) {
  const what = v.kind === 'print' ? 'print' : 'lamination';
  const defect = h('form', { class: 'defect', autocomplete: 'off', hidden: true },
    field(`What is wrong with the ${what}?`, 'reason', { 'data-key': 'defect-reason', required: true, maxlength: 200 }),
    h('button', { type: 'submit', class: 'danger', 'data-key': 'defect-send' }, 'Report it spoiled (a supervisor approves)'),
    h('p', { class: 'form-error', role: 'alert' }));
  onSubmit(defect, async (f) => {
    try {
      await api.post(`/stations/${v.id}/defect`, { reason: f.reason });
      const said = `Defect recorded: a supervisor approves the spoilage with the item in hand; job ${jobId(w.job)} waits until then`;
      cleared(said);
      await refresh();
      focusTask(true);
      return null;
    } catch (e) {
      showRefusal(e);
      // The reason is what to fix (a scan cannot land in it: see `takeScan`).
      defect.elements.reason.focus();
      return null;
    }
  });
  const confirm = async () => {
    try {
      await api.post(`/stations/${v.id}/confirm`);
      const said = `${what === 'print' ? 'Print' : 'Lamination'} of ${jobId(w.job)} confirmed`;
      cleared(said);
      await refresh();
    } catch (e) {
      showRefusal(e);
    }
    focusTask(true);
  };
  return [
    workLine(w),
    h('p', { class: 'prompt', text: `The ${what} is done. Check it.` }),
    h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'primary', 'data-key': 'confirm', on: { click: confirm } }, `Confirm the ${what}`),
      h('button', {
        type: 'button',
        class: 'danger',
        'data-key': 'defect',
        on: { click: () => { defect.hidden = false; defect.querySelector('input').focus(); } },
      }, 'Report a defect')),
    defect,
  ];
}

function bagLine() {
  const b = state.lastBag;
  if (!b) return null;
  const close = async () => {
    try {
      const r = await api.post(`/bags/${encodeURIComponent(b.id)}/close`);
      state.lastBag = null;
      cleared(`Bag ${r.id} closed with ${r.items.length} passport(s)`);
      draw();
    } catch (e) {
      showRefusal(e);
    }
    focusTask(true);
  };
  return h('p', { class: 'hint' }, `Last bag: ${b.id} for ${b.destination}, ${b.items.length} passport(s). `,
    h('button', { type: 'button', 'data-key': 'close-bag', on: { click: close } }, 'Close this bag'));
}

// ---- custody session -------------------------------------------------------------------------

async function openSession() {
  try {
    const r = await api.post('/custody/sessions', { station: api.session.station });
    cleared(`Session ${r.session} opened: now receive your items, counted by two`);
    await refresh();
  } catch (e) {
    showRefusal(e);
  }
  focusTask(true);
}

function counts(c) {
  const pair = (label, key, value) => h('div', null,
    h('dt', { text: label }), h('dd', { 'data-count': key, class: key, text: String(value) }));
  return h('dl', { class: 'counts' },
    pair('Issued', 'issued', c.issued),
    pair('Used', 'applied', c.applied),
    pair('Spoiled', 'spoiled', c.spoiled),
    pair('Returned', 'returned', c.returned),
    pair('Held now', 'held', c.left));
}

/** `B1000101–B1000109 (9)` for a held list that is one run; else the first and last. */
function heldSummary(list) {
  if (!list || list.length === 0) return 'nothing';
  if (list.length === 1) return list[0];
  return `${list.length} items, ${list[0]} … ${list[list.length - 1]}`;
}

function custody(v) {
  if (!v.session) {
    return h('p', { class: 'hint', text: v.kind === 'qc' || v.kind === 'dispatch'
      ? 'This station holds no accountable items.'
      : 'No custody session is open at this station.' });
  }
  const c = v.consumables || { issued: 0, applied: 0, spoiled: 0, returned: 0, left: v.held };
  return [
    sessionLine(v),
    counts(c),
    h('div', { class: 'custody-forms' },
      countForm('receive', 'Receive items (issue)', 'Receive', `/custody/sessions/${v.session}/issue`,
        (n) => `${n} received into session ${v.session}`, c.issued === 0),
      countForm('return', 'Return unused items', 'Return', `/custody/sessions/${v.session}/return`,
        (n) => `${n} returned to the vault`, false),
      closeForm(v, c)),
  ];
}

/** A custody form in a disclosure (`<details>`): open at first when `open`. */
function disclosure(key, title, open, form) {
  return h('details', { class: 'count-form', 'data-details': key, open },
    h('summary', { 'data-key': `${key}-summary`, text: title }), form);
}

function countForm(key, title, verb, path, said, open) {
  const form = h('form', { autocomplete: 'off', 'data-form': key },
    field('Serials: a range first-last, or scan each', 'serials', { 'data-key': `${key}-serials`, 'data-scan': true, required: true }),
    field('Your PIN (first counter)', 'pin1', { type: 'password', inputmode: 'numeric', 'data-key': `${key}-pin1`, required: true }),
    field('Second counter: id', 'user2', { 'data-key': `${key}-user2`, 'data-scan': true, required: true, autocapitalize: 'characters' }),
    field('Second counter: PIN', 'pin2', { type: 'password', inputmode: 'numeric', 'data-key': `${key}-pin2`, required: true }),
    h('button', { type: 'submit', 'data-key': `${key}-send` }, verb),
    h('p', { class: 'form-error', role: 'alert' }));
  chainEnter(form);
  onSubmit(form, async (f, fm) => {
    const body = {
      ...parseSerials(f.serials),
      counters: [{ user: api.session.user, pin: f.pin1 }, { user: f.user2.toUpperCase(), pin: f.pin2 }],
    };
    const n = body.range ? `Items ${body.range}` : `${body.serials.length} item(s)`;
    try {
      await api.post(path, body);
    } catch (e) {
      // Refused: the PINs are typed again (the form says why).
      fm.elements.pin1.focus();
      throw e;
    } finally {
      fm.elements.pin1.value = '';
      fm.elements.pin2.value = '';
    }
    fm.reset();
    const d = fm.closest('details');
    if (d) d.open = false;
    cleared(said(n));
    state.view = null;
    await refresh();
    focusTask(true);
    return null;
  });
  return disclosure(key, title, open, form);
}

function sessionLine(v) {
  const s = state.session;
  return h('p', { class: 'session-id' }, 'Session ', h('strong', { text: v.session }),
    s ? ` · held: ${heldSummary(s.held)}` : '');
}

function closeHint(c) {
  return h('p', { class: 'hint close-hint', text: c.left > 0
    ? `It still holds ${c.left} item(s): return them (counted by two) before closing.`
    : `Balanced: issued ${c.issued} = used ${c.applied} + spoiled ${c.spoiled} + returned ${c.returned}.` });
}

function closeForm(v, c) {
  const discrepancy = h('fieldset', { class: 'discrepancy', hidden: true },
    h('legend', { text: 'Close with a discrepancy (signed by a supervisor)' }),
    field('Missing serials (exactly what the session still holds)', 'missing', { 'data-key': 'close-missing' }),
    field('Statement', 'statement', { 'data-key': 'close-statement' }),
    field('Supervisor id', 'sup', { 'data-key': 'close-sup', 'data-scan': true, autocapitalize: 'characters' }),
    field('Supervisor PIN', 'sup_pin', { type: 'password', inputmode: 'numeric', 'data-key': 'close-sup-pin' }));
  const form = h('form', { class: 'close-form', autocomplete: 'off', 'data-form': 'close' },
    closeHint(c),
    h('label', { class: 'check' },
      h('input', { type: 'checkbox', name: 'with_discrepancy', 'data-key': 'close-discrepancy',
        on: { change: (e) => { discrepancy.hidden = !e.target.checked; } } }),
      ' Items are missing'),
    discrepancy,
    h('button', { type: 'submit', 'data-key': 'close-send' }, 'Close session'),
    h('p', { class: 'form-error', role: 'alert' }));
  onSubmit(form, async (f, fm) => {
    const body = {};
    if (f.with_discrepancy) {
      body.missing = f.missing.toUpperCase().split(/[\s,]+/).filter(Boolean);
      body.statement = f.statement;
      body.supervisor = { user: f.sup.toUpperCase(), pin: f.sup_pin };
    }
    try {
      await api.post(`/custody/sessions/${v.session}/close`, body);
    } finally {
      if (fm.elements.sup_pin) fm.elements.sup_pin.value = '';
    }
    const k = (state.view && state.view.consumables) || c;
    const said = `Session ${v.session} closed: issued ${k.issued}, used ${k.applied}, spoiled ${k.spoiled}, returned ${k.returned}`;
    cleared(said);
    await refresh();
    focusTask(true);
    return null;
  });
  return disclosure('close', 'Close the session', false, form);
}

// ---- scans that arrive outside a scan field ----------------------------------------------------

// Signed out there is no task to send a scan from: the sign-in form is left alone.
routeScans((el) => $('terminal').hidden || (!!el && el.matches('input[data-scan]')), takeScan);

/**
 * A scan typed where no scan goes (see `routeScans`): it goes into the task's scan field (the
 * first still empty, else the last: after a refusal that is the one to scan again) and is sent
 * from there, as Enter in that field would. When the step takes no scan, it is said so; the scan
 * itself is not shown (an MRZ reading carries the holder's name).
 */
function takeScan(code) {
  const form = $('task-body').querySelector('form.scan');
  const inputs = form ? [...form.querySelectorAll('input[data-scan]')] : [];
  if (inputs.length === 0) {
    const v = state.view;
    const w = v && v.work;
    let next = 'this step takes none';
    if (v && !v.session && v.kind !== 'qc' && v.kind !== 'dispatch') next = 'open a custody session first';
    else if (w && w.phase === 'running') next = 'wait for the device, then confirm or report a defect';
    else if (w && w.phase === 'awaiting_confirmation') next = 'confirm the step or report a defect first';
    showRefusal(new ApiError(0, 'scan_unused', `a scan arrived, but ${next}.`));
    return;
  }
  const target = inputs.find((i) => !i.value.trim()) || inputs[inputs.length - 1];
  target.value = code;
  const i = inputs.indexOf(target);
  if (i < inputs.length - 1) inputs[i + 1].focus();
  else form.requestSubmit();
}

// ---- messages --------------------------------------------------------------------------------

/** A refusal, in the controller's words, big and in red; the last success is cleared. */
function showRefusal(e) {
  // A dead session already shows the sign-in and says why: a refusal here would wipe that, and
  // show, stale, in the terminal of the next sign-in.
  if (e instanceof ApiError && e.sessionDead) return;
  const el = $('refusal');
  el.hidden = false;
  el.textContent = '';
  const label = { qc_failed: 'QC failed: ', qc_reread: 'Read it again: ', scan_unused: 'Scan not used: ' }[e.code]
    || 'Refused: ';
  el.append(h('strong', { text: label }), e.message || String(e));
  el.dataset.code = e.code || '';
  $('done').textContent = '';
  $('announce').textContent = '';
}

/**
 * A success, said once: in `#done` (a live region, so a screen reader says it too), never also
 * in the bar's `#announce`, which is for the rest (a sign-in message, a refresh that failed).
 * The refusal box is cleared.
 */
function cleared(said) {
  const el = $('refusal');
  el.hidden = true;
  el.textContent = '';
  $('done').textContent = said || '';
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
