// The fleet page's tools: sortable columns and bulk selection with its
// actions (add to group, send a command). app.js's fleet view calls these;
// the search is the server's (GET /devices?q=). An action is one entry of
// bulkActions.

const ORDER = { UNKNOWN: 0, STALE: 1, NON_COMPLIANT: 2, COMPLIANT: 3 };
const time = (s) => (s ? new Date(s).getTime() : 0);
// Each column's sort key, by header text.
const KEYS = {
  Device: (d) => d.deviceId,
  State: (d) => ORDER[d.state] ?? -1,
  Policy: (d) => d.desiredVersion * 1e6 + (d.appliedVersion || 0),
  Connection: (d) => (d.connected ? 1 : 0),
  'Last seen': (d) => time(d.lastSeenAt || d.lastReportAt),
  // Failing longest first; devices not failing last.
  'Failing since': (d) => (d.nonCompliantSince ? time(d.nonCompliantSince) : Infinity),
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

// The states after which a command changes no more.
const FINAL = new Set(['ACKNOWLEDGED', 'ERROR', 'EXPIRED', 'CANCELLED']);

// paramInput is one command param's control, from the catalog's
// {name, kind, required, secret, doc, min, max}: read() gives the value to
// send, or '' to leave the param out.
function paramInput(ui, p) {
  const id = 'bulk-param-' + p.name;
  if (p.kind === 'bool') {
    const box = ui.el('input', { type: 'checkbox', id, dataset: { param: p.name } });
    return { node: ui.el('label', { class: 'inline', title: p.doc }, box, ' ' + p.name), read: () => (box.checked ? 'true' : '') };
  }
  const hint = p.kind === 'duration' ? p.name + (p.min ? ` (${p.min}–${p.max})` : '') : p.name;
  const input = ui.el('input', {
    type: p.secret ? 'password' : 'text', id, autocomplete: 'off', spellcheck: 'false', size: 16,
    placeholder: hint + (p.required ? '' : ' (optional)'), 'aria-label': p.name, title: p.doc, dataset: { param: p.name },
  });
  return { node: input, read: () => input.value.trim() };
}

// sendCommandAction queues one command per selected device (POST
// /devices/{id}/commands, four at a time) and lists each device's outcome:
// the command's state, which then follows the "command" events live, or
// why the server refused it. The types and their params come from the
// command catalog (GET /command-types); a destructive type (wipe) is sent
// only once "<type> <count>" is typed. One idempotency key per device and
// send, so a retried request never queues a command twice.
// sel is the fleet's selection ({picked, onChange}); a group's page passes
// its members with sendAll(body), which sends through the group route.
export const sendCommandAction = {
  id: 'send-command',
  label: 'Send a command',
  render(ui, sel, report, live) {
    const { el } = ui;
    let catalog = [];
    const type = el('select', { id: 'bulk-command', 'aria-label': 'Command' }, el('option', { value: '' }, 'Command…'));
    const params = el('span', { id: 'bulk-command-params', class: 'bulk-action' });
    const confirm = el('input', { id: 'bulk-command-confirm', autocomplete: 'off', spellcheck: 'false', size: 14, hidden: true, 'aria-label': 'Type the confirmation' });
    const go = el('button', { type: 'button', id: 'bulk-send', class: 'primary' }, 'Send');
    const results = el('div', { id: 'bulk-command-results', class: 'bulk-results', hidden: true });
    let inputs = [];
    let sending = false;
    ui.optional('/command-types').then((c) => {
      catalog = (c && Array.isArray(c.commands)) ? c.commands : [];
      for (const t of catalog) type.append(el('option', { value: t.type, title: t.doc }, t.type.replace(/_/g, ' ')));
    }, () => {});
    const spec = () => catalog.find((t) => t.type === type.value);
    const phrase = () => type.value + ' ' + sel.picked.size;
    const check = () => {
      const s = spec();
      const destructive = !!(s && s.destructive);
      confirm.hidden = !destructive;
      confirm.placeholder = destructive ? `type “${phrase()}”` : '';
      go.disabled = destructive && confirm.value.trim() !== phrase();
      go.classList.toggle('danger', destructive);
    };
    type.addEventListener('change', () => {
      const s = spec();
      inputs = s ? s.params.map((p) => ({ p, ...paramInput(ui, p) })) : [];
      params.replaceChildren(...inputs.map((i) => i.node));
      confirm.value = '';
      check();
    });
    confirm.addEventListener('input', check);
    sel.onChange(check);

    // Each device's line in the results, by command id once queued.
    const rows = new Map(); // commandId -> tr
    // Events that came before the POST's answer (a running agent can
    // acknowledge first), by command id; emptied at each send.
    const early = new Map();
    function line(id, state, text, commandId) {
      const tr = el('tr', { dataset: { deviceId: id, state, commandId: commandId || null } },
        el('td', {}, el('a', { href: '#/devices/' + ui.enc(id), title: id }, ui.shortId(id))),
        el('td', {}, el('span', { class: 'badge c-' + state, dataset: { state } }, state)),
        el('td', { class: 'detail' }, text || ''));
      if (commandId) rows.set(commandId, tr);
      return tr;
    }
    live(
      (ev) => {
        const c = ev && ev.command;
        if (!c) return;
        const tr = rows.get(c.commandId);
        if (!tr) {
          if (sending && early.size < 10000 && !(FINAL.has(early.get(c.commandId)?.state) && !FINAL.has(c.state))) early.set(c.commandId, c);
          return;
        }
        if (FINAL.has(tr.dataset.state) && !FINAL.has(c.state)) return; // never back from a final state
        const r = c.result || {};
        tr.replaceWith(line(c.deviceId, c.state, [r.errorCode, r.message].filter(Boolean).join(': '), c.commandId));
      });

    go.addEventListener('click', async () => {
      const s = spec();
      const ids = [...sel.picked];
      if (!s || !ids.length) return report('error', 'Pick a command and at least one device.');
      const body = { type: s.type };
      const ps = {};
      for (const { p, read } of inputs) {
        const v = read();
        if (v !== '') ps[p.name] = v;
        else if (p.required) return report('error', `${s.type} needs ${p.name}.`);
      }
      if (Object.keys(ps).length) body.params = ps;
      if (s.destructive && confirm.value.trim() !== phrase()) return report('error', `Type “${phrase()}” to confirm.`);
      go.disabled = true;
      const batch = [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, '0')).join('');
      rows.clear();
      early.clear();
      sending = true;
      const tbody = el('tbody');
      results.replaceChildren(el('table', { id: 'bulk-command-table', class: 'devices' },
        el('caption', {}, s.type + ' → ' + ids.length + (ids.length === 1 ? ' device' : ' devices')),
        el('thead', {}, el('tr', {}, ['Device', 'State', 'Detail'].map((h) => el('th', { scope: 'col' }, h)))), tbody));
      results.hidden = false;
      const trs = new Map(ids.map((id) => [id, line(id, 'SENDING', '')]));
      tbody.append(...trs.values());
      let queued = 0;
      let next = 0;
      const seenLine = (id, c) => {
        // A live event may already have moved it on.
        const seen = early.get(c.commandId);
        const r = (seen && seen.result) || {};
        return seen ? line(id, seen.state, [r.errorCode, r.message].filter(Boolean).join(': '), c.commandId) : line(id, c.state, '', c.commandId);
      };
      const worker = async () => {
        while (next < ids.length) {
          const id = ids[next++];
          let tr;
          try {
            const c = await ui.api('POST', '/devices/' + ui.enc(id) + '/commands', { ...body, idempotencyKey: batch + ':' + id });
            queued++;
            tr = seenLine(id, c);
          } catch (e) {
            tr = line(id, 'REFUSED', e.message);
          }
          trs.get(id).replaceWith(tr);
          trs.set(id, tr);
        }
      };
      // A group's page sends through the group route: one request, one
      // transaction, all or nothing.
      const group = async () => {
        try {
          const out = await sel.sendAll({ ...body, idempotencyKey: batch });
          for (const c of out.commands || []) {
            const tr = seenLine(c.deviceId, c);
            (trs.get(c.deviceId) || tbody.appendChild(el('tr'))).replaceWith(tr);
            trs.set(c.deviceId, tr);
            queued++;
          }
        } catch (e) {
          for (const [id, tr] of trs) {
            const t = line(id, 'REFUSED', e.message);
            tr.replaceWith(t);
            trs.set(id, t);
          }
        }
      };
      try {
        await (sel.sendAll ? group() : Promise.all([worker(), worker(), worker(), worker()]));
      } finally {
        sending = false;
        early.clear();
        check();
      }
      const refused = ids.length - queued;
      report(refused ? 'error' : 'ok', `Queued ${s.type} for ${queued} of ${ids.length} device${ids.length === 1 ? '' : 's'}` +
        (refused ? `; ${refused} refused (see below).` : '; their doorbells rang.'));
      confirm.value = '';
      check();
    });
    check();
    return [type, params, confirm, go, results];
  },
};

// bulkActions are what the bulk bar offers for the selected devices: each
// {id, label, render(ui, sel, report, live)} returning the action's
// controls; report(cls, text) shows an outcome, live(f) has f called with
// every "command" event.
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
  sendCommandAction,
];

// bulkBar is the bar above the fleet table: how many are selected and the
// actions. Hidden while nothing is selected. Its onCommand takes the
// "command" events of GET /events for the actions that follow commands.
export function bulkBar(ui, sel) {
  const listeners = [];
  const count = ui.el('strong', { id: 'bulk-count' });
  const result = ui.el('span', { id: 'bulk-result', role: 'status' });
  const report = (cls, text) => {
    result.className = cls;
    result.textContent = text;
  };
  const bar = ui.el('div', { id: 'bulk', class: 'bulk', hidden: true }, count, result,
    bulkActions.map((a) => ui.el('span', { class: 'bulk-action', dataset: { action: a.id } }, a.render(ui, sel, report, (f) => listeners.push(f)))));
  sel.onChange((picked) => {
    count.textContent = picked.size + ' selected';
    if (picked.size) bar.hidden = false;
  });
  bar.onCommand = (ev) => {
    for (const f of listeners) f(ev);
  };
  return bar;
}
