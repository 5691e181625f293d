// Ledger reports as tables, shared by the hall view and the auditor view: reconciliation
// (serial by serial), the destruction register, a trace, the missing items. Only ids, serials,
// document numbers and names of staff: the ledger holds no passport-holder data.

import { h, clock, jobId } from './common.js';

/** A table: `cols` are [header, cell(row)]; cells may be nodes or text. */
export function table(caption, cols, rows, attrs) {
  return h('table', { class: 'grid', ...(attrs || {}) },
    caption ? h('caption', { text: caption }) : null,
    h('thead', null, h('tr', null, cols.map(([t]) => h('th', { scope: 'col', text: t })))),
    h('tbody', null, rows.length === 0
      ? h('tr', null, h('td', { colspan: cols.length, class: 'empty', text: 'none' }))
      : rows.map((r) => h('tr', null, cols.map(([, f]) => h('td', null, f(r)))))));
}

/**
 * A serial as a link to its trace in the auditor view (`/audit#trace=…`, which the auditor view
 * reads on load and on each change): from the hall view it opens the auditor view, within the
 * auditor view it traces the serial at once.
 */
export function serialLink(serial) {
  if (!serial) return '—';
  return h('a', { class: 'serial trace-link', href: `/audit#trace=${encodeURIComponent(serial)}`, 'data-serial': serial, title: `Trace ${serial}`, text: serial });
}

/** Serials as links to their traces, separated by `sep`. */
export function serialLinks(list, sep = ' ') {
  return (list || []).flatMap((s, i) => (i ? [sep, serialLink(s)] : [serialLink(s)]));
}

/** A list of serials (each a link to its trace), shortened to its first and last few when long. */
export function serialList(list) {
  if (!list || list.length === 0) return '—';
  if (list.length <= 6) return serialLinks(list);
  return [...serialLinks(list.slice(0, 3)), ' … ', ...serialLinks(list.slice(-2)), ` (${list.length})`];
}

/** The first or last serial of a lot's range (`{prefix, first, last, width}`). */
export function rangeEnd(r, end) {
  return `${r.prefix || ''}${String(r[end]).padStart(r.width || 0, '0')}`;
}

/** A reconciliation (`GET /ledger/reconcile`): per session, then per lot. */
export function reconciliationView(rec) {
  const sessions = rec.sessions || [];
  const unbalanced = sessions.filter((s) => !s.balanced && !s.open).length;
  return h('div', { class: 'report' },
    h('p', { class: 'summary' }, `${rec.scope}: ${sessions.length} session(s), `,
      h('strong', { class: unbalanced ? 'bad' : 'good', text: unbalanced ? `${unbalanced} closed with a difference` : 'no difference in closed sessions' }),
      `, ${sessions.filter((s) => s.open).length} still open.`),
    table('Custody sessions', [
      ['Session', (s) => s.session.id],
      ['Station', (s) => s.session.station],
      ['Operator', (s) => s.session.operator],
      ['Issued', (s) => String(s.session.counts.issued)],
      ['Used', (s) => String(s.session.counts.applied)],
      ['Spoiled', (s) => String(s.session.counts.spoiled)],
      ['Awaiting approval', (s) => serialList(s.spoiled_pending || [])],
      ['Destroyed', (s) => serialList(s.destroyed || [])],
      ['Returned', (s) => String(s.session.counts.returned)],
      ['Missing', (s) => serialList(s.missing)],
      ['Held / unaccounted', (s) => serialList(s.unaccounted)],
      ['State', (s) => h('span', {
        class: s.open ? 'pill open' : s.balanced ? 'pill good' : 'pill bad',
        text: s.open ? 'open' : s.balanced ? 'balanced' : 'difference',
      })],
    ], sessions, { 'data-report': 'sessions' }),
    table('Lots (boxes and rolls)', [
      ['Lot', (l) => l.lot.id],
      ['Kind', (l) => l.lot.kind],
      ['Serials', (l) => (l.lot.range ? [serialLink(rangeEnd(l.lot.range, 'first')), ' – ', serialLink(rangeEnd(l.lot.range, 'last'))] : '—')],
      ['In the vault', (l) => String(l.in_vault.length)],
      ['Issued', (l) => String(l.issued.length)],
      ['Used', (l) => String(l.applied)],
      ['Awaiting approval', (l) => serialList(l.spoiled_pending || [])],
      ['Spoiled, to destroy', (l) => serialList(l.spoiled_approved || l.spoiled)],
      ['Destroyed', (l) => String(l.destroyed.length)],
      ['Missing', (l) => serialList(l.missing)],
      ['Suspect', (l) => serialList(l.suspect || [])],
    ], rec.lots || [], { 'data-report': 'lots' }));
}

/** The destruction register (`GET /ledger/destructions`). */
export function destructionsView(records) {
  const rows = records.filter((r) => r.event && r.event.type === 'items_destroyed');
  return table('Destruction register', [
    ['Record', (r) => `#${r.seq}`],
    ['When', (r) => clock(r.at)],
    ['Batch', (r) => r.event.batch],
    ['Serials', (r) => serialList(r.event.serials)],
    ['Count', (r) => String(r.event.serials.length)],
    ['Method', (r) => r.event.method],
    ['Certificate', (r) => r.event.certificate],
    ['Witnesses', (r) => r.event.witnesses.join(', ')],
    ['Recorded by', (r) => r.actor],
  ], rows, { 'data-report': 'destructions' });
}

/** A trace (`GET /ledger/trace/{serial}`). */
export function traceView(t) {
  return h('div', { class: 'report trace', 'data-serial': t.serial },
    h('dl', { class: 'facts' },
      h('dt', { text: 'Serial' }), h('dd', { class: 'serial', text: t.serial }),
      h('dt', { text: 'Kind' }), h('dd', { text: t.kind || 'unknown (never received)' }),
      h('dt', { text: 'State' }), h('dd', { text: t.state }),
      h('dt', { text: 'Lot' }), h('dd', { text: t.lot ? `${t.lot.id} from ${t.lot.supplier}` : '—' }),
      h('dt', { text: t.kind === 'patch' ? 'On booklet' : (t.kind ? 'Patch' : 'Partner') }), h('dd', null, serialLink(t.partner)),
      h('dt', { text: 'Job' }), h('dd', { text: t.job ? jobId(t.job) : '—' }),
      h('dt', { text: 'Document number' }), h('dd', { text: t.document_number || '—' })),
    table('Every record about it and its partner', [
      ['Record', (s) => `#${s.seq}`],
      ['When', (s) => new Date(s.at).toISOString().replace('T', ' ').slice(0, 19)],
      ['Who', (s) => s.actor],
      ['Item', (s) => serialLink(s.serial)],
      ['Event', (s) => s.event],
      ['Station', (s) => s.station || '—'],
      ['What happened', (s) => s.detail + (s.reversed_by ? ` (reversed by #${s.reversed_by})` : '')],
    ], t.steps || [], { 'data-report': 'trace' }));
}

/** The missing items with their SLTD rows (`GET /ledger/missing`). */
export function missingView(m) {
  return table('Missing items (INTERPOL SLTD fields)', [
    ['Serial', (r) => serialLink(r.document_number)],
    ['Type', (r) => r.document_type],
    ['Issuing state', (r) => r.issuing_state],
    ['Status', (r) => r.status],
    ['Country of loss', (r) => r.country_of_loss],
    ['Reported', (r) => r.date_of_loss],
  ], m.sltd || [], { 'data-report': 'missing' });
}

/** The SLTD rows as CSV (RFC 4180 quoting). */
export function sltdCsv(m) {
  const cols = ['document_number', 'document_type', 'issuing_state', 'status', 'country_of_loss', 'date_of_loss'];
  const q = (v) => `"${String(v ?? '').replace(/"/g, '""')}"`;
  return [cols.join(','), ...(m.sltd || []).map((r) => cols.map((c) => q(r[c])).join(','))].join('\r\n') + '\r\n';
}

/** The kinds of record an auditor filters by (the ledger's `RECORD_KINDS`): events, then actions. */
export const RECORD_KINDS = {
  events: ['lot_received', 'session_opened', 'items_issued', 'booklet_printed', 'patch_applied',
    'qc_checked', 'dispatched', 'item_spoiled', 'spoilage_decided', 'items_returned', 'session_closed',
    'items_destroyed', 'item_reported_missing', 'session_abandoned', 'items_set_aside',
    'device_read_mismatch', 'reversal'],
  actions: ['action', 'jobs_submitted', 'assigned', 'bag_closed', 'job_changed', 'job_reprioritised',
    'device_commanded', 'user_changed', 'signed_in', 'signed_out', 'alert_raised', 'alert_cleared',
    'alert_acknowledged', 'alert_repeated', 'alert_resolved', 'refused'],
};

/** A record's kind: its event's type, or its action's kind. */
export function recordKind(r) {
  const e = r.event || {};
  return e.type === 'action' && e.action ? e.action.kind : e.type;
}

const SERIAL_KEYS = new Set(['serial', 'serials', 'booklet', 'patch', 'scanned', 'read', 'partner', 'missing', 'held']);

/** Every serial a record names (booklets, patches: scanned, read, spoiled, destroyed...), once each. */
export function recordSerials(r) {
  const out = [];
  const walk = (v, key) => {
    if (v === null || v === undefined) return;
    if (typeof v === 'string') {
      if (SERIAL_KEYS.has(key) && !out.includes(v)) out.push(v);
    } else if (Array.isArray(v)) {
      v.forEach((x) => walk(x, key));
    } else if (typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) walk(x, k);
    }
  };
  walk(r.event, '');
  return out;
}

/**
 * A record's station: the one it names, or else `atStation`, the station the records were
 * filtered by (a record found at a station through its session names none itself).
 */
export function recordStation(r, atStation = '') {
  const e = r.event || {};
  return e.station || (e.action && e.action.station) || atStation || '';
}

/** The rest of a record, as `key: value` text: what is not in the other columns. */
export function recordDetail(r) {
  const skip = new Set(['type', 'station', ...SERIAL_KEYS]);
  const parts = [];
  const walk = (v, key) => {
    if (v === null || v === undefined || skip.has(key)) return;
    if (typeof v === 'object' && !Array.isArray(v)) {
      if (key === 'range') {
        parts.push(`range: ${rangeEnd(v, 'first')}–${rangeEnd(v, 'last')}`);
        return;
      }
      // An action's kind is the record's kind (its own column).
      for (const [k, x] of Object.entries(v)) if (!(key === 'action' && k === 'kind')) walk(x, k);
    } else if (Array.isArray(v)) {
      if (v.length && v.every((x) => typeof x !== 'object')) parts.push(`${key}: ${v.join(', ')}`);
      else v.forEach((x) => walk(x, key));
    } else {
      parts.push(`${key}: ${v}`);
    }
  };
  walk(r.event, '');
  return parts.join(' · ');
}

/** A page of records (`GET /ledger/records`); `atStation`: the station filtered by, if any. */
export function recordsView(records, caption, atStation = '') {
  return table(caption, [
    ['Record', (r) => `#${r.seq}`],
    ['When', (r) => new Date(r.at).toISOString().replace('T', ' ').slice(0, 19)],
    ['Who', (r) => r.actor],
    ['Kind', (r) => h('span', { 'data-kind': recordKind(r), text: recordKind(r).replace(/_/g, ' ') })],
    ['Station', (r) => recordStation(r, atStation) || '—'],
    ['Serials', (r) => serialList(recordSerials(r))],
    ['Details', (r) => recordDetail(r)],
  ], records, { 'data-report': 'records' });
}

/**
 * One CSV field (RFC 4180: quoted, quotes doubled). A value a spreadsheet would take for a
 * formula (starting with = + - @, a tab or a carriage return: a serial typed at a station, a
 * reason) gets a leading ' so that it stays text (OWASP's CSV injection advice).
 */
export function csvField(v) {
  let s = String(v ?? '');
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return `"${s.replace(/"/g, '""')}"`;
}

/**
 * A record's serials as one CSV field. A single serial is written `="0041207"`, which a
 * spreadsheet shows as that text: not the number 41207, nor 4.1E+11, nor a date (serials are
 * letters, digits and dashes only). Several serials, separated by spaces, are text anyway.
 */
export function csvSerials(list) {
  if (list.length === 1 && /^[A-Za-z0-9-]+$/.test(list[0])) return `"=""${list[0]}"""`;
  return csvField(list.join(' '));
}

/** The byte order mark that opens a CSV file: spreadsheets then read it as UTF-8. */
export const CSV_BOM = '\uFEFF';

/** The header of [`recordsCsvRows`]. */
export const RECORDS_CSV_HEADER = ['seq', 'at', 'actor', 'kind', 'station', 'serials', 'details', 'event'];

/**
 * Records as CSV rows (CRLF-terminated), the whole event as JSON in the last column;
 * `atStation`: the station filtered by, if any (see [`recordStation`]).
 */
export function recordsCsvRows(records, atStation = '') {
  return records.map((r) => [csvField(r.seq), csvField(r.at), csvField(r.actor), csvField(recordKind(r)),
    csvField(recordStation(r, atStation)), csvSerials(recordSerials(r)), csvField(recordDetail(r)),
    csvField(JSON.stringify(r.event))].join(',') + '\r\n').join('');
}
