// The fleet page's tools: search, sortable columns and bulk selection with
// its actions. app.js's fleet view calls these; a branch that adds a server
// search (inventory) replaces searchDevices' body, one that adds an action
// (commands) pushes onto bulkActions.

// searchDevices finds up to limit devices whose id starts with q, or whose
// model contains it, by paging through GET /devices. Answers like a page of
// GET /devices ({devices, nextAfter: ''}).
export async function searchDevices(ui, q, limit, state) {
  const needle = q.toLowerCase();
  const found = [];
  let after = '';
  do {
    const qs = new URLSearchParams({ limit: '1000' });
    if (after) qs.set('after', after);
    if (state) qs.set('state', state);
    const page = await ui.api('GET', '/devices?' + qs);
    for (const d of page.devices) {
      if (d.deviceId.toLowerCase().startsWith(needle) || String(d.model || '').toLowerCase().includes(needle)) found.push(d);
      if (found.length >= limit) break;
    }
    after = page.nextAfter || '';
  } while (after && found.length < limit);
  return { devices: found, nextAfter: '' };
}

const ORDER = { UNKNOWN: 0, STALE: 1, NON_COMPLIANT: 2, COMPLIANT: 3 };
const time = (s) => (s ? new Date(s).getTime() : 0);
// Each column's sort key, by header text.
const KEYS = {
  Device: (d) => d.deviceId,
  State: (d) => ORDER[d.state] ?? -1,
  Policy: (d) => d.desiredVersion * 1e6 + (d.appliedVersion || 0),
  Connection: (d) => (d.connected ? 1 : 0),
  'Last seen': (d) => time(d.lastSeenAt || d.lastReportAt),
  OS: (d) => String(d.osVersion || ''),
};

// sortable makes table's headers sort its rows (the page shown) by a
// click; statusOf maps a row to its device. The order holds across live
// updates and reloads ('resort' event) until another header is clicked.
export function sortable(ui, table, statusOf) {
  let by = null;
  let dir = 1;
  const ths = [...table.tHead.rows[0].cells].filter((th) => KEYS[th.textContent]);
  const apply = () => {
    if (!by) return;
    const key = KEYS[by];
    const body = table.tBodies[0];
    const trs = [...body.rows];
    trs.sort((a, b) => {
      const x = statusOf(a), y = statusOf(b);
      if (!x || !y) return 0;
      const p = key(x), q = key(y);
      return (p < q ? -1 : p > q ? 1 : 0) * dir;
    });
    body.append(...trs);
  };
  for (const th of ths) {
    const name = th.textContent;
    const btn = ui.el('button', { type: 'button', class: 'sort', dataset: { sort: name } }, name);
    th.replaceChildren(btn);
    btn.addEventListener('click', () => {
      dir = by === name ? -dir : 1;
      by = name;
      for (const h of ths) h.removeAttribute('aria-sort');
      th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
      apply();
    });
  }
  table.addEventListener('resort', apply);
  new MutationObserver((muts) => {
    if (by && muts.some((m) => m.addedNodes.length && [...m.addedNodes].some((n) => n.classList?.contains('flash')))) apply();
  }).observe(table.tBodies[0], { childList: true });
}

// selection keeps the ticked device ids of the fleet page.
export function selection(ui, visible) {
  const picked = new Set();
  const listeners = [];
  const changed = () => {
    const ids = visible();
    all.checked = ids.length > 0 && ids.every((id) => picked.has(id));
    all.indeterminate = !all.checked && ids.some((id) => picked.has(id));
    for (const f of listeners) f(picked);
  };
  const all = ui.el('input', { type: 'checkbox', id: 'select-all', 'aria-label': 'Select every device shown' });
  all.addEventListener('change', () => {
    for (const id of visible()) (all.checked ? picked.add(id) : picked.delete(id));
    for (const b of document.querySelectorAll('#devices input.pick')) b.checked = picked.has(b.dataset.deviceId);
    changed();
  });
  return {
    all,
    picked,
    onChange: (f) => listeners.push(f),
    box(id) {
      const b = ui.el('input', { type: 'checkbox', class: 'pick', 'aria-label': 'Select device', dataset: { deviceId: id }, checked: picked.has(id) });
      b.addEventListener('change', () => {
        b.checked ? picked.add(id) : picked.delete(id);
        changed();
      });
      return b;
    },
    // prune drops ids no longer shown (a new page or search).
    prune() {
      const shown = new Set(visible());
      for (const id of [...picked]) if (!shown.has(id)) picked.delete(id);
      changed();
    },
    clear() {
      picked.clear();
      for (const b of document.querySelectorAll('#devices input.pick')) b.checked = false;
      changed();
    },
  };
}

// bulkActions are what the bulk bar offers for the selected devices: each
// {label, render(ui, ids, done)} returning the action's controls.
export const bulkActions = [
  {
    id: 'add-to-group',
    label: 'Add to group',
    render(ui, sel, report) {
      const pick = ui.el('select', { id: 'bulk-group', 'aria-label': 'Group' }, ui.el('option', { value: '' }, 'Group…'));
      ui.optional('/groups').then((g) => {
        for (const x of ui.groupList(g)) pick.append(ui.el('option', { value: ui.groupId(x) }, x.name || ui.groupId(x)));
      }, () => {});
      const go = ui.el('button', { type: 'button', id: 'bulk-add', class: 'primary' }, 'Add to group');
      go.addEventListener('click', async () => {
        const gid = pick.value;
        const ids = [...sel.picked];
        if (!gid || !ids.length) return report('error', 'Pick a group and at least one device.');
        go.disabled = true;
        try {
          // The API replaces the member list: read it, then add.
          const g = await ui.api('GET', '/groups/' + ui.enc(gid));
          const members = new Set(ui.groupMembers(g) || []);
          for (const id of ids) members.add(id);
          const out = await ui.api('PUT', '/groups/' + ui.enc(gid) + '/devices', { deviceIds: [...members] });
          report('ok', `Added ${ids.length} device${ids.length === 1 ? '' : 's'} to ${g.name || gid}; ${out.changedDevices ?? 0} got a new policy.`);
          sel.clear();
        } catch (e) {
          report('error', e.message);
        } finally {
          go.disabled = false;
        }
      });
      return [pick, go];
    },
  },
];

// bulkBar is the bar above the fleet table: how many are selected and the
// actions. Hidden while nothing is selected.
export function bulkBar(ui, sel) {
  const count = ui.el('strong', { id: 'bulk-count' });
  const result = ui.el('span', { id: 'bulk-result', role: 'status' });
  const report = (cls, text) => {
    result.className = cls;
    result.textContent = text;
  };
  const bar = ui.el('div', { id: 'bulk', class: 'bulk', hidden: true }, count,
    bulkActions.map((a) => ui.el('span', { class: 'bulk-action', dataset: { action: a.id } }, a.render(ui, sel, report))), result);
  sel.onChange((picked) => {
    count.textContent = picked.size + ' selected';
    if (picked.size) bar.hidden = false;
  });
  return bar;
}
