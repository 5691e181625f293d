// The auditor's view: trace a patch or booklet serial (and export its signed evidence bundle),
// browse the ledger's records (by operator, station, time and kind, page by page, and export
// them as CSV), reconcile a shift, a session or a roll, read the destruction register, list and
// export the missing serials (with INTERPOL SLTD fields). Every serial shown is a link to its
// trace (`/audit#trace=…`, which the hall view links to as well). Read-only: nothing here
// changes the ledger.

import { Api, ApiError, $, h, render, announce, onSubmit, fields, showError, shiftOf, catchPageErrors, saveBlob } from './common.js';
import {
  traceView, reconciliationView, destructionsView, missingView, sltdCsv, recordsView,
  recordsCsvRows, RECORDS_CSV_HEADER, RECORD_KINDS, csvField, CSV_BOM,
} from './reports.js';

catchPageErrors();

const api = new Api('hallctl.audit');

onSubmit($('signin-form'), async (v, form) => {
  const s = await api.signIn(v.user.toUpperCase(), v.pin);
  form.elements.pin.value = '';
  await start();
  return `${s.user} signed in (${s.role})`;
});

$('sign-out').addEventListener('click', async () => {
  // Refused or not, this page signs out (only a station's session can be refused).
  await api.signOut().catch(() => api.forget());
  showSignIn('Signed out.');
});

api.onSignedOut = () => showSignIn('Your session ended: sign in again.');

function showSignIn(message) {
  $('app').hidden = true;
  $('signin').hidden = false;
  $('sign-out').hidden = true;
  $('who').textContent = '';
  if (message) announce(message);
  $('si-user').focus();
}

async function start() {
  const me = await api.get('/session');
  if (me.role !== 'auditor' && me.role !== 'supervisor') {
    await api.signOut();
    throw new ApiError(403, 'forbidden', `the auditor view is for auditors and supervisors; ${me.user} is a ${me.role}`);
  }
  $('signin').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  $('who').textContent = `${me.user} (${me.role})`;
  $('rec-id').value = shiftOf(new Date());
  $('tr-serial').focus();
  traceFromHash();
}

/** The serial named by the address (`#trace=…`), if any. */
function hashSerial() {
  const m = /^#trace=(.+)$/.exec(location.hash);
  if (!m) return null;
  try {
    return decodeURIComponent(m[1]).trim().toUpperCase();
  } catch (e) {
    return null;
  }
}

/** Traces the serial the address names (a link from the hall view or from this page). */
function traceFromHash() {
  const serial = hashSerial();
  if (!serial || $('app').hidden) return;
  $('tr-serial').value = serial;
  $('trace-form').requestSubmit();
  $('trace-title').scrollIntoView({ block: 'start' });
}

window.addEventListener('hashchange', traceFromHash);

// A link to the serial already traced changes no address: trace it again all the same.
document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a.trace-link');
  if (!a || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;
  if (a.getAttribute('href') === `/audit${location.hash}`) {
    e.preventDefault();
    traceFromHash();
  }
});

const stamp = () => new Date().toISOString().slice(0, 10);

let traced = null;

onSubmit($('trace-form'), async (f) => {
  const serial = f.serial.toUpperCase();
  traced = null;
  $('evidence').disabled = true;
  render($('trace'), []);
  const t = await api.get(`/ledger/trace/${encodeURIComponent(serial)}`);
  traced = t.serial;
  $('evidence').disabled = false;
  render($('trace'), traceView(t));
  return `${t.steps.length} record(s) about ${t.serial}`;
});

$('evidence').addEventListener('click', async () => {
  if (!traced) return;
  const out = $('trace-form').querySelector('.form-error');
  out.textContent = '';
  try {
    await api.download(`/ledger/evidence/${encodeURIComponent(traced)}`, `evidence-${traced}.json`);
    announce(`Evidence bundle of ${traced} saved: check it offline with hallctl audit check-bundle`);
  } catch (e) {
    out.textContent = e.message;
  }
});

// ---- records ----------------------------------------------------------------------------------

/** Records per request of an export. */
const EXPORT_PAGE = 1000;

{
  const kind = $('rc-kind');
  kind.append(
    h('optgroup', { label: 'Custody events' }, RECORD_KINDS.events.map((k) => h('option', { value: k, text: k.replace(/_/g, ' ') }))),
    h('optgroup', { label: 'Controller actions' }, RECORD_KINDS.actions.map((k) => h('option', { value: k, text: k === 'action' ? 'any action' : k.replace(/_/g, ' ') }))));
}

/** The filter as query parameters (from the form as it is now). */
function recordsFilter() {
  const f = fields($('records-form'));
  const p = new URLSearchParams();
  if (f.operator.trim()) p.set('operator', f.operator.trim().toUpperCase());
  if (f.station.trim()) p.set('station', f.station.trim().toUpperCase());
  for (const k of ['from', 'to']) {
    if (!f[k]) continue;
    const t = new Date(f[k]);
    if (Number.isNaN(t.getTime())) throw new ApiError(422, 'invalid', `${k}: not a time`);
    p.set(k, t.toISOString());
  }
  if (f.kind) p.set('kind', f.kind);
  return p;
}

/**
 * The listing: newest first, one page at a time. `cursors` holds each page's `before` (the first
 * the ledger's head + 1 when the filter was applied, so that records landing meanwhile do not
 * shift the pages); Older pushes the page's `next`, Newer pops. A request reads a bounded share
 * of the ledger: a rare kind may come back as a short page, even an empty one, that says how far
 * back it searched, and Older goes on from there.
 */
const listing = { filter: null, per: 50, cursors: [], page: null };

/** The station of the filter, if any: the station of the records found at it. */
const filteredStation = (filter) => new URLSearchParams(filter).get('station') || '';

async function showPage() {
  const p = new URLSearchParams(listing.filter);
  p.set('limit', String(listing.per));
  p.set('before', String(listing.cursors[listing.cursors.length - 1]));
  const page = await api.get(`/ledger/records?${p}`);
  const rs = page.records;
  listing.page = page;
  const n = listing.cursors.length;
  const found = rs.length ? `Page ${n}: records #${rs[0].seq} to #${rs[rs.length - 1].seq}, newest first` : `Page ${n}: no record matches`;
  const more = page.complete ? '' : (rs.length < listing.per ? ` (searched back to record #${page.next}: Older goes on searching)` : '');
  render($('records'), recordsView(rs, found + more, filteredStation(listing.filter)));
  $('records-page').textContent = `Page ${n}`;
  $('records-newer').disabled = n <= 1;
  $('records-older').disabled = page.complete;
  $('records').dataset.page = String(n);
  $('records').dataset.complete = String(page.complete);
  return page;
}

onSubmit($('records-form'), async (f) => {
  const filter = recordsFilter();
  const head = await api.get('/ledger/head');
  listing.filter = filter.toString();
  listing.per = Number(f.per) || 50;
  listing.cursors = [head.seq + 1];
  const page = await showPage();
  return `${page.records.length}${page.complete ? '' : '+'} record(s)`;
});

async function turn(older) {
  const out = $('records-form').querySelector('.form-error');
  out.textContent = '';
  if (older) {
    if (!listing.page || listing.page.complete) return;
    listing.cursors.push(listing.page.next);
  } else if (listing.cursors.length > 1) {
    listing.cursors.pop();
  }
  try {
    const page = await showPage();
    announce(`Page ${listing.cursors.length}: ${page.records.length} record(s)`);
  } catch (e) {
    if (older) listing.cursors.pop();
    showError(out, e);
  }
}

$('records-older').addEventListener('click', () => turn(true));
$('records-newer').addEventListener('click', () => turn(false));

let exporting = false;

// Every record of the filter as it is in the form, oldest first, page after page (each request
// reads a bounded share of the ledger; the next goes on where it stopped) until the search is
// complete, up to the ledger's head when the export started. Each page's rows join the file as
// they come (a Blob of Blobs, which the browser may keep on disk), not one array of every row.
$('records-csv').addEventListener('click', async () => {
  if (exporting) return;
  const out = $('records-form').querySelector('.form-error');
  const progress = $('records-progress');
  const button = $('records-csv');
  out.textContent = '';
  exporting = true;
  button.disabled = true;
  try {
    const filter = recordsFilter();
    const station = filteredStation(filter.toString());
    const head = (await api.get('/ledger/head')).seq;
    let file = new Blob([CSV_BOM, RECORDS_CSV_HEADER.map(csvField).join(',') + '\r\n'], { type: 'text/csv' });
    let after = 0;
    let n = 0;
    progress.hidden = false;
    progress.textContent = 'Exporting: reading the records…';
    for (;;) {
      const p = new URLSearchParams(filter);
      p.set('limit', String(EXPORT_PAGE));
      p.set('after', String(after));
      const page = await api.get(`/ledger/records?${p}`);
      const rows = page.records.filter((r) => r.seq <= head);
      file = new Blob([file, recordsCsvRows(rows, station)], { type: 'text/csv' });
      n += rows.length;
      if (page.complete) break;
      after = page.next;
      progress.textContent = `Exporting: exported ${n.toLocaleString('en-US')} record(s), searched up to record #${after}…`;
    }
    saveBlob(file, `ledger-records-${stamp()}.csv`);
    progress.textContent = `Exported ${n.toLocaleString('en-US')} record(s).`;
    announce(`${n} record(s) exported`);
  } catch (e) {
    progress.hidden = true;
    showError(out, e);
  } finally {
    exporting = false;
    button.disabled = false;
  }
});

$('rec-scope').addEventListener('change', (e) => {
  $('rec-id').value = e.target.value === 'shift' ? shiftOf(new Date()) : '';
  $('rec-id').focus();
});

onSubmit($('rec-form'), async (f) => {
  const rec = await api.get(`/ledger/reconcile?${f.scope}=${encodeURIComponent(f.id)}`);
  render($('reconcile'), reconciliationView(rec));
  return `Reconciliation of ${rec.scope}`;
});

$('load-destructions').addEventListener('click', async () => {
  try {
    render($('destructions'), destructionsView(await api.get('/ledger/destructions')));
  } catch (e) {
    render($('destructions'), []);
    announce(e.message);
  }
});

async function missing() {
  $('missing-error').textContent = '';
  try {
    return await api.get('/ledger/missing');
  } catch (e) {
    $('missing-error').textContent = e.message;
    return null;
  }
}

$('load-missing').addEventListener('click', async () => {
  const m = await missing();
  if (m) render($('missing'), missingView(m));
});


$('export-missing-csv').addEventListener('click', async () => {
  const m = await missing();
  if (!m) return;
  saveBlob(new Blob([sltdCsv(m)], { type: 'text/csv' }), `missing-serials-sltd-${stamp()}.csv`);
  announce(`${m.sltd.length} missing serial(s) exported`);
});

$('export-missing-json').addEventListener('click', async () => {
  const m = await missing();
  if (!m) return;
  saveBlob(new Blob([JSON.stringify(m, null, 2)], { type: 'application/json' }), `missing-serials-${stamp()}.json`);
  announce(`${m.items.length} missing serial(s) exported`);
});

if (api.signedIn) {
  start().catch((e) => {
    api.forget();
    showSignIn(e.message);
  });
} else {
  showSignIn();
}
