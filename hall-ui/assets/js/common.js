// What the three pages share: the API client (cookie session and CSRF token, the one error
// body), the status stream (server-sent events read with fetch, so that it sends the CSRF
// token too), DOM
// helpers that only ever set text (never HTML built from data), formatting, and the page's
// error catcher.

/** One refusal or failure, with the API's own words (`rule`: the custody rule that refused). */
export class ApiError extends Error {
  constructor(status, code, message, field, rule) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
    this.rule = rule || null;
  }

  /** Whether this answer means the page's session is gone (see `sessionDead`). */
  get sessionDead() {
    return sessionDead(this.status, this.code);
  }
}

/**
 * Whether an answer means the page's session is dead, so that the page must sign in again:
 * 401 (no such session, or it expired), or 403 `csrf` (the CSRF token matches no session of
 * this browser: the controller restarted, or the session ended elsewhere). Any other 403 is a
 * refusal of one request by a signed-in user (a co-signer's wrong PIN, a custody rule) and keeps
 * the session.
 */
export function sessionDead(status, code) {
  return status === 401 || (status === 403 && code === 'csrf');
}

/**
 * The controller's API under /api/v1. Signing in opens a cookie session: the session token is
 * in an HttpOnly cookie this page's script never sees; what this tab's sessionStorage keeps
 * (under `key`: each page signs in for itself, and closing the tab forgets it) is who signed in
 * and the session's CSRF token, sent as `X-CSRF-Token` with every request (it also tells the
 * controller which of the browser's sessions a request belongs to).
 */
export class Api {
  constructor(key) {
    this.key = key;
    this.onSignedOut = () => {};
    const saved = sessionStorage.getItem(key);
    let s = null;
    try {
      s = saved ? JSON.parse(saved) : null;
    } catch (e) {
      s = null;
    }
    // A session saved by an older page (a bearer token, no CSRF token) is not used.
    this.session = s && s.csrf && !s.token ? s : null;
    if (!this.session) sessionStorage.removeItem(key);
  }

  get signedIn() {
    return this.session !== null;
  }

  /** The headers that authenticate a request of this tab's session. */
  authHeaders(headers) {
    const out = { ...(headers || {}) };
    if (this.session) out['X-CSRF-Token'] = this.session.csrf;
    return out;
  }

  async call(method, path, body) {
    const headers = this.authHeaders({ Accept: 'application/json' });
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let r;
    try {
      r = await fetch(`/api/v1${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'same-origin',
      });
    } catch (e) {
      throw new ApiError(0, 'network', 'the controller does not answer: check the network and try again');
    }
    if (r.status === 204) return null;
    const text = await r.text();
    let v = null;
    try {
      v = text ? JSON.parse(text) : null;
    } catch (e) {
      v = null;
    }
    if (!r.ok) {
      const e = v && v.error;
      const err = e
        ? new ApiError(r.status, e.code, e.message, e.field, e.rule)
        : new ApiError(r.status, 'http', `the controller answered ${r.status}`);
      if (err.sessionDead && this.session && path !== '/session') this.forget();
      throw err;
    }
    return v;
  }

  get(path) {
    return this.call('GET', path);
  }

  post(path, body) {
    return this.call('POST', path, body === undefined ? {} : body);
  }

  /** Signs in; at a station terminal `station` names the station. */
  async signIn(user, pin, station) {
    const body = { user, pin, cookie: true };
    if (station) body.station = station;
    const s = await this.call('POST', '/session', body);
    this.session = { user: s.user, role: s.role, station: s.station || null, csrf: s.csrf };
    sessionStorage.setItem(this.key, JSON.stringify(this.session));
    return this.session;
  }

  /**
   * Signs out. A refusal by the controller (409: a step is running on the station's device)
   * keeps the session, which is still open there, and is thrown; a dead session, or a
   * controller that does not answer, is forgotten all the same.
   */
  async signOut() {
    try {
      if (this.session) await this.call('DELETE', '/session');
    } catch (e) {
      if (e instanceof ApiError && e.status !== 0 && !e.sessionDead) throw e;
    }
    this.forget();
  }

  forget() {
    const had = this.session !== null;
    this.session = null;
    sessionStorage.removeItem(this.key);
    if (had) this.onSignedOut();
  }

  /** A fetch that downloads the answer as a file (exports). */
  async download(path, fallbackName) {
    const r = await fetch(`/api/v1${path}`, {
      headers: this.authHeaders(),
      cache: 'no-store',
      credentials: 'same-origin',
    });
    if (!r.ok) {
      let e = null;
      try {
        e = (await r.json()).error;
      } catch (x) {
        e = null;
      }
      throw new ApiError(r.status, e ? e.code : 'http', e ? e.message : `the controller answered ${r.status}`);
    }
    const cd = r.headers.get('Content-Disposition') || '';
    const m = /filename="([^"]+)"/.exec(cd);
    saveBlob(await r.blob(), m ? m[1] : fallbackName);
  }
}

/** Offers `blob` as a download named `name`. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/**
 * How long the status stream may be silent before the page says it is offline (ms). The
 * controller sends a heartbeat every 2 s when it has no event (`src/api/status.rs`).
 */
export const STREAM_SILENCE_MS = 5000;

/**
 * The line's status stream (`GET /api/v1/stream`): calls `onEvent(name, data)` for each event
 * (the first is `snapshot`) and `onState('live' | 'connecting' | 'down' | 'offline', detail)`.
 * Reconnects with a growing pause; a reconnect starts with a fresh snapshot, so nothing is
 * missed. A stream that brings nothing, not even a heartbeat, for `STREAM_SILENCE_MS` (a hung
 * controller, a network path that drops packets: the connection stays open) is given up and
 * opened anew, and the page is `offline` until the stream is live again: what it shows may be
 * stale. Returns a function that stops it.
 */
export function openStream(api, onEvent, onState) {
  let stopped = false;
  let ctl = null;
  let pause = 1000;
  // The last sign of the controller: a byte of the stream or its answer. And the start of the
  // current attempt to connect (null between attempts).
  let lastSign = performance.now();
  let attemptAt = null;
  let offline = false;
  const say = (s, detail) => {
    if (s === 'live') offline = false;
    else if (offline) return; // offline until live again, without flicker through "connecting"
    onState(s, detail);
  };
  const watchdog = setInterval(() => {
    const now = performance.now();
    if (!offline && now - lastSign >= STREAM_SILENCE_MS) {
      offline = true;
      onState('offline', `no event or heartbeat from the controller for ${STREAM_SILENCE_MS / 1000} s`);
    }
    // A silent stream, or an attempt to connect that got no answer: start again.
    const since = attemptAt === null ? now : Math.max(lastSign, attemptAt);
    if (ctl && now - since >= STREAM_SILENCE_MS) ctl.abort();
  }, 500);
  async function run() {
    while (!stopped) {
      say('connecting');
      ctl = new AbortController();
      attemptAt = performance.now();
      try {
        const r = await fetch('/api/v1/stream', {
          headers: api.authHeaders({ Accept: 'text/event-stream' }),
          signal: ctl.signal,
          cache: 'no-store',
          credentials: 'same-origin',
        });
        if (r.status === 401 || r.status === 403) {
          // A dead session is not retried: the page signs in again at once.
          let code = null;
          try {
            code = (await r.json()).error.code;
          } catch (e) {
            code = null;
          }
          if (sessionDead(r.status, code)) {
            api.forget();
            return;
          }
        }
        if (!r.ok || !r.body) throw new Error(`the stream answered ${r.status}`);
        lastSign = performance.now();
        say('live');
        pause = 1000;
        await readEvents(r.body, onEvent, () => {
          lastSign = performance.now();
        });
        if (!stopped) say('down', 'the stream ended');
      } catch (e) {
        if (stopped) return;
        say('down', e.message || String(e));
      }
      attemptAt = null;
      await new Promise((res) => setTimeout(res, pause));
      pause = Math.min(pause * 2, 10000);
    }
  }
  run();
  return () => {
    stopped = true;
    clearInterval(watchdog);
    if (ctl) ctl.abort();
  };
}

/**
 * Splits a text/event-stream body into events (comments and keep-alives skipped); `onBytes()`
 * on every chunk read (a heartbeat too).
 */
async function readEvents(body, onEvent, onBytes) {
  const reader = body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onBytes();
    buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let name = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data += line.slice(5).replace(/^ /, '');
      }
      if (!data) continue;
      let v;
      try {
        v = JSON.parse(data);
      } catch (e) {
        continue;
      }
      onEvent(name, v);
    }
  }
}

// ---- DOM ----------------------------------------------------------------------------------

/**
 * Makes an element. `props`: `class`, `text`, `on: {event: fn}`, and attributes (`id`,
 * `aria-*`, `data-*`, `type`, ...); `children`: nodes, strings (as text), arrays, nulls.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'selected') el[k] = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(document.createTextNode(String(c)));
  }
}

/** The element with `id` (which must exist). */
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`no element #${id}`);
  return el;
}

/**
 * Replaces `container`'s content with `nodes`, keeping keyboard focus on the element with the
 * same `data-key` (a live update must not throw a keyboard user out of what they were on).
 */
export function render(container, nodes) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.getAttribute('data-key') : null;
  container.replaceChildren(...[nodes].flat(Infinity).filter(Boolean));
  if (key) {
    const again = container.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

/**
 * Live views change in place: an element under the pointer or with the focus must stay the same
 * element (one built anew between a button's press and its release loses the click). These set
 * only what differs, so an unchanged element is not touched at all.
 */
export function setText(el, text) {
  const t = text === null || text === undefined ? '' : String(text);
  if (el.textContent !== t) el.textContent = t;
}

/** Sets (or, for null, undefined and false, removes) an attribute, if it differs. */
export function setAttr(el, name, value) {
  if (value === null || value === undefined || value === false) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
    return;
  }
  const v = String(value);
  if (el.getAttribute(name) !== v) el.setAttribute(name, v);
}

/** Shows or hides an element, if that changes anything. */
export function setHidden(el, hidden) {
  if (el.hidden !== !!hidden) el.hidden = !!hidden;
}

/**
 * Makes `container`'s children the elements of `items`, in order, keyed by `key(item)`: an item
 * shown before keeps its element, updated by `update(el, item)`; a new one gets `create(item)`;
 * an element whose item is gone is removed. Elements move only when out of order.
 */
export function keyedList(container, items, key, create, update) {
  const old = new Map();
  for (const el of container.children) if (el.dataset.item !== undefined) old.set(el.dataset.item, el);
  const keep = new Set();
  let prev = null;
  const seen = new Set();
  for (const item of items) {
    const k = String(key(item));
    // Two items with one key would share one element and flicker between them: the first wins.
    if (seen.has(k)) {
      console.warn(`keyedList: a second item with key ${k} is not shown`);
      continue;
    }
    seen.add(k);
    let el = old.get(k);
    if (!el) {
      el = create(item);
      el.dataset.item = k;
    }
    update(el, item);
    keep.add(el);
    const want = prev ? prev.nextElementSibling : container.firstElementChild;
    if (want !== el) container.insertBefore(el, want);
    prev = el;
  }
  for (const el of [...container.children]) if (!keep.has(el)) el.remove();
}

/**
 * How long a button must have stood still, with the same command, before a pointer click on it
 * counts (ms): about a double-click's interval. A live view moves and relabels buttons; a
 * person aims before pressing, so a click within this time of a change was aimed at something
 * else.
 */
export const STEADY_MS = 700;

const steady = new WeakMap(); // button -> { x, y, label, movedAt }
const pressed = new WeakMap(); // button -> its label when the pointer went down on it

/**
 * Where a button stands on the page (scrolling the page, the person's own doing, moves nothing)
 * and whether it moved from `was` far enough for the pointer to be on something else: by half
 * its width or height. A few pixels of drift (a scroll bar appearing, a font loading) do not
 * count; a list shifting by a row does.
 */
function placeOf(b) {
  const r = b.getBoundingClientRect();
  return { x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height };
}
function movedFrom(was, p) {
  return Math.abs(was.x - p.x) > Math.max(p.w, 4) / 2 || Math.abs(was.y - p.y) > Math.max(p.h, 4) / 2;
}

/** What a button does, as a person reads it: its command and its text. */
function labelOf(b) {
  return `${b.dataset.verb || ''}|${b.dataset.device || ''}|${b.textContent}`;
}

/**
 * Notes where each button in `container` stands and what it says, after a live update:
 * a button that moved or changed its command, or that a live update drew anew
 * (`drawnAnew`), is unsteady for `STEADY_MS`.
 */
export function noteButtons(container, now = performance.now(), drawnAnew = false) {
  for (const b of container.querySelectorAll('button')) {
    const p = placeOf(b);
    const label = labelOf(b);
    const was = steady.get(b);
    if (!was) {
      // A button drawn anew by a live update (not by the person's own action) counts as moved.
      steady.set(b, { ...p, label, movedAt: drawnAnew ? now : -Infinity });
      if (drawnAnew) b.dataset.movedAt = String(Math.round(now));
    } else if (movedFrom(was, p) || was.label !== label) {
      steady.set(b, { ...p, label, movedAt: now });
      b.dataset.movedAt = String(Math.round(now)); // (what a test waits on, as a person looks)
    } else {
      steady.set(b, { ...p, label, movedAt: was.movedAt }); // drift: followed, not counted
    }
  }
}

document.addEventListener('pointerdown', (e) => {
  const b = e.target instanceof Element && e.target.closest('button');
  if (b) pressed.set(b, labelOf(b));
}, true);

/**
 * Why a click on button `b` must not count, or null when it may: the pointer went down on a
 * button that said something else (a snapshot turned "Pause" into "Resume" between press and
 * release), or the button moved or changed less than `STEADY_MS` ago (a list shifted under a
 * resting pointer, an impatient second click after the first one's effect). A click from the
 * keyboard (`detail` 0) is the focused button's own and always counts.
 */
export function unsteadyClick(e, b, now = performance.now()) {
  if (e.detail === 0) return null;
  const label = labelOf(b);
  const down = pressed.get(b);
  pressed.delete(b);
  if (down !== undefined && down !== label) return 'the button changed while it was pressed';
  const st = steady.get(b);
  if (!st) return null;
  // A move the last update has not noted yet (a banner, a list growing above it) counts too.
  const p = placeOf(b);
  if (movedFrom(st, p)) {
    steady.set(b, { ...p, label, movedAt: now });
    b.dataset.movedAt = String(Math.round(now));
    return 'the button had just moved';
  }
  // (A test may lengthen the wait, to make "just" independent of its machine's speed.)
  const wait = window.hallctlSteadyMs ?? STEADY_MS;
  if (now - st.movedAt < wait) return 'the button had just moved or changed';
  return null;
}

/** Says `text` to screen readers (polite) and shows it in the page's status line. */
export function announce(text) {
  const el = document.getElementById('announce');
  if (el) el.textContent = text;
}

/** The values of a form's named fields, trimmed. */
export function fields(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    out[el.name] = el.type === 'checkbox' ? el.checked : el.value.trim();
  }
  return out;
}

/**
 * Wires `form` so that submitting it runs `action(values)`: its submit button is disabled while
 * it runs, and a refusal is shown in the form's `.form-error` (in the API's words). Returns
 * nothing; `action` may return a message to announce.
 */
export function onSubmit(form, action) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const out = form.querySelector('.form-error');
    const button = form.querySelector('button[type=submit]');
    if (out) out.textContent = '';
    if (button) button.disabled = true;
    try {
      const said = await action(fields(form), form);
      if (said) announce(said);
    } catch (e) {
      if (out) showError(out, e, form);
      else throw e;
    } finally {
      if (button) button.disabled = false;
    }
  });
}

/** Shows a refusal in `out` and puts the cursor in the field it names, if the form has it. */
export function showError(out, e, form) {
  out.textContent = e.message || String(e);
  if (form && e.field) {
    const name = String(e.field).replace(/\[\d+\].*$/, '');
    const el = form.elements.namedItem(name);
    if (el && el.focus) el.focus();
  }
}

// ---- barcode scanners --------------------------------------------------------------------------

/** Longest pause (ms) between a scanner's keystrokes; a person typing is far slower. */
export const SCAN_GAP_MS = 50;
/** Fewest characters a scan has (the shortest serial or badge is longer). */
export const SCAN_MIN_CHARS = 4;

/**
 * Keeps barcode scans out of the wrong place. A scanner is a keyboard that types its code fast
 * (each key a few ms after the last) and then Enter, into whatever has the focus: a free-text
 * field (the scan would become its text and the Enter send it), a button (the Enter would press
 * it), a select (the keys would change the choice) or nothing at all.
 *
 * So, while the focus is anywhere but where `mayTakeScan(el)` says a scan may go: keystrokes are
 * watched; when at least SCAN_MIN_CHARS characters, then Enter, each came within SCAN_GAP_MS of
 * the one before, that was a scan. Its Enter is stopped (nothing is sent, nothing pressed), the
 * element it was typed into gets its value back as it was before the scan, and the code goes to
 * `onScan(code)`. Slower typing is not touched: a person typing a reason and pressing Enter sends
 * that form as always. A scan into a scan field is left to that field.
 */
export function routeScans(mayTakeScan, onScan) {
  let burst = null; // { code, last: time of the last key, el, before: el's value before it }
  window.addEventListener('keydown', (e) => {
    const el = document.activeElement;
    if (mayTakeScan(el)) {
      burst = null;
      return;
    }
    if (e.key === 'Shift') return; // a scanner holds Shift for capitals
    const quick = burst !== null && e.timeStamp - burst.last <= SCAN_GAP_MS;
    if (e.key === 'Enter') {
      const scan = quick && burst.code.length >= SCAN_MIN_CHARS ? burst : null;
      burst = null;
      if (!scan) return;
      e.preventDefault();
      e.stopImmediatePropagation();
      if (scan.before !== null && scan.el.isConnected) scan.el.value = scan.before;
      onScan(scan.code);
      return;
    }
    if (e.key.length !== 1 || e.ctrlKey || e.metaKey || e.altKey) {
      burst = null;
      return;
    }
    if (!quick) {
      const keepsText = el && ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName);
      burst = { code: '', el, before: keepsText ? el.value : null };
    }
    burst.code += e.key;
    burst.last = e.timeStamp;
  }, true);
}

/** A labelled input: `<label>text <input name=...></label>`. */
export function field(label, name, attrs) {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id, text: label }),
    h('input', { id, name, autocomplete: 'off', spellcheck: 'false', ...(attrs || {}) }),
  );
}

/** A labelled select. */
export function select(label, name, options, attrs) {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id, text: label }),
    h('select', { id, name, ...(attrs || {}) }, options.map(([v, t]) => h('option', { value: v, text: t }))),
  );
}

// ---- serials ---------------------------------------------------------------------------------

/**
 * Serials as typed or scanned: a range as printed on a box or roll (`0041200-0041349`,
 * `BK-9001200-BK-9001299`: the '-' after the first number separates), or a list separated by
 * spaces, commas or new lines. Returns the body the custody API takes: `{range}` or `{serials}`.
 */
export function parseSerials(text) {
  const t = text.trim().toUpperCase();
  if (!/[\s,]/.test(t) && /\d-.*\d$/.test(t)) return { range: t };
  return { serials: t.split(/[\s,]+/).filter(Boolean) };
}

/** Every serial of a range written as `parseSerials` reads it, or null when it is not one. */
export function expandRange(text) {
  const t = text.trim().toUpperCase();
  const m = /^(.*?)(\d+)-(.*?)(\d+)$/.exec(t);
  if (!m) return null;
  const [, prefix, a, p2, b] = m;
  if (p2 && p2 !== prefix) return null;
  const first = Number(a);
  const last = Number(b);
  if (!(last >= first) || last - first > 10000) return null;
  const out = [];
  for (let n = first; n <= last; n++) out.push(`${prefix}${String(n).padStart(a.length, '0')}`);
  return out;
}

// ---- formatting ------------------------------------------------------------------------------

/** `J-00000042`, as the controller writes job ids. */
export function jobId(n) {
  return `J-${String(n).padStart(8, '0')}`;
}

/** A class name in words. */
export function className(c) {
  return { normal: 'normal', urgent: 'urgent', fast_track: 'fast-track' }[c] || c;
}

/** `14:05` (local time), or `21 Nov 14:05` when not today. */
export function clock(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const now = new Date();
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  if (d.toDateString() === now.toDateString()) return hm;
  return `${d.toLocaleDateString([], { day: 'numeric', month: 'short' })} ${hm}`;
}

/** `3 min`, `2 h 05 min`, `4 d 3 h`. */
export function age(ms) {
  const m = Math.max(0, Math.floor(ms / 60000));
  if (m < 60) return `${m} min`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h ${String(m % 60).padStart(2, '0')} min`;
  return `${Math.floor(hrs / 24)} d ${hrs % 24} h`;
}

/** The shift a moment belongs to, as the controller names it: A 06–14, B 14–22, C 22–06 UTC,
 *  dated by the day it started (`2026-11-21C`). */
export function shiftOf(date) {
  const d = new Date(date.getTime());
  const hr = d.getUTCHours();
  let letter = 'C';
  if (hr >= 6 && hr < 14) letter = 'A';
  else if (hr >= 14 && hr < 22) letter = 'B';
  else if (hr < 6) d.setUTCDate(d.getUTCDate() - 1);
  return `${d.toISOString().slice(0, 10)}${letter}`;
}

/** What a device's readiness means, in words. */
export const READINESS = {
  ready: 'ready',
  paused: 'paused',
  faulted: 'fault',
  offline: 'offline',
};

/** What a step's phase means, in words. */
export const PHASE = {
  assigned: 'assigned: scan to start',
  running: 'device working',
  awaiting_confirmation: 'waiting for confirmation',
};

// ---- errors of the page itself ---------------------------------------------------------------

/**
 * Shows any uncaught error of the page in its banner, and counts it on `<body data-ui-errors>`
 * (the browser tests read it: a page that threw has failed).
 */
export function catchPageErrors() {
  const show = (msg) => {
    const n = Number(document.body.dataset.uiErrors || '0') + 1;
    document.body.dataset.uiErrors = String(n);
    document.body.dataset.uiLastError = msg;
    const el = document.getElementById('page-error');
    if (el) {
      el.hidden = false;
      el.textContent = `Something went wrong in this page: ${msg}. Reload it (F5); nothing you confirmed is lost.`;
    }
  };
  window.addEventListener('error', (e) => show(e.message || 'an error'));
  window.addEventListener('unhandledrejection', (e) => {
    const r = e.reason;
    show(r && r.message ? r.message : String(r));
  });
}

/**
 * Shows the store's state (the snapshot's `storage`, or a `storage` event) in the page's
 * `#storage-banner`: when the ledger records nothing, no patch or booklet can be issued or
 * applied, and everyone at a terminal must know why at once.
 */
export function showStorage(st) {
  const el = document.getElementById('storage-banner');
  if (!el || !st) return;
  const stopped = st.state === 'halted' || st.state === 'failed';
  el.hidden = st.state === 'ok';
  el.dataset.state = st.state;
  el.classList.toggle('page-error', stopped);
  el.classList.toggle('storage-low', !stopped);
  el.textContent = stopped
    ? `Recording stopped: no patch or booklet can be issued or applied. ${st.detail || ''}`
    : `Storage: ${st.detail || st.state}`;
}

/** Runs `fn` at most once per `ms`, trailing: bursts of events become one refresh. */
export function debounce(fn, ms) {
  let t = null;
  let again = false;
  let running = false;
  const fire = async () => {
    t = null;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await fn();
    } finally {
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  };
  const schedule = () => {
    if (!t) t = setTimeout(fire, ms);
  };
  return schedule;
}
