// Inventory in the console: a device's inventory card (sections, packages,
// a refresh button) and, on the fleet page, the fleet's distribution of a
// fact as a bar chart (the fleet search finds devices by inventory facts). Every string a device sent is put in the page as a
// text node (el never parses HTML).
//
// deps carries the console's helpers: el (element builder), api (authorised
// request), optional (GET that answers null on a server without the route).

const enc = encodeURIComponent;

function gib(bytes) {
  return (bytes / 2 ** 30).toFixed(1) + ' GiB';
}

function when(iso) {
  if (!iso || iso.startsWith('0001-')) return '—';
  return new Date(iso).toLocaleString();
}

// summary returns [label, value] rows for the facts worth a glance.
function summary(inv) {
  const rows = [];
  const add = (k, v) => {
    if (v !== undefined && v !== null && v !== '') rows.push([k, String(v)]);
  };
  const s = inv.system || {};
  add('Hostname', s.hostname);
  add('OS', s.osName || [s.osId, s.osVersion].filter(Boolean).join(' '));
  add('Kernel', s.kernel);
  add('Architecture', s.arch);
  const h = inv.hardware || {};
  add('Vendor', h.vendor);
  add('Model', h.model);
  add('Serial', h.serial);
  if (h.cpuCount) add('CPU', h.cpuCount + ' × ' + (h.cpuModel || 'CPU'));
  if (h.memoryBytes) add('Memory', gib(h.memoryBytes));
  const a = inv.android || {};
  add('Security patch', a.securityPatch);
  add('API level', a.apiLevel);
  add('Build', a.buildFingerprint);
  if (a.batteryPercent) add('Battery', a.batteryPercent + '%' + (a.charging ? ' (charging)' : ''));
  const d = inv.disks;
  if (d) add('Root encrypted', d.rootEncrypted === undefined ? 'unknown' : d.rootEncrypted ? 'yes' : 'no');
  const f = inv.firewall;
  if (f) add('Firewall', f.backend ? f.backend + (f.active ? ' active' : ' inactive') : 'none found');
  const n = inv.network;
  if (n) {
    for (const i of n.interfaces || []) {
      if (i.name === 'lo') continue;
      add('Interface ' + i.name, [i.mac, ...(i.addresses || [])].filter(Boolean).join('  '));
    }
  }
  return rows;
}

// inventoryCard returns the device page's inventory card for device id.
export function inventoryCard(id, deps) {
  const { el, api, optional } = deps;
  const body = el('div', {}, el('p', { class: 'muted' }, 'Loading…'));
  const status = el('p', { role: 'status', class: 'muted', id: 'inventory-status' });
  const refresh = el('button', { type: 'button', class: 'quiet', id: 'inventory-refresh' }, 'Ask for a fresh inventory');
  const card = el('section', { class: 'card', id: 'inventory' },
    el('div', { class: 'toolbar' }, el('h2', {}, 'Inventory'), el('span', { class: 'spacer' }), refresh),
    body, status);

  refresh.addEventListener('click', async () => {
    refresh.disabled = true;
    try {
      await api('POST', '/devices/' + enc(id) + '/inventory/refresh');
      status.className = 'ok';
      status.textContent = 'Asked: the device uploads its whole inventory at its next sync.';
    } catch (e) {
      status.className = 'error';
      status.textContent = e.message;
    } finally {
      refresh.disabled = false;
    }
  });

  function packagesTable(p) {
    const filter = el('input', { type: 'search', id: 'package-filter', placeholder: 'Filter ' + p.packages.length + ' packages', 'aria-label': 'Filter packages' });
    const tbody = el('tbody');
    const more = el('p', { class: 'muted' });
    const render = () => {
      const q = filter.value.trim().toLowerCase();
      const hits = p.packages.filter((x) => !q || x.name.toLowerCase().includes(q));
      tbody.replaceChildren(...hits.slice(0, 200).map((x) =>
        el('tr', {}, el('td', {}, x.name), el('td', {}, x.version), el('td', { class: 'muted' }, x.arch || (x.versionCode ? String(x.versionCode) : '')))));
      more.textContent = hits.length > 200 ? (hits.length - 200) + ' more; filter to narrow.' : '';
    };
    filter.addEventListener('input', render);
    render();
    return el('div', { id: 'inventory-packages' },
      el('h3', {}, 'Packages (' + p.format + ')'), filter,
      el('div', { class: 'table-wrap' }, el('table', { class: 'devices' },
        el('thead', {}, el('tr', {}, ['Name', 'Version', p.format === 'android' ? 'Version code' : 'Arch'].map((h) => el('th', { scope: 'col' }, h)))),
        tbody)), more);
  }

  async function load() {
    const data = await optional('/devices/' + enc(id) + '/inventory');
    if (data === null) {
      card.hidden = true;
      return;
    }
    const sections = Object.keys(data.sections || {});
    if (!sections.length) {
      body.replaceChildren(el('p', { class: 'muted', id: 'inventory-empty' }, 'This device has not sent an inventory yet.'));
      return;
    }
    const inv = data.inventory || {};
    const kids = [
      el('dl', { class: 'facts', id: 'inventory-facts' }, summary(inv).map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
      el('h3', {}, 'Sections'),
      el('table', { class: 'devices', id: 'inventory-sections' },
        el('thead', {}, el('tr', {}, ['Section', 'Changed', 'Received'].map((h) => el('th', { scope: 'col' }, h)))),
        el('tbody', {}, sections.map((s) => el('tr', { dataset: { section: s } },
          el('td', {}, s), el('td', {}, when(data.sections[s].changedAt)), el('td', {}, when(data.sections[s].receivedAt)))))),
    ];
    if (inv.units && inv.units.units) {
      kids.push(el('h3', {}, 'Services'), el('p', {}, inv.units.units.filter((u) => u.running).map((u) => u.name).join(', ') || 'none running'));
    }
    if (inv.users && inv.users.users) {
      kids.push(el('h3', {}, 'Accounts'), el('p', {}, inv.users.users.filter((u) => !u.system).map((u) => u.name + ' (' + u.uid + ')').join(', ') || 'no regular accounts'));
    }
    if (inv.packages) kids.push(packagesTable(inv.packages));
    body.replaceChildren(...kids);
  }
  load().catch((e) => {
    status.className = 'error';
    status.textContent = e.message;
  });
  return { card, reload: load };
}

// fleetInventory returns the fleet page's inventory card: the chart of a
// fact's distribution across the fleet. (Searching by hostname, serial,
// IP or model is the fleet search's: GET /devices?q=.)
export function fleetInventory(deps) {
  const { el, optional } = deps;
  const factSel = el('select', { id: 'inventory-fact', 'aria-label': 'Distribution of' },
    [['os', 'OS'], ['kernel', 'Kernel'], ['patch', 'Patch level'], ['model', 'Model']].map(([v, l]) => el('option', { value: v }, l)));
  const chart = el('div', { id: 'inventory-chart', class: 'bars' });
  const card = el('section', { class: 'card', id: 'fleet-inventory' },
    el('div', { class: 'toolbar' }, el('h2', {}, 'Inventory'), el('span', { class: 'spacer' }), factSel),
    chart);

  async function distribution() {
    const data = await optional('/inventory/facts/' + enc(factSel.value));
    if (data === null) {
      card.hidden = true;
      return;
    }
    const vals = data.values || [];
    if (!vals.length) {
      chart.replaceChildren(el('p', { class: 'muted' }, 'No device reported this yet.'));
      return;
    }
    const top = vals.slice(0, 12);
    const rest = vals.slice(12).reduce((n, v) => n + v.devices, 0);
    if (rest) top.push({ value: 'others', devices: rest });
    const max = Math.max(...top.map((v) => v.devices));
    chart.replaceChildren(...top.map((v) => {
      const bar = el('span', { class: 'bar' });
      // CSSOM, not a style attribute: the console's CSP allows no inline styles.
      bar.style.width = Math.max(1, Math.round((v.devices / max) * 100)) + '%';
      return el('div', { class: 'bar-row', dataset: { value: v.value } },
        el('span', { class: 'bar-label' }, v.value), el('span', { class: 'bar-track' }, bar), el('span', { class: 'bar-n' }, String(v.devices)));
    }));
  }

  factSel.addEventListener('change', () => distribution().catch(() => {}));
  distribution().catch(() => {});
  return { card, reload: distribution };
}
