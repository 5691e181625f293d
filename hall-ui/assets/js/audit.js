// The auditor's view: trace a patch or booklet serial (and export its signed evidence bundle),
// reconcile a shift, a session or a roll, read the destruction register, list and export the
// missing serials (with INTERPOL SLTD fields). Read-only: nothing here changes the ledger.

import { Api, ApiError, $, render, announce, onSubmit, shiftOf, catchPageErrors, saveBlob } from './common.js';
import { traceView, reconciliationView, destructionsView, missingView, sltdCsv } from './reports.js';

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
}

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

const stamp = () => new Date().toISOString().slice(0, 10);

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
