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

/** A list of serials, shortened to its first and last few when long. */
export function serialList(list) {
  if (!list || list.length === 0) return '—';
  if (list.length <= 6) return list.join(' ');
  return `${list.slice(0, 3).join(' ')} … ${list.slice(-2).join(' ')} (${list.length})`;
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
      ['In the vault', (l) => String(l.in_vault.length)],
      ['Issued', (l) => String(l.issued.length)],
      ['Used', (l) => String(l.applied)],
      ['Awaiting approval', (l) => serialList(l.spoiled_pending || [])],
      ['Spoiled, to destroy', (l) => serialList(l.spoiled_approved || l.spoiled)],
      ['Destroyed', (l) => String(l.destroyed.length)],
      ['Missing', (l) => serialList(l.missing)],
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
      h('dt', { text: t.kind === 'patch' ? 'On booklet' : (t.kind ? 'Patch' : 'Partner') }), h('dd', { class: 'serial', text: t.partner || '—' }),
      h('dt', { text: 'Job' }), h('dd', { text: t.job ? jobId(t.job) : '—' }),
      h('dt', { text: 'Document number' }), h('dd', { text: t.document_number || '—' })),
    table('Every record about it and its partner', [
      ['Record', (s) => `#${s.seq}`],
      ['When', (s) => new Date(s.at).toISOString().replace('T', ' ').slice(0, 19)],
      ['Who', (s) => s.actor],
      ['Item', (s) => s.serial],
      ['Event', (s) => s.event],
      ['Station', (s) => s.station || '—'],
      ['What happened', (s) => s.detail + (s.reversed_by ? ` (reversed by #${s.reversed_by})` : '')],
    ], t.steps || [], { 'data-report': 'trace' }));
}

/** The missing items with their SLTD rows (`GET /ledger/missing`). */
export function missingView(m) {
  return table('Missing items (INTERPOL SLTD fields)', [
    ['Serial', (r) => r.document_number],
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
