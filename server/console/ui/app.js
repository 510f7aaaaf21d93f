// Doorbell MDM web console.
//
// A client of the public REST API like any other: every call carries the
// operator's token (kept in sessionStorage, so it is gone when the tab
// closes) as "Authorization: Bearer". Live updates come from GET /events, read
// with fetch() streaming so the token travels in the header, never in a URL.
// Nothing here builds HTML from strings: device-supplied text (model, OS) only
// ever becomes text nodes.

import { loadCatalog, policyEditBody } from './catalog.js';
import { commandsPanel } from './commands.js';
import { revisionsPanel } from './revisions.js';
import { inventoryCard, fleetInventory } from './inventory.js';
import { operatorView } from './pages.js';
import { sortable, selection, bulkBar } from './fleettools.js';
import { complianceChart } from './chart.js';

const TOKEN_KEY = 'doorbell.token';
const STATES = ['UNKNOWN', 'STALE', 'NON_COMPLIANT', 'COMPLIANT'];
const STATE_HELP = {
  UNKNOWN: 'never reported',
  STALE: 'has not applied the latest policy yet',
  NON_COMPLIANT: 'applied the policy, but a setting differs',
  COMPLIANT: 'matches its policy',
};
// Known settings, in display order; GET /settings (catalog.js) adds every
// setting the server knows. Others found in a policy are shown too.
const SETTINGS = {
  cameraDisabled: { label: 'Camera disabled', type: 'bool' },
  screenCaptureDisabled: { label: 'Screen capture disabled', type: 'bool' },
  statusBarDisabled: { label: 'Status bar disabled', type: 'bool' },
  lockTaskPackages: { label: 'Kiosk apps (lock task packages)', type: 'list' },
  usbFileTransferDisabled: { label: 'USB file transfer disabled', type: 'bool' },
  passwordMinLength: { label: 'Minimum password length', type: 'int' },
  sshPasswordAuthDisabled: { label: 'SSH password login disabled', type: 'bool' },
  autoUpdatesEnabled: { label: 'Automatic updates enabled', type: 'bool' },
};
// Fields of policies and reports that are not settings.
const NOT_SETTINGS = new Set(['version', 'appliedPolicyVersion', 'compliant', 'receivedAt', 'reportedAt', 'nonce',
  'monitor', 'modes', 'mode', 'unsupported', 'failed', 'failing', 'agentSha256', 'syncIntervalSeconds']);

// --- DOM --------------------------------------------------------------------

// el builds an element. Children that are not nodes become text nodes.
function el(tag, props, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') n.className = v;
    else if (k === 'dataset') Object.assign(n.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') n.addEventListener(k.slice(2), v);
    else if (k === 'value') n.value = v;
    else if (k === 'checked') n.checked = !!v;
    else n.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat(Infinity)) {
    if (k == null || k === false) continue;
    n.append(k instanceof Node ? k : String(k));
  }
  return n;
}

const $ = (sel, root = document) => root.querySelector(sel);
const main = () => $('#main');

function badge(state, id) {
  const s = STATES.includes(state) ? state : 'UNKNOWN';
  return el('span', { class: 'badge s-' + s, id, dataset: { state: s }, title: STATE_HELP[s] }, s);
}

function presence(connected, id) {
  return el('span', { class: 'presence ' + (connected ? 'on' : 'off'), id, dataset: { connected: String(!!connected) } },
    el('i', { 'aria-hidden': 'true' }), connected ? 'online' : 'offline');
}

function shortId(id) {
  return id.length > 12 ? id.slice(0, 8) + '…' + id.slice(-4) : id;
}

// ago renders a time relative to now; refreshed by the clock below.
function ago(iso, fallback = 'never') {
  if (!iso) return el('span', { class: 'muted' }, fallback);
  const d = new Date(iso);
  return el('time', { datetime: iso, title: d.toLocaleString(), dataset: { ts: String(d.getTime()) } }, relative(d.getTime()));
}

function relative(ms) {
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return s + ' s ago';
  if (s < 3600) return Math.floor(s / 60) + ' min ago';
  if (s < 86400) return Math.floor(s / 3600) + ' h ago';
  return Math.floor(s / 86400) + ' d ago';
}

setInterval(() => {
  for (const t of document.querySelectorAll('time[data-ts]')) t.textContent = relative(Number(t.dataset.ts));
}, 5000);

function fmtValue(v) {
  if (v === undefined) return el('span', { class: 'muted' }, '—');
  if (v === true) return 'on';
  if (v === false) return 'off';
  if (Array.isArray(v)) return v.length ? v.join(', ') : el('span', { class: 'muted' }, '(none)');
  if (v !== null && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function fmtText(v) {
  const f = fmtValue(v);
  return typeof f === 'string' ? f : f.textContent;
}

function settingLabel(key) {
  return SETTINGS[key] ? SETTINGS[key].label : key;
}

function settingKeys(...objs) {
  const keys = new Set();
  for (const o of objs) {
    if (!o) continue;
    for (const [k, v] of Object.entries(o)) {
      if (NOT_SETTINGS.has(k) || v === null) continue;
      if (typeof v === 'object' && !Array.isArray(v)) continue;
      keys.add(k);
    }
  }
  const known = Object.keys(SETTINGS).filter((k) => keys.has(k));
  return known.concat([...keys].filter((k) => !SETTINGS[k]).sort());
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// --- API --------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

async function request(method, path, body, tok = token()) {
  const headers = { Authorization: 'Bearer ' + tok, Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', 'The server cannot be reached.');
  }
  let data = null;
  if ((res.headers.get('Content-Type') || '').includes('json')) data = await res.json().catch(() => null);
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(res.status, e.code || 'http_' + res.status, e.message || res.statusText || 'request failed');
  }
  return data;
}

// api is request with the signed-in token; a refused token signs out.
async function api(method, path, body) {
  try {
    return await request(method, path, body);
  } catch (e) {
    if (e.status === 401) signOut('The server no longer accepts this token. Sign in again.');
    throw e;
  }
}

// optional calls a route that newer servers have (groups, history,
// explain, compliance summary). It answers null when this server does not
// have the route, so the panel that needs it stays hidden.
async function optional(path) {
  try {
    return await api('GET', path);
  } catch (e) {
    if ((e.status === 404 && e.code === 'not_found') || e.status === 405 || e.status === 501) return null;
    throw e;
  }
}

const enc = encodeURIComponent;

// --- live stream ------------------------------------------------------------

// live reads GET /events and hands each message to the current view. After
// every (re)connection it says "ready", and the view reloads: whatever
// happened while the stream was down is then on screen.
const live = {
  ctrl: null,
  timer: 0,
  delay: 1000,
  state: 'off',
  settled: null,
  settle: null,

  start() {
    if (this.ctrl) return;
    this.settled = new Promise((r) => (this.settle = r));
    this.connect();
  },

  stop() {
    clearTimeout(this.timer);
    if (this.ctrl) this.ctrl.abort();
    this.ctrl = null;
    this.show('off');
  },

  show(state) {
    this.state = state;
    const n = $('#live');
    if (!n) return;
    n.dataset.live = state;
    n.textContent = { on: 'live', connecting: 'connecting…', retrying: 'reconnecting…', off: 'offline' }[state];
  },

  async connect() {
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    this.show(this.state === 'retrying' ? 'retrying' : 'connecting');
    try {
      const res = await fetch('/events', {
        headers: { Authorization: 'Bearer ' + token(), Accept: 'text/event-stream' },
        signal: ctrl.signal,
        cache: 'no-store',
      });
      if (res.status === 401) {
        signOut('The server no longer accepts this token. Sign in again.');
        return;
      }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          this.dispatch(block);
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    if (this.ctrl !== ctrl) return;
    this.ctrl = null;
    this.show('retrying');
    this.settle(); // a view waiting for the stream loads anyway
    this.timer = setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, 15000);
  },

  dispatch(block) {
    let name = 'message';
    let data = '';
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const j = line.indexOf(':');
      const field = j < 0 ? line : line.slice(0, j);
      let v = j < 0 ? '' : line.slice(j + 1);
      if (v.startsWith(' ')) v = v.slice(1);
      if (field === 'event') name = v;
      else if (field === 'data') data += (data ? '\n' : '') + v;
    }
    if (name === 'ready') {
      const first = this.state === 'connecting';
      this.delay = 1000;
      this.show('on');
      this.settle();
      // The first load of a view waits for this; later ones catch up.
      if (!first && view && view.reload) view.reload();
    } else if (name === 'resync') {
      if (view && view.reload) view.reload();
    } else if (name === 'device') {
      let ev;
      try {
        ev = JSON.parse(data);
      } catch (e) {
        return;
      }
      if (view && view.onDevice) view.onDevice(ev);
    } else if (name === 'command') {
      let ev;
      try {
        ev = JSON.parse(data);
      } catch (e) {
        return;
      }
      if (view && view.onCommand) view.onCommand(ev);
    }
  },
};

// --- sign-in ------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  live.stop();
  if (view && view.destroy) view.destroy();
  view = null;
  renderSignIn(message);
}

function renderSignIn(message) {
  $('#bar').hidden = true;
  const err = el('p', { class: 'error', id: 'signin-error', role: 'alert', hidden: !message }, message || '');
  const input = el('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true,
    placeholder: 'operator token',
  });
  const button = el('button', { type: 'submit', id: 'signin-submit', class: 'primary' }, 'Sign in');
  const form = el('form', { id: 'signin', class: 'card signin', novalidate: true },
    el('h1', {}, el('img', { src: '/ui/icon.svg', alt: '', width: 28, height: 28 }), ' Doorbell MDM'),
    el('label', { for: 'token' }, 'Operator token'),
    input,
    el('p', { class: 'hint' },
      'The admin token that ', el('code', {}, 'doorbell serve'), ' printed on its first start (also in ',
      el('code', {}, '<data dir>/admin-token'), '). It stays in this tab only.'),
    err,
    button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const tok = input.value.trim();
    if (!tok) {
      err.hidden = false;
      err.textContent = 'Enter a token.';
      return;
    }
    button.disabled = true;
    try {
      await request('GET', '/devices?limit=1', undefined, tok);
      sessionStorage.setItem(TOKEN_KEY, tok);
      start();
    } catch (x) {
      err.hidden = false;
      err.textContent = x.status === 401 ? 'The server did not accept this token.'
        : x.status === 403 ? 'This credential is not an operator token.'
          : x.message;
    } finally {
      button.disabled = false;
    }
  });
  main().replaceChildren(form);
  input.focus();
}

// --- router -------------------------------------------------------------------

let view = null;
let groupsAvailable = null;

function route() {
  if (!token()) {
    renderSignIn();
    return;
  }
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  if (view && view.destroy) view.destroy();
  let nav = 'fleet';
  if (parts[0] === 'devices' && parts[1]) view = deviceView(parts[1]);
  else if ((view = operatorView(ui, parts, params))) nav = parts[0];
  else view = fleetView(params);
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === nav);
}

function start() {
  $('#bar').hidden = false;
  live.start();
  route();
  // The Groups page appears once the server has groups.
  if (groupsAvailable === null) {
    optional('/groups').then((g) => {
      groupsAvailable = g !== null;
      $('#nav-groups').hidden = !groupsAvailable;
    }, () => {});
  }
}

// loader runs load once the live stream is in place (so nothing that
// happens after the load is missed), then again on every reload, at most
// one at a time.
function loader(load) {
  let running = null;
  let again = false;
  let closed = false;
  const run = async () => {
    if (closed) return;
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        await load();
      } catch (e) {
        if (!closed && e.status !== 401) showError(e);
      }
    })();
    await running;
    running = null;
    if (again && !closed) {
      again = false;
      run();
    }
  };
  live.settled.then(run);
  return { reload: run, close: () => (closed = true) };
}

function showError(e) {
  const box = $('#page-error');
  if (!box) return;
  box.hidden = false;
  box.textContent = e.message || String(e);
}

function debounce(fn, ms) {
  let t = 0;
  return () => {
    clearTimeout(t);
    t = setTimeout(fn, ms);
  };
}

// --- fleet ------------------------------------------------------------------

// The cursors of the pages visited, so Previous can go back.
let trail = { key: '', afters: [''] };

function fleetView(params) {
  const filter = STATES.includes(params.get('state')) ? params.get('state') : '';
  const limit = Math.min(Math.max(parseInt(params.get('limit'), 10) || 50, 1), 1000);
  const after = params.get('after') || '';
  const q = (params.get('q') || '').trim();
  // failing=72h: NON_COMPLIANT since before that long ago (the server's
  // failingSince.lt).
  const FAILING = ['1h', '24h', '72h', '7d'];
  const failing = FAILING.includes(params.get('failing')) ? params.get('failing') : '';
  const key = filter + '|' + limit + '|' + q + '|' + failing;
  if (trail.key !== key) trail = { key, afters: [''] };
  let idx = trail.afters.indexOf(after);
  if (idx < 0) {
    trail.afters = after ? [after] : [''];
    idx = 0;
  } else {
    trail.afters = trail.afters.slice(0, idx + 1);
  }
  const link = (o) => {
    const p = new URLSearchParams();
    const st = o.state !== undefined ? o.state : filter;
    if (st) p.set('state', st);
    const lim = o.limit || limit;
    if (lim !== 50) p.set('limit', String(lim));
    if (o.after) p.set('after', o.after);
    const qq = o.q !== undefined ? o.q : q;
    if (qq) p.set('q', qq);
    const ff = o.failing !== undefined ? o.failing : failing;
    if (ff) p.set('failing', ff);
    const s = p.toString();
    return '#/' + (s ? '?' + s : '');
  };

  const rows = new Map(); // deviceId -> { status, tr }
  let next = '';
  let newDevices = 0;

  // Counts: the server's summary when it has one, else counted here by
  // paging through the fleet once and then kept up to date by events.
  const counts = { mode: null, byState: {}, connected: null, drifting: null, scanned: null, known: new Map() };

  const countCards = el('div', { id: 'counts', class: 'counts' });
  const drifting = el('section', { id: 'drifting', class: 'card', hidden: true });
  const select = el('select', { id: 'state-filter', 'aria-label': 'Filter by state' },
    el('option', { value: '' }, 'All states'),
    STATES.map((s) => el('option', { value: s, selected: s === filter }, s)));
  select.addEventListener('change', () => (location.hash = link({ state: select.value, after: '' })));
  const sizeSel = el('select', { id: 'page-size', 'aria-label': 'Devices per page' },
    [25, 50, 100, 500].concat([25, 50, 100, 500].includes(limit) ? [] : [limit]).map((n) =>
      el('option', { value: String(n), selected: n === limit }, n + ' per page')));
  sizeSel.addEventListener('change', () => (location.hash = link({ limit: Number(sizeSel.value), after: '' })));
  const failSel = el('select', { id: 'failing-filter', 'aria-label': 'Failing for at least' },
    el('option', { value: '' }, 'Failing for: any time'),
    FAILING.map((f) => el('option', { value: f, selected: f === failing }, 'Failing for > ' + f.replace('h', ' h').replace('d', ' days'))));
  failSel.addEventListener('change', () => (location.hash = link({ failing: failSel.value, after: '' })));
  const notice = el('p', { id: 'new-devices', class: 'notice', hidden: true });
  const search = el('input', { type: 'search', id: 'fleet-search', placeholder: 'Search: hostname, serial, IP, model, id…', 'aria-label': 'Search devices', value: q, size: 30 });
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') location.hash = link({ q: search.value.trim(), after: '' });
  });
  const tbody = el('tbody');
  const sel = selection(ui, () => [...rows.keys()]);
  const bulk = bulkBar(ui, sel);
  const table = el('table', { id: 'devices', class: 'devices' },
    el('thead', {}, el('tr', {}, el('th', { scope: 'col', class: 'pick' }, sel.all),
      ['Device', 'State', 'Failing since', 'Policy', 'Connection', 'Last seen', 'OS'].map((h) => el('th', { scope: 'col' }, h)))),
    tbody);
  sortable(ui, table, (tr) => rows.get(tr.dataset.deviceId)?.status);
  const empty = el('p', { id: 'no-devices', class: 'muted', hidden: true });
  const prev = el('a', { id: 'prev', class: 'button', role: 'button' }, '← Previous');
  const nextBtn = el('a', { id: 'next', class: 'button', role: 'button' }, 'Next →');
  const pageInfo = el('span', { id: 'page-info', class: 'muted' });

  main().replaceChildren(
    el('div', { class: 'page-head' }, el('h1', {}, 'Fleet'), el('span', { class: 'muted', id: 'fleet-total' })),
    el('p', { id: 'page-error', class: 'error', role: 'alert', hidden: true }),
    countCards,
    drifting,
    el('section', { class: 'card' },
      el('div', { class: 'toolbar' }, el('h2', {}, filter ? filter.replace('_', '-').toLowerCase() + ' devices' : 'Devices'),
        el('span', { class: 'spacer' }), search, select, failSel, sizeSel),
      bulk,
      notice,
      el('div', { class: 'table-wrap' }, table),
      empty,
      el('div', { class: 'pager' }, prev, pageInfo, nextBtn)),
    fleetInventory({ el, api, optional }).card);

  function renderCounts() {
    const total = STATES.reduce((n, s) => n + (counts.byState[s] || 0), 0);
    const cards = STATES.map((s) =>
      el('a', { class: 'count s-' + s + (filter === s ? ' active' : ''), href: link({ state: filter === s ? '' : s, after: '' }), dataset: { state: s }, title: STATE_HELP[s] },
        el('span', { class: 'n' }, counts.mode ? String(counts.byState[s] || 0) : '…'),
        el('span', { class: 'label' }, s)));
    if (counts.connected !== null) {
      cards.push(el('div', { class: 'count connected', dataset: { state: 'connected' } },
        el('span', { class: 'n' }, String(counts.connected)), el('span', { class: 'label' }, 'ONLINE')));
    }
    countCards.replaceChildren(...cards);
    const t = $('#fleet-total');
    if (t) {
      t.textContent = counts.mode === 'scan' && counts.scanned !== null
        ? `${total.toLocaleString()} devices (counted${counts.scanning ? ' so far' : ''} in the browser)`
        : counts.mode ? total.toLocaleString() + ' devices' : '';
    }
    if (counts.drifting && counts.drifting.length) {
      drifting.hidden = false;
      drifting.replaceChildren(el('h2', {}, 'Drifting settings'),
        el('ul', { class: 'drift-list' }, counts.drifting.map((d) =>
          el('li', {}, el('strong', {}, settingLabel(d.setting)), ' — ', String(d.devices), d.devices === 1 ? ' device' : ' devices'))));
    } else drifting.hidden = true;
  }

  async function loadCounts() {
    const sum = await optional('/compliance/summary');
    if (sum && sum.counts) {
      counts.mode = 'summary';
      counts.byState = sum.counts;
      counts.connected = typeof sum.connected === 'number' ? sum.connected : null;
      counts.drifting = Array.isArray(sum.driftingSettings) ? sum.driftingSettings : null;
      renderCounts();
      return;
    }
    // No summary on this server: count by paging the whole fleet.
    counts.mode = 'scan';
    counts.scanning = true;
    const known = new Map();
    let cur = '';
    do {
      const page = await api('GET', '/devices?limit=1000' + (cur ? '&after=' + enc(cur) : ''));
      for (const d of page.devices) known.set(d.deviceId, { state: d.state, connected: d.connected });
      cur = page.nextAfter;
      if (closed) return;
      counts.known = known;
      recount();
    } while (cur);
    counts.scanning = false;
    recount();
  }
  function recount() {
    const by = {};
    let conn = 0;
    for (const v of counts.known.values()) {
      by[v.state] = (by[v.state] || 0) + 1;
      if (v.connected) conn++;
    }
    counts.byState = by;
    counts.connected = conn;
    counts.scanned = counts.known.size;
    renderCounts();
  }
  const refreshSummary = debounce(() => loadCounts().catch(showError), 500);

  // hostnames puts each search hit's hostname (from its inventory) under
  // its model, so hosts of one model are told apart; four at a time.
  async function hostnames(devs) {
    let i = 0;
    const one = async () => {
      while (i < devs.length) {
        const d = devs[i++];
        const inv = await optional('/devices/' + enc(d.deviceId) + '/inventory?sections=system').catch(() => null);
        const h = inv && inv.inventory && inv.inventory.system && inv.inventory.system.hostname;
        const r = rows.get(d.deviceId);
        if (!h || !r || closed) continue;
        r.status.hostname = h;
        const sub = r.tr.querySelector('.dev .sub');
        if (sub) sub.replaceChildren(d.model || '—', ' · ', el('span', { class: 'host' }, h));
      }
    };
    await Promise.all([one(), one(), one(), one()]);
  }

  function row(d) {
    const gone = filter && d.state !== filter;
    return el('tr', { dataset: { deviceId: d.deviceId }, class: gone ? 'gone' : null, title: gone ? 'no longer ' + filter : null },
      el('td', { class: 'pick' }, sel.box(d.deviceId)),
      el('td', { class: 'dev', 'data-label': 'Device' },
        el('a', { href: '#/devices/' + enc(d.deviceId), title: d.deviceId }, shortId(d.deviceId)),
        el('div', { class: 'sub' }, d.model || '—', d.hostname ? [' · ', el('span', { class: 'host' }, d.hostname)] : null)),
      el('td', { class: 'state', 'data-label': 'State' }, badge(d.state)),
      el('td', { class: 'failing', 'data-label': 'Failing since', title: 'NON_COMPLIANT since (kept through a policy edit)' },
        d.nonCompliantSince ? ago(d.nonCompliantSince) : el('span', { class: 'muted' }, '—')),
      el('td', { class: 'policy', 'data-label': 'Policy' },
        el('span', { title: 'applied / desired policy version' }, (d.lastReportAt ? 'v' + d.appliedVersion : '–') + ' / v' + d.desiredVersion)),
      el('td', { class: 'conn', 'data-label': 'Connection' }, presence(d.connected)),
      el('td', { class: 'seen', 'data-label': 'Last seen' }, ago(d.lastSeenAt || d.lastReportAt),
        d.overdue && el('span', { class: 'overdue', dataset: { overdue: 'true' }, title: 'not seen within two of its sync intervals' }, ' overdue')),
      el('td', { class: 'os', 'data-label': 'OS' }, d.osVersion || '—'));
  }

  async function loadPage() {
    const qs = new URLSearchParams({ limit: String(limit) });
    if (after) qs.set('after', after);
    if (filter) qs.set('state', filter);
    if (q) qs.set('q', q);
    if (failing) qs.set('failingSince.lt', failing);
    const page = await api('GET', '/devices?' + qs);
    rows.clear();
    const trs = page.devices.map((d) => {
      const tr = row(d);
      rows.set(d.deviceId, { status: d, tr });
      return tr;
    });
    tbody.replaceChildren(...trs);
    sel.prune();
    table.dispatchEvent(new Event('resort'));
    next = page.nextAfter || '';
    newDevices = 0;
    notice.hidden = true;
    empty.hidden = trs.length > 0;
    empty.textContent = q ? 'No device matches “' + q + '” (id, model, hostname, serial or IP).' : failing ? 'No device has been failing for more than ' + failing + '.' : filter ? 'No ' + filter + ' devices.' : after ? 'No more devices.' : 'No devices have enrolled yet.';
    prev.setAttribute('aria-disabled', String(idx === 0));
    prev.href = idx > 0 ? link({ after: trail.afters[idx - 1] }) : '#';
    nextBtn.setAttribute('aria-disabled', String(!next));
    nextBtn.href = next ? link({ after: next }) : '#';
    const first = trail.afters[0] === '';
    pageInfo.textContent = (q ? 'search · ' : '') + (first ? 'page ' + (idx + 1) : 'from ' + shortId(after)) + ' · ' + trs.length + ' shown';
    if (q) hostnames(page.devices.slice(0, 100)).catch(() => {});
  }
  nextBtn.addEventListener('click', (e) => {
    e.preventDefault();
    if (!next) return;
    trail.afters.push(next);
    location.hash = link({ after: next });
  });
  prev.addEventListener('click', (e) => {
    e.preventDefault();
    if (idx > 0) location.hash = link({ after: trail.afters[idx - 1] });
  });

  let closed = false;
  const l = loader(async () => {
    await loadPage();
    renderCounts();
    await loadCounts();
  });
  renderCounts();

  return {
    reload: l.reload,
    destroy() {
      closed = true;
      l.close();
    },
    onCommand: (ev) => bulk.onCommand(ev),
    onDevice(ev) {
      const r = rows.get(ev.deviceId);
      if (r) {
        Object.assign(r.status, {
          state: ev.state, desiredVersion: ev.desiredVersion, appliedVersion: ev.appliedVersion,
          connected: ev.connected, lastReportAt: ev.lastReportAt,
        }, ev.lastSeenAt ? { lastSeenAt: ev.lastSeenAt } : {});
        // Failing since: cleared by COMPLIANT, started by NON_COMPLIANT
        // (the server keeps it through a policy edit, STALE).
        if (ev.state === 'COMPLIANT') delete r.status.nonCompliantSince;
        else if (ev.state === 'NON_COMPLIANT' && !r.status.nonCompliantSince) r.status.nonCompliantSince = ev.lastReportAt || new Date().toISOString();
        const tr = row(r.status);
        tr.classList.add('flash');
        r.tr.replaceWith(tr);
        r.tr = tr;
      } else if (ev.cause === 'enroll' && (!filter || ev.state === filter)) {
        newDevices++;
        notice.hidden = false;
        notice.replaceChildren(
          newDevices === 1 ? '1 device enrolled since this list loaded. ' : newDevices + ' devices enrolled since this list loaded. ',
          el('a', { href: '#', onclick: (e) => { e.preventDefault(); l.reload(); } }, 'Show'));
      }
      if (counts.mode === 'summary') refreshSummary();
      else if (counts.mode === 'scan') {
        counts.known.set(ev.deviceId, { state: ev.state, connected: ev.connected });
        recount();
      }
    },
  };
}

// --- device -------------------------------------------------------------------

// failingSettings finds the server's per-setting verdict in a status, when
// the server gives one: a list of {setting, expected, actual, reason}.
function failingSettings(status) {
  const out = new Map();
  for (const v of Object.values(status || {})) {
    if (!Array.isArray(v)) continue;
    for (const f of v) if (f && typeof f === 'object' && typeof f.setting === 'string') out.set(f.setting, f);
  }
  return out;
}

// explainSources turns GET /devices/{id}/policy/explain
// ({"settings": {name: {value, mode, source}}}) into setting -> {source, mode}.
function explainSources(x) {
  const out = new Map();
  if (!x) return out;
  const put = (k, v) => {
    if (v == null) return;
    if (typeof v === 'string') out.set(k, { source: v });
    else if (typeof v === 'object') {
      const s = v.source ?? v.from ?? v.groupName ?? v.group ?? v.groupId;
      if (s != null) out.set(k, { source: typeof s === 'object' ? (s.name || s.groupName || s.groupId || s.type || JSON.stringify(s)) : String(s), mode: v.mode });
    }
  };
  const list = Array.isArray(x) ? x : Array.isArray(x.settings) ? x.settings : null;
  if (list) for (const e of list) put(e.setting || e.name, e);
  else {
    const m = x.settings && typeof x.settings === 'object' ? x.settings : x.sources && typeof x.sources === 'object' ? x.sources : x;
    for (const [k, v] of Object.entries(m)) put(k, v);
  }
  return out;
}

// groupNames maps groupId -> name, loaded with the device page when the
// server has groups.
let groupNames = new Map();

// sourceLink renders an explain source: "device", "default" or
// "group:<groupId>" (linked, by name when known).
function sourceLink(e) {
  if (!e) return el('span', { class: 'muted' }, '—');
  const m = /^group:(.+)$/.exec(e.source);
  if (!m) return e.source;
  return el('a', { href: '#/groups/' + enc(m[1]) }, 'group ' + (groupNames.get(m[1]) || m[1]));
}

function deviceView(id) {
  let status = null;
  let policy = null;
  let report = null;
  let dirty = false;
  let note = null; // the outcome of the last save, kept across re-renders

  const head = el('div', { class: 'device-head' });
  const facts = el('dl', { class: 'facts' });
  const settingsSec = el('section', { class: 'card', id: 'settings' });
  const formSec = el('section', { class: 'card', id: 'edit' });
  const historySec = el('section', { class: 'card', id: 'history', hidden: true });
  const commands = commandsPanel(id, { el, api, enc, ago });
  // The device's own settings, revision by revision, with rollback.
  const revisions = revisionsPanel('devices', id, { el, api, optional, onRollback: () => l.reload() });
  main().replaceChildren(
    el('p', { class: 'crumbs' }, el('a', { href: '#/' }, '← Fleet')),
    el('p', { id: 'page-error', class: 'error', role: 'alert', hidden: true }),
    head,
    el('div', { class: 'grid' },
      el('div', {}, settingsSec, historySec),
      el('div', {}, commands.node, formSec, revisions.card, el('section', { class: 'card' }, el('h2', {}, 'Device'), facts))),
    inventoryCard(id, { el, api, optional }).card);

  function renderHead() {
    const s = status;
    head.replaceChildren(
      el('div', { class: 'title' },
        el('h1', { id: 'device-id', title: s.deviceId }, s.model || 'Device'),
        el('code', { class: 'muted id' }, s.deviceId)),
      el('div', { class: 'status-line' },
        badge(s.state, 'device-state'),
        presence(s.connected, 'device-connected'),
        el('span', { class: 'muted' }, 'last report ', ago(s.lastReportAt)),
        el('span', { class: 'muted', id: 'device-versions' }, 'policy v' + s.appliedVersion + ' applied, v' + s.desiredVersion + ' desired')));
  }

  function renderFacts() {
    const s = status;
    const rows = [
      ['Device id', el('code', {}, s.deviceId)],
      ['Model', s.model || '—'],
      ['OS', s.osVersion || '—'],
      ['Agent', s.agentVersion || '—'],
      ['Enrolled', ago(s.enrolledAt)],
      ['Push (FCM)', s.fcmRegistered ? 'registered' : 'not registered'],
      ['Last seen', ago(s.lastSeenAt || s.lastReportAt)],
      ['Agent SHA-256', agentHash(report && report.agentSha256)],
    ];
    facts.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  }

  // agentHash shows the agent binary's hash short, whole on hover, with a
  // button that copies it (it is checked against the server's allowlist).
  function agentHash(sha) {
    if (!sha) return el('span', { class: 'muted' }, 'not reported');
    const copy = el('button', { type: 'button', class: 'copy', id: 'agent-sha-copy', title: 'copy the full hash' }, 'copy');
    copy.addEventListener('click', () => {
      const done = () => (copy.textContent = 'copied');
      if (navigator.clipboard) navigator.clipboard.writeText(sha).then(done, () => {});
    });
    return el('span', { class: 'hash' }, el('code', { id: 'agent-sha', title: sha, dataset: { full: sha } }, sha.slice(0, 12) + '…'), ' ', copy);
  }

  function renderSettings(sources) {
    const fails = failingSettings(status);
    const monitored = new Set(Array.isArray(policy && policy.monitor) ? policy.monitor : []);
    for (const [k, v] of sources || []) if (v.mode === 'monitor') monitored.add(k);
    const keys = settingKeys(policy, report);
    const stale = status.state === 'STALE';
    const hasSource = sources && sources.size > 0;
    const body = keys.map((k) => {
      const want = policy ? policy[k] : undefined;
      const got = report ? report[k] : undefined;
      const f = fails.get(k);
      let verdict;
      if (want === undefined) verdict = el('span', { class: 'muted' }, 'not managed');
      else if (!report || got === undefined) verdict = el('span', { class: 'muted' }, 'not reported');
      else if (f) {
        verdict = el('span', { class: 'drift', title: f.detail || null },
          '✗ ' + (f.reason || 'drift').toString().toLowerCase().replace(/_/g, ' '), f.detail ? ': ' + f.detail : null);
      }
      else if (same(want, got)) verdict = el('span', { class: 'ok' }, '✓ matches');
      else if (stale) verdict = el('span', { class: 'pending' }, '… pending v' + status.desiredVersion);
      else verdict = el('span', { class: 'drift' }, '✗ drift');
      return el('tr', { dataset: { setting: k } },
        el('th', { scope: 'row' }, settingLabel(k), monitored.has(k) ? el('span', { class: 'tag', title: 'monitored: the agent only observes it' }, 'monitor') : null),
        el('td', { class: 'desired', 'data-label': 'Desired' }, fmtValue(want)),
        el('td', { class: 'reported', 'data-label': 'Reported' }, fmtValue(got)),
        el('td', { class: 'verdict', 'data-label': 'Drift' }, verdict),
        hasSource ? el('td', { class: 'source', 'data-label': 'Source' }, sourceLink(sources.get(k))) : null);
    });
    settingsSec.replaceChildren(
      el('h2', {}, 'Desired vs reported'),
      el('p', { class: 'muted' },
        !report ? 'The device has not reported yet.'
          : `Desired is policy v${policy ? policy.version : status.desiredVersion}; the last report applied v${report.appliedPolicyVersion}, `,
        report ? ago(report.receivedAt) : null, report ? '.' : null),
      el('div', { class: 'table-wrap' }, el('table', { id: 'settings-table', class: 'settings' },
        el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Setting'), el('th', { scope: 'col' }, 'Desired'), el('th', { scope: 'col' }, 'Reported'),
          el('th', { scope: 'col' }, 'Drift'), hasSource ? el('th', { scope: 'col' }, 'Source') : null)),
        el('tbody', {}, body))));
  }

  function renderForm() {
    if (dirty) return;
    // Every known setting, each with its mode and "inherit" (no device
    // value: a group's or the default applies). Editing a value clears
    // inherit; only what changed is sent.
    const keys = Object.keys(SETTINGS).concat(settingKeys(policy).filter((k) => !SETTINGS[k]));
    const monitored = new Set(policy.monitor || []);
    const rows = keys.map((k) => {
      const src = lastSources && lastSources.get(k);
      const own = !!src && src.source === 'device';
      const modeBefore = (src && src.mode) || (monitored.has(k) ? 'monitor' : 'enforce');
      const input = settingInput(k, policy[k]);
      const inherit = el('input', { type: 'checkbox', id: 'inherit-' + k, checked: !own });
      const mode = el('select', { id: 'mode-' + k, 'aria-label': settingLabel(k) + ' mode' },
        el('option', { value: 'enforce' }, 'enforce'), el('option', { value: 'monitor' }, 'monitor'));
      mode.value = modeBefore;
      const own_ = () => (inherit.checked = false);
      input.field.addEventListener('input', own_);
      input.field.addEventListener('change', own_);
      const field = el('div', { class: 'setting-row', dataset: { setting: k } }, input.field,
        el('label', { class: 'inherit', for: 'inherit-' + k, title: 'no device value: a group\'s or the default applies' }, inherit, ' inherit'), mode);
      return { key: k, field, read: () => ({ key: k, inherit: inherit.checked, wasOwn: own, value: input.read(), before: policy[k], mode: mode.value, modeBefore }) };
    });
    const result = el('p', { id: 'policy-result', role: 'status', class: note ? note.cls : 'muted' }, note ? note.text : '');
    const save = el('button', { type: 'submit', id: 'policy-save', class: 'primary' }, 'Save policy');
    const form = el('form', { id: 'policy-form', class: 'policy-form' }, rows.map((r) => r.field), el('div', { class: 'actions' }, save, result));
    form.addEventListener('input', () => (dirty = true));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = policyEditBody(rows.map((r) => r.read()));
      if (!Object.keys(body).length) {
        note = { cls: 'muted', text: 'Nothing changed.' };
        result.className = note.cls;
        result.textContent = note.text;
        dirty = false;
        return;
      }
      save.disabled = true;
      result.className = 'muted';
      result.textContent = 'Saving…';
      try {
        const p = await api('PUT', '/devices/' + enc(id) + '/policy', body);
        const changed = p.version !== policy.version;
        policy = p;
        dirty = false;
        note = { cls: 'ok', text: changed ? `Saved as v${p.version}. The device's doorbell rang; it syncs next.` : 'Nothing changed.' };
        renderSettings(lastSources);
        renderForm();
        l.reload();
      } catch (x) {
        note = { cls: 'error', text: x.message };
        result.className = note.cls;
        result.textContent = note.text;
      } finally {
        save.disabled = false;
      }
    });
    formSec.replaceChildren(el('h2', {}, 'Edit policy'), form);
  }

  let lastSources = null;
  async function load() {
    const base = '/devices/' + enc(id);
    await loadCatalog(api, SETTINGS);
    const [s, p, r, h, x] = await Promise.all([
      api('GET', base + '/status'),
      api('GET', base + '/policy'),
      api('GET', base + '/report').catch((e) => {
        if (e.status === 404 && e.code !== 'device_not_found') return null;
        throw e;
      }),
      optional(base + '/history').catch(() => null),
      optional(base + '/policy/explain').catch(() => null),
      groupsAvailable !== false ? optional('/groups').then((g) => {
        groupNames = new Map(groupList(g).map((x) => [groupId(x), x.name || groupId(x)]));
      }).catch(() => null) : null,
    ]);
    status = s;
    policy = p;
    report = r;
    lastSources = explainSources(x);
    renderHead();
    renderFacts();
    renderSettings(lastSources);
    renderForm();
    renderHistory(h);
    await commands.load();
    await revisions.reload();
  }

  function renderHistory(h) {
    const list = h && (Array.isArray(h.transitions) ? h.transitions : Array.isArray(h) ? h : null);
    if (!list) {
      historySec.hidden = true;
      return;
    }
    historySec.hidden = false;
    const items = list.slice().sort((a, b) => String(b.at).localeCompare(String(a.at))).slice(0, 50);
    historySec.replaceChildren(el('h2', {}, 'History'),
      list.length ? complianceChart(list, Date.now()) : null,
      items.length ? el('ol', { class: 'history' }, items.map((t) =>
        el('li', {}, t.from ? badge(t.from) : el('span', { class: 'muted' }, 'enrolled'), ' → ', badge(t.to), ' ',
          el('span', { class: 'muted' }, t.cause || ''), ' ', ago(t.at))))
        : el('p', { class: 'muted' }, 'No state changes recorded yet.'));
  }

  const l = loader(async () => {
    try {
      await load();
    } catch (e) {
      if (e.code === 'device_not_found') {
        main().replaceChildren(el('p', { class: 'crumbs' }, el('a', { href: '#/' }, '← Fleet')),
          el('p', { class: 'error', id: 'page-error' }, 'No device ' + id + '.'));
        return;
      }
      throw e;
    }
  });
  const reloadSoon = debounce(l.reload, 250);

  return {
    reload: l.reload,
    destroy: l.close,
    onCommand: commands.onCommand,
    onDevice(ev) {
      if (ev.deviceId !== id || !status) return;
      // The state is on screen at once; the details follow.
      Object.assign(status, {
        state: ev.state, desiredVersion: ev.desiredVersion, appliedVersion: ev.appliedVersion,
        connected: ev.connected, lastReportAt: ev.lastReportAt,
      });
      renderHead();
      reloadSoon();
    },
  };
}

// settingInput is one setting's control in a policy form.
function settingInput(key, value) {
  const meta = SETTINGS[key] || {
    type: typeof value === 'boolean' ? 'bool' : typeof value === 'number' ? 'int' : Array.isArray(value) ? 'list' : 'text',
  };
  const label = settingLabel(key);
  const id = 'set-' + key;
  if (meta.type === 'bool') {
    const input = el('input', { type: 'checkbox', id, name: key, role: 'switch', checked: !!value });
    return {
      key,
      field: el('label', { class: 'switch', for: id }, input, el('span', { class: 'track', 'aria-hidden': 'true' }), el('span', {}, label)),
      read: () => input.checked,
    };
  }
  if (meta.type === 'int') {
    const input = el('input', { type: 'number', id, name: key, min: meta.schema?.minimum ?? 0, max: meta.schema?.maximum, step: 1, value: value == null ? '' : String(value) });
    return { key, field: el('label', { class: 'field', for: id }, el('span', {}, label), input), read: () => (input.value === '' ? null : Number(input.value)) };
  }
  if (meta.type === 'list') {
    const input = el('textarea', { id, name: key, rows: 3, placeholder: 'one per line' });
    input.value = (value || []).join('\n');
    return {
      key,
      field: el('label', { class: 'field', for: id }, el('span', {}, label), input),
      read: () => input.value.split(/[\n,]/).map((s) => s.trim()).filter(Boolean),
    };
  }
  if (meta.type === 'json') {
    // A structured setting: its JSON; the server checks it and says what is wrong.
    const input = el('textarea', { id, name: key, rows: 3, placeholder: 'JSON' });
    input.value = value == null ? '' : JSON.stringify(value);
    const read = () => {
      if (input.value.trim() === '') return null;
      try { return JSON.parse(input.value); } catch { return input.value; }
    };
    return { key, field: el('label', { class: 'field', for: id }, el('span', {}, label), input), read };
  }
  const input = el('input', { type: 'text', id, name: key, value: value == null ? '' : String(value) });
  return { key, field: el('label', { class: 'field', for: id }, el('span', {}, label), input), read: () => input.value };
}

// --- groups -------------------------------------------------------------------

const groupId = (g) => String(g.groupId ?? g.id ?? g.name);
const groupSettings = (g) => g.policy || g.settings || {};
const groupMembers = (g) => (Array.isArray(g.deviceIds) ? g.deviceIds : Array.isArray(g.devices) ? g.devices.map((d) => (typeof d === 'string' ? d : d.deviceId)) : null);
const groupList = (data) => (Array.isArray(data) ? data : Array.isArray(data && data.groups) ? data.groups : []);

// ui is what the pages in their own files (pages.js and what it loads) use
// of this one: the same DOM builder, API calls and widgets.
const ui = {
  el, $, main, api, optional, enc, shortId, ago, badge, presence, fmtValue, fmtText, settingLabel, settingKeys,
  settingInput, loader, showError, debounce, loadCatalog, SETTINGS, STATES, STATE_HELP,
  groupId, groupList, groupMembers, groupSettings, revisionsPanel,
};

// --- start ------------------------------------------------------------------

$('#signout').addEventListener('click', () => signOut('Signed out.'));
window.addEventListener('hashchange', () => token() && route());
if (token()) start();
else renderSignIn();
