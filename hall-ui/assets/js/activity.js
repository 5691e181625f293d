// The hall view's recent activity: the stream's events in words (ids, stations and people's
// ids only: an event's other fields, whatever they hold, are never shown, so passport-holder
// data cannot reach the feed), newest first. A busy line sends a burst of one kind of event in
// one second (a dozen patches applied at speed 20): the events of one kind in one second are
// one line with their count and stations, "patch applied ×12 at LAM-01: J-…, J-…, J-…, …".

import { jobId, READINESS, PHASE } from './common.js';

/** One event in words. */
export function describe(name, d) {
  const words = name.replace(/_/g, ' ');
  switch (name) {
    case 'device_state':
      return `${d.device || d.station} (${d.station}) is ${READINESS[d.readiness] || d.readiness}`;
    case 'step_phase':
      return `${d.station}: ${jobId(d.job)} ${PHASE[d.phase] || d.phase}`;
    case 'storage':
      return d.state === 'ok' ? 'the store records again' : `the store is ${d.state}`;
    default: {
      const parts = [label(name, d)];
      if (d.job) parts.push(jobId(d.job));
      else if (d.jobs > 1) parts.push(`${d.jobs} jobs`);
      if (d.stage) parts.push(`(${d.stage})`);
      if (d.station) parts.push(`at ${d.station}`);
      if (d.alert) parts.push(d.alert.kind ? `${d.alert.id} (${d.alert.kind.replace(/_/g, ' ')}, ${d.alert.subject})` : d.alert.id);
      if (d.actor) parts.push(`by ${d.actor}`);
      return parts.join(' ') || words;
    }
  }
}

/** What kind of event this is, for grouping: the event's name, and its change or phase. */
export function kindOf(name, d) {
  if (name === 'job_changed' && d.change) return `${name}:${d.change}`;
  if (name === 'step_phase' && d.phase) return `${name}:${d.phase}`;
  return name;
}

/** The words for a kind of event ("patch applied", "job printed", "device working"). */
function label(name, d) {
  if (name === 'job_changed' && d.change) return `job ${d.change.replace(/_/g, ' ')}`;
  if (name === 'step_phase') return PHASE[d.phase] || String(d.phase || 'step').replace(/_/g, ' ');
  if (name === 'device_state') return 'device state';
  return name.replace(/_/g, ' ');
}

/** What one event of a group was about, in a word or two (a job, an alert, else a device). */
function subjectOf(name, d) {
  if (name === 'device_state') return `${d.device || d.station} ${READINESS[d.readiness] || d.readiness}`;
  if (d.job) return jobId(d.job);
  if (d.alert) return d.alert.id;
  // The station is named as the group's place.
  return d.station ? '' : (d.device || '');
}

/** How many subjects (and stations) a grouped line names before "…". */
const NAMED = 3;

/** The first `NAMED` of `list`, then "…" if there are more. */
function some(list, total) {
  const named = list.slice(0, NAMED).join(', ');
  return total > NAMED ? `${named}, …` : named;
}

/**
 * A group's line: its kind and count, where (the stations: a supervisor looks for the place
 * first), then what ("patch applied ×12 at LAM-01, LAM-02: J-…40, J-…41, J-…42, …").
 */
function groupText(words, g) {
  const where = g.stations.length ? ` at ${some(g.stations, g.stations.length)}` : '';
  const what = g.subjects.length ? `: ${some(g.subjects, g.count)}` : '';
  return `${words} ×${g.count}${where}${what}`;
}

/**
 * The feed: at most `max` lines, newest first. Each line: `id` (stable while the line is
 * shown), `kind`, `second` (the events' time, to the second, as the controller wrote it),
 * `at`, `count` and `text`.
 */
export class Activity {
  constructor(max) {
    this.max = max;
    this.groups = [];
    this.next = 1;
  }

  /** Adds one event; returns its line. */
  add(name, d) {
    const kind = kindOf(name, d);
    const second = typeof d.at === 'string' ? d.at.slice(0, 19) : '';
    const subject = subjectOf(name, d);
    // The lines of this second are the newest, at the top; the events of one second come
    // interleaved (a job's step, its patch, its change), so any line of the same kind counts.
    const head = second ? this.groups.find((g) => g.second === second && g.kind === kind) : null;
    if (head) {
      head.count += 1;
      head.at = d.at;
      if (subject && head.subjects.length <= NAMED) head.subjects.push(subject);
      if (d.station && !head.stations.includes(d.station)) head.stations.push(d.station);
      head.text = groupText(label(name, d), head);
      return head;
    }
    const line = {
      id: this.next,
      kind,
      second,
      at: d.at,
      count: 1,
      subjects: subject ? [subject] : [],
      stations: d.station ? [d.station] : [],
      text: describe(name, d),
    };
    this.next += 1;
    this.groups.unshift(line);
    if (this.groups.length > this.max) this.groups.length = this.max;
    return line;
  }

  /** The lines, newest first. */
  lines() {
    return this.groups;
  }
}
