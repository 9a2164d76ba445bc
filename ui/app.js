// The audit-trail page: reads GET /events and GET /events/summary with the read key and shows
// them, and exports the events of the filters as a file. Every value from a stored event is
// put in the page as text (textContent, text nodes, attributes), never as HTML, and read
// from JSON objects by own property only (an action may be named `constructor`). The key
// lives in sessionStorage only and travels in the Authorization header; the filters live in
// the page's own URL.
'use strict';

const KEY = 'acr-webhook.read-key';
const ACTIONS = ['push', 'delete', 'quarantine', 'chart_push', 'chart_delete'];
const FILTERS = ['image', 'tag', 'action', 'since', 'until'];
const PAGE = 50;
const EXPORT_PAGE = 100; // the read API's largest page
// The CSV export's columns: the stored document's fields (README "Export"; crates/cli/src/csv.rs
// has the same list and rules).
const COLUMNS = ['id', 'action', 'timestamp', 'receivedAt', 'loginServer', 'image', 'tag',
  'digest', 'mediaType', 'size', 'requestId', 'requestMethod', 'userAgent', 'source',
  'contentHash', 'eventId', 'conflictsWith', 'name', 'version'];
const $ = (id) => document.getElementById(id);
let next = null; // the continuation of the events shown
let shown = 0;
let generation = 0; // answers to an older view are dropped
const summaries = new Map(); // summary query -> its answer (a promise): counts are asked once
let exporting = null; // the AbortController of the export running

// An element with attributes and children (strings become text nodes).
function el(name, attributes, ...children) {
  const node = name.startsWith('svg:')
    ? document.createElementNS('http://www.w3.org/2000/svg', name.slice(4))
    : document.createElement(name);
  for (const [k, v] of Object.entries(attributes || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function key() { return sessionStorage.getItem(KEY); }

function say(text) {
  $('status').textContent = text;
  $('status').hidden = !text;
}

// GET with the key; the answer's JSON, or an Error whose message is what the user sees (an
// AbortError when `signal` aborted it).
async function get(path, signal) {
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: 'Bearer ' + key() }, cache: 'no-store', signal });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new Error('The receiver did not answer: ' + e.message);
  }
  if (response.ok) return response.json();
  if (response.status === 401) throw new Error('Wrong or missing read key.');
  if (response.status === 503) throw new Error('The store is unavailable, try again.');
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  throw new Error(body && body.error
    ? body.error + ': ' + body.message
    : 'HTTP ' + response.status + ' ' + response.statusText);
}

// The filters of the page's URL (since/until as RFC 3339 UTC).
function filters() {
  const url = new URLSearchParams(location.search);
  const f = {};
  for (const name of FILTERS) if (url.get(name)) f[name] = url.get(name);
  return f;
}

// A query string: every value percent-encoded (the read API reads `+` as `+`, not a space).
function query(f, extra) {
  return Object.entries({ ...f, ...extra })
    .map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v)).join('&');
}

// datetime-local (local time) <-> RFC 3339 UTC.
function toLocalInput(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return '';
  const p = (n) => String(n).padStart(2, '0');
  return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' +
    p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds());
}
function fromLocalInput(value) {
  const d = new Date(value);
  return value && !isNaN(d) ? d.toISOString() : '';
}

function fillForm(f) {
  $('f-image').value = f.image || '';
  $('f-tag').value = f.tag || '';
  $('f-action').value = f.action || '';
  $('f-since').value = f.since ? toLocalInput(f.since) : '';
  $('f-until').value = f.until ? toLocalInput(f.until) : '';
}

function formFilters() {
  const f = {};
  for (const name of ['image', 'tag', 'action']) {
    const v = $('f-' + name).value.trim();
    if (v) f[name] = v;
  }
  for (const name of ['since', 'until']) {
    const v = fromLocalInput($('f-' + name).value);
    if (v) f[name] = v;
  }
  return f;
}

function badge(action) {
  const known = ACTIONS.includes(action);
  return el('span', { class: 'badge b-' + (known ? action : 'other') }, String(action ?? 'unknown'));
}

function size(n) {
  if (typeof n !== 'number') return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + units[i];
}

function text(v) { return typeof v === 'string' || typeof v === 'number' ? String(v) : ''; }

function cell(label, ...children) {
  return el('td', { 'data-label': label }, el('span', {}, ...children));
}

function row(e) {
  const at = new Date(e.receivedAt);
  const time = el('button', { class: 'time', type: 'button', title: text(e.receivedAt) + ' (UTC)' },
    isNaN(at) ? text(e.receivedAt) || '(no time)' : at.toLocaleString());
  const name = e.name ? text(e.name) + ':' + text(e.version) // a chart
    : text(e.image) + (e.tag ? ':' + text(e.tag) : '');
  const digest = text(e.digest);
  const short = digest.replace(/^(sha256:)?([0-9a-f]{12})[0-9a-f]+$/, '$1$2…');
  const copy = el('button', { class: 'copy', type: 'button', 'aria-label': 'Copy digest ' + digest }, 'copy');
  copy.addEventListener('click', (ev) => {
    ev.stopPropagation();
    navigator.clipboard.writeText(digest).then(
      () => { copy.textContent = 'copied'; },
      () => { copy.textContent = 'copy failed'; });
  });
  const tr = el('tr', { 'data-id': text(e.id) },
    cell('Time', time),
    cell('Action', badge(e.action)),
    cell('Image', name),
    cell('Digest', ...(digest ? [el('code', { title: digest }, short), copy] : [])),
    cell('Size', size(e.size)),
    cell('Source', text(e.source)),
    cell('Login server', text(e.loginServer)));
  tr.addEventListener('click', () => detail(e.id, tr));
  return tr;
}

async function detail(id, tr) {
  for (const open of document.querySelectorAll('tr.open')) open.classList.remove('open');
  tr.classList.add('open');
  // The query form names any id: `/events/summary` is the summary, and fetch() drops a path
  // segment `.` or `..` (even written %2E).
  const path = '/events?' + query({ id });
  $('detail-link').textContent = path;
  $('detail-json').textContent = 'loading…';
  $('detail').hidden = false;
  $('detail').focus();
  try {
    $('detail-json').textContent = JSON.stringify(await get(path), null, 2);
  } catch (e) {
    $('detail-json').textContent = e.message;
  }
}

async function loadEvents(view, f, more) {
  const page = await get('/events?' + query(f, more ? { limit: PAGE, continuation: next } : { limit: PAGE }));
  if (view !== generation) return;
  const body = $('events').tBodies[0];
  if (!more) { body.replaceChildren(); shown = 0; }
  for (const e of page.events) body.append(row(e));
  shown += page.events.length;
  next = page.continuation || null;
  $('more').hidden = !next;
  $('end').textContent = next ? '' : shown ? 'All ' + shown + ' events shown.' : 'No events match.';
  $('count').textContent = '(' + shown + (next ? '+' : '') + ')';
}

// The summary of a query, asked for once per page load: a summary may read 20,000 documents.
function summary(q) {
  if (!summaries.has(q)) {
    const answer = get('/events/summary?' + q).then((s) => ({ s, at: new Date() }));
    summaries.set(q, answer);
    answer.catch(() => summaries.delete(q)); // an error is not kept
  }
  return summaries.get(q);
}

// The activity chart: one bar per hour or day, stacked by action, from the exact counts.
async function loadChart(view, f) {
  const { s, at } = await summary(query(f));
  if (view !== generation) return;
  const step = s.bucket === 'hour' ? 3600e3 : 86400e3;
  const first = Math.floor(Date.parse(s.since) / step) * step;
  const end = Date.parse(s.until);
  // Maps, not objects: an action may be named `constructor` or `__proto__`.
  const totals = new Map(Object.entries(s.actions));
  const byStart = new Map(s.buckets.map((b) => [Date.parse(b.start), new Map(Object.entries(b.counts))]));
  const starts = [];
  for (let t = first; t < end; t += step) starts.push(t);
  const others = [...totals.keys()].filter((a) => !ACTIONS.includes(a)).sort();
  const order = ACTIONS.concat(others);
  const max = Math.max(1, ...s.buckets.map((b) => b.total));
  const W = 800, H = 200, left = 34, bottom = 18, top = 6;
  const bw = (W - left) / starts.length;
  const y = (n) => (H - bottom - top) * n / max;
  const label = (t) => s.bucket === 'hour'
    ? new Date(t).toISOString().slice(5, 13).replace('T', ' ') + 'h'
    : new Date(t).toISOString().slice(0, 10);
  const svg = el('svg:svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img',
    'aria-label': s.total + ' events per ' + s.bucket + ' from ' + s.since + ' to ' + s.until });
  svg.append(el('svg:line', { x1: left, x2: W, y1: H - bottom, y2: H - bottom }),
    el('svg:text', { x: left - 4, y: top + 10, 'text-anchor': 'end' }, max),
    el('svg:text', { x: left - 4, y: H - bottom, 'text-anchor': 'end' }, 0));
  starts.forEach((t, i) => {
    const counts = byStart.get(t);
    let base = H - bottom;
    for (const action of order) {
      const n = counts && counts.get(action);
      if (typeof n !== 'number' || !(n > 0)) continue;
      const h = y(n);
      base -= h;
      svg.append(el('svg:rect', {
        x: left + i * bw + bw * 0.1, y: base, width: Math.max(1, bw * 0.8), height: h,
        class: 'f-' + (ACTIONS.includes(action) ? action : 'other'),
        'data-start': new Date(t).toISOString(), 'data-action': action, 'data-count': n,
      }, el('svg:title', {}, label(t) + ' UTC: ' + n + ' ' + action)));
    }
  });
  const ticks = Math.min(starts.length, 6);
  for (let k = 0; k < ticks; k++) {
    const i = Math.round(k * (starts.length - 1) / Math.max(1, ticks - 1));
    svg.append(el('svg:text', { x: left + (i + 0.5) * bw, y: H - 4, 'text-anchor': 'middle' }, label(starts[i])));
  }
  $('chart').replaceChildren(svg);
  $('legend').replaceChildren(...order.filter((a) => totals.get(a)).map((a) =>
    el('li', {}, el('span', { class: 'f-' + (ACTIONS.includes(a) ? a : 'other') }), a + ' ' + totals.get(a))));
  $('chart-caption').textContent = s.total + ' events per ' + s.bucket + ' (UTC), ' +
    new Date(s.since).toLocaleString() + ' to ' + new Date(s.until).toLocaleString() +
    (f.since || f.until ? '' : ' (the last 7 days)') + ', counted at ' + at.toLocaleTimeString();
}

// The export: one CSV line from values (RFC 4180, as crates/cli/src/csv.rs writes it). A
// string is its cell; a number, boolean, object or array its JSON; null or absent is empty. A
// cell starting with = + - @ tab or CR gets a ' in front (a spreadsheet would run it as a
// formula: repository and tag names come from whoever pushes); one holding " , CR or LF is
// quoted, " doubled. Lines end with CRLF.
function csvLine(values) {
  return values.map((v) => {
    let cell = v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v);
    if (/^[=+\-@\t\r]/.test(cell)) cell = "'" + cell;
    return /[",\r\n]/.test(cell) ? '"' + cell.replaceAll('"', '""') + '"' : cell;
  }).join(',') + '\r\n';
}

function csvRow(e) {
  return csvLine(COLUMNS.map((c) => (Object.hasOwn(e, c) ? e[c] : undefined)));
}

// Every event of the filters shown, newest first, following the continuation to the end, as
// one file built here and handed to the browser as a download.
async function exportEvents(format) {
  if (exporting) return;
  const controller = new AbortController();
  exporting = controller;
  const f = filters();
  const parts = format === 'csv' ? [csvLine(COLUMNS)] : [];
  let count = 0;
  let continuation = null;
  $('export-cancel').hidden = false;
  for (const b of document.querySelectorAll('#export .download')) b.disabled = true;
  $('export-status').textContent = 'Exporting…';
  try {
    do {
      const page = await get('/events?' + query(f, continuation
        ? { limit: EXPORT_PAGE, continuation } : { limit: EXPORT_PAGE }), controller.signal);
      for (const e of page.events) parts.push(format === 'csv' ? csvRow(e) : JSON.stringify(e) + '\n');
      count += page.events.length;
      continuation = page.continuation || null;
      $('export-status').textContent = 'Exporting… ' + count + ' events so far';
    } while (continuation);
    const name = 'acr-webhook-events-' + new Date().toISOString().replace(/[:.]/g, '-') + '.' + format;
    const file = new Blob(parts, { type: format === 'csv' ? 'text/csv;charset=utf-8' : 'application/x-ndjson' });
    const url = URL.createObjectURL(file);
    const link = el('a', { href: url, download: name, hidden: '' });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60e3);
    $('export-status').textContent = 'Downloaded ' + count + ' events as ' + name + '.';
  } catch (e) {
    if (controller.signal.aborted) {
      $('export-status').textContent = 'Export cancelled after ' + count + ' events; nothing downloaded.';
    } else {
      $('export-status').textContent = 'Export failed; nothing downloaded.';
      fail(e);
    }
  } finally {
    exporting = null;
    $('export-cancel').hidden = true;
    for (const b of document.querySelectorAll('#export .download')) b.disabled = false;
  }
}

// Shows the view the URL names.
async function show() {
  const view = ++generation;
  document.body.dataset.state = 'loading';
  const f = filters();
  fillForm(f);
  $('key-form').hidden = !!key();
  $('key-set').hidden = !key();
  $('export').hidden = !key();
  if (!exporting) $('export-status').textContent = 'Every event of these filters, newest first.';
  $('detail').hidden = true;
  say('');
  if (!key()) {
    $('events').tBodies[0].replaceChildren();
    $('chart').replaceChildren();
    $('legend').replaceChildren();
    $('more').hidden = true;
    $('end').textContent = $('count').textContent = $('chart-caption').textContent = '';
    $('key').focus();
    document.body.dataset.state = 'ready';
    return;
  }
  const results = await Promise.allSettled([loadEvents(view, f, false), loadChart(view, f)]);
  if (view !== generation) return;
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) fail(failed.reason);
  document.body.dataset.state = 'ready';
}

function forgetKey() {
  sessionStorage.removeItem(KEY);
  summaries.clear();
  if (exporting) exporting.abort();
}

function fail(error) {
  say(error.message);
  if (error.message.startsWith('Wrong or missing read key')) {
    forgetKey();
    $('export').hidden = true;
    $('key-form').hidden = false;
    $('key-set').hidden = true;
  }
}

$('key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(KEY, $('key').value);
  $('key').value = '';
  show();
});
$('forget').addEventListener('click', () => { forgetKey(); show(); });
$('filters').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const q = query(formFilters());
  history.pushState(null, '', q ? '?' + q : location.pathname);
  show();
});
$('clear').addEventListener('click', () => { history.pushState(null, '', location.pathname); show(); });
$('more').addEventListener('click', () => {
  document.body.dataset.state = 'loading';
  loadEvents(generation, filters(), true).catch(fail)
    .finally(() => { document.body.dataset.state = 'ready'; });
});
$('export-csv').addEventListener('click', () => exportEvents('csv'));
$('export-ndjson').addEventListener('click', () => exportEvents('ndjson'));
$('export-cancel').addEventListener('click', () => { if (exporting) exporting.abort(); });
function closeDetail() {
  $('detail').hidden = true;
  const open = document.querySelector('tr.open .time');
  if (open) open.focus();
}
$('detail-close').addEventListener('click', closeDetail);
$('detail').addEventListener('keydown', (ev) => { if (ev.key === 'Escape') closeDetail(); });
window.addEventListener('popstate', show);
show();
