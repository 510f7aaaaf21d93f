// Groups: the list with create and delete, and a group's page with its
// policy editor (every catalog setting, its mode, "not set"), its mode,
// and its members. Built with app.js's ui (DOM builder, API, widgets) and
// catalog.js, like the device policy editor.

import { groupPolicyBody } from './catalog.js';
import { sendCommandAction } from './fleettools.js';

// confirmButton is a button that asks once more before acting: the first
// click arms it, the second runs act.
function confirmButton(ui, props, label, confirmLabel, act) {
  const b = ui.el('button', Object.assign({ type: 'button', class: 'danger' }, props), label);
  let armed = false;
  b.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      b.textContent = confirmLabel;
      b.dataset.armed = 'true';
      return;
    }
    b.disabled = true;
    try {
      await act();
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

function modeSelect(ui, id, value, extra) {
  const s = ui.el('select', { id, 'aria-label': 'mode' }, extra ? ui.el('option', { value: '' }, extra) : null,
    ui.el('option', { value: 'enforce' }, 'enforce'), ui.el('option', { value: 'monitor' }, 'monitor'));
  s.value = value || '';
  return s;
}

export function groupsView(ui) {
  const { el } = ui;
  const body = el('tbody');
  const name = el('input', { type: 'text', id: 'group-new-name', placeholder: 'name', required: true, maxlength: 128 });
  const priority = el('input', { type: 'number', id: 'group-new-priority', value: '0', step: 1, 'aria-label': 'priority' });
  const mode = modeSelect(ui, 'group-new-mode', 'enforce');
  const result = el('span', { id: 'group-new-result', role: 'status' });
  const form = el('form', { id: 'group-new', class: 'inline-form' },
    el('label', {}, 'Name ', name), el('label', {}, 'Priority ', priority), el('label', {}, 'Mode ', mode),
    el('button', { type: 'submit', class: 'primary', id: 'group-create' }, 'Create group'), result);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const g = await ui.api('POST', '/groups', { name: name.value.trim(), priority: Number(priority.value) || 0, mode: mode.value });
      location.hash = '#/groups/' + ui.enc(ui.groupId(g));
    } catch (x) {
      result.className = 'error';
      result.textContent = x.message;
    }
  });
  ui.main().replaceChildren(
    el('div', { class: 'page-head' }, el('h1', {}, 'Groups'),
      el('span', { class: 'muted' }, 'The group with the highest priority wins a setting; a device\'s own value beats every group.')),
    el('p', { id: 'page-error', class: 'error', role: 'alert', hidden: true }),
    el('section', { class: 'card' }, el('h2', {}, 'New group'), form),
    el('section', { class: 'card' }, el('div', { class: 'table-wrap' }, el('table', { id: 'groups', class: 'devices' },
      el('thead', {}, el('tr', {}, ['Group', 'Priority', 'Mode', 'Settings', 'Devices', ''].map((h) => el('th', { scope: 'col' }, h)))), body))));
  const l = ui.loader(async () => {
    const data = await ui.optional('/groups');
    const gs = ui.groupList(data);
    body.replaceChildren(...gs.map((g) => {
      const gid = ui.groupId(g);
      const set = ui.groupSettings(g);
      const keys = ui.settingKeys(set);
      const members = ui.groupMembers(g) || [];
      return el('tr', { dataset: { groupId: gid } },
        el('td', { 'data-label': 'Group' }, el('a', { href: '#/groups/' + ui.enc(gid) }, g.name || gid)),
        el('td', { 'data-label': 'Priority' }, String(g.priority ?? 0)),
        el('td', { 'data-label': 'Mode' }, g.mode || 'enforce'),
        el('td', { 'data-label': 'Settings' }, keys.length ? keys.map((k) => ui.settingLabel(k) + ': ' + ui.fmtText(set[k])).join(' · ') : '—'),
        el('td', { 'data-label': 'Devices' }, String(members.length)),
        el('td', {}, confirmButton(ui, { class: 'danger group-delete' }, 'Delete', 'Really delete?', async () => {
          await ui.api('DELETE', '/groups/' + ui.enc(gid)).catch(ui.showError);
          l.reload();
        })));
    }));
    if (!gs.length) body.replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No groups yet.')));
  });
  return { reload: l.reload, destroy: l.close };
}

export function groupView(ui, gid) {
  const { el } = ui;
  const box = el('div');
  ui.main().replaceChildren(
    el('p', { class: 'crumbs' }, el('a', { href: '#/groups' }, '← Groups')),
    el('p', { id: 'page-error', class: 'error', role: 'alert', hidden: true }),
    box);
  let dirty = false;
  let note = null; // the outcome of the last save, kept across re-renders
  let renameNote = null; // the same for the name and priority form
  const path = '/groups/' + ui.enc(gid);
  const say = (node, cls, text) => {
    note = { cls, text };
    node.className = cls;
    node.textContent = text;
  };

  function policyForm(g) {
    const set = ui.groupSettings(g);
    const own = g.modes || {};
    const keys = Object.keys(ui.SETTINGS).concat(ui.settingKeys(set).filter((k) => !ui.SETTINGS[k]));
    const groupMode = modeSelect(ui, 'group-mode', g.mode || 'enforce');
    const rows = keys.map((k) => {
      const has = set[k] !== undefined && set[k] !== null;
      const input = ui.settingInput(k, set[k]);
      const inherit = el('input', { type: 'checkbox', id: 'inherit-' + k, checked: !has });
      const mode = modeSelect(ui, 'mode-' + k, own[k] || '', 'group mode');
      const setOwn = () => (inherit.checked = false);
      input.field.addEventListener('input', setOwn);
      input.field.addEventListener('change', setOwn);
      const field = el('div', { class: 'setting-row', dataset: { setting: k } }, input.field,
        el('label', { class: 'inherit', for: 'inherit-' + k, title: 'this group does not set it: a lower group\'s value or the default applies' }, inherit, ' not set'), mode);
      return { field, read: () => ({ key: k, inherit: inherit.checked, value: input.read(), mode: mode.value }) };
    });
    const result = el('p', { role: 'status', id: 'group-policy-result', class: note ? note.cls : 'muted' }, note ? note.text : '');
    const form = el('form', { class: 'policy-form', id: 'group-policy-form' },
      el('label', { class: 'field', for: 'group-mode' }, el('span', {}, 'Group mode (settings without their own)'), groupMode),
      rows.map((r) => r.field),
      el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', id: 'group-policy-save' }, 'Save group policy'), result));
    form.addEventListener('input', () => (dirty = true));
    form.addEventListener('change', () => (dirty = true));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      // PUT replaces the group's settings, modes and mode: send them all.
      const body = groupPolicyBody(rows.map((r) => r.read()), groupMode.value);
      try {
        const out = await ui.api('PUT', path + '/policy', body);
        dirty = false;
        say(result, 'ok', `Saved. ${out && out.changedDevices != null ? out.changedDevices + ' member devices got a new policy version; their doorbells rang.' : 'Member devices whose policy changed get a new version.'}`);
        l.reload();
      } catch (x) {
        say(result, 'error', x.message);
      }
    });
    return form;
  }

  // renameForm edits the group's name and priority (PATCH /groups/{id}):
  // only what changed is sent; a new priority can make another group win
  // a setting, and the answer says how many members got a new policy.
  function renameForm(g) {
    const name = el('input', { type: 'text', id: 'group-edit-name', value: g.name || '', required: true, maxlength: 128, 'aria-label': 'Group name' });
    const priority = el('input', { type: 'number', id: 'group-edit-priority', value: String(g.priority ?? 0), step: 1, 'aria-label': 'Priority' });
    const result = el('span', { id: 'group-edit-result', role: 'status', class: renameNote ? renameNote.cls : null }, renameNote ? renameNote.text : '');
    renameNote = null;
    const form = el('form', { id: 'group-edit', class: 'inline-form' },
      el('label', {}, 'Name ', name), el('label', {}, 'Priority ', priority),
      el('button', { type: 'submit', class: 'primary', id: 'group-edit-save' }, 'Save'), result);
    form.addEventListener('input', () => (dirty = true));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const body = {};
      if (name.value.trim() !== g.name) body.name = name.value.trim();
      if (priority.value.trim() === '' || !Number.isInteger(Number(priority.value))) {
        result.className = 'error';
        result.textContent = 'The priority is a whole number.';
        return;
      }
      if (Number(priority.value) !== (g.priority ?? 0)) body.priority = Number(priority.value);
      if (!Object.keys(body).length) {
        result.className = 'muted';
        result.textContent = 'Nothing changed.';
        dirty = false;
        return;
      }
      try {
        const out = await ui.api('PATCH', path, body);
        dirty = false;
        renameNote = { cls: 'ok', text: `Saved. ${out.changedDevices ?? 0} member device${out.changedDevices === 1 ? '' : 's'} got a new policy.` };
        result.className = renameNote.cls;
        result.textContent = renameNote.text;
        l.reload();
      } catch (x) {
        result.className = 'error';
        result.textContent = x.message;
      }
    });
    return form;
  }

  function membersPanel(g) {
    const members = ui.groupMembers(g) || [];
    const result = el('p', { role: 'status', id: 'members-result', class: 'muted' });
    const put = async (ids, text) => {
      try {
        const out = await ui.api('PUT', path + '/devices', { deviceIds: ids });
        say(result, 'ok', text + ` ${out.changedDevices ?? 0} got a new policy.`);
        l.reload();
      } catch (x) {
        say(result, 'error', x.message);
      }
    };
    const add = el('input', { type: 'text', id: 'member-add', placeholder: 'device id', spellcheck: 'false', 'aria-label': 'Device id to add' });
    const addForm = el('form', { class: 'inline-form', id: 'member-add-form' }, add, el('button', { type: 'submit', class: 'primary', id: 'member-add-button' }, 'Add device'));
    addForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const id = add.value.trim();
      if (id) put([...new Set(members.concat(id))], 'Added.');
    });
    return [
      members.length ? el('ul', { class: 'members' }, members.map((d) => el('li', { dataset: { deviceId: d } },
        el('a', { href: '#/devices/' + ui.enc(d), title: d }, ui.shortId(d)), ' ',
        el('button', { type: 'button', class: 'quiet-inline member-remove', dataset: { deviceId: d } , onclick: () => put(members.filter((x) => x !== d), 'Removed.') }, 'remove'))))
        : el('p', { class: 'muted' }, 'No devices. Add one here, or select devices on the Fleet page.'),
      addForm, result,
    ];
  }

  // Commands to every member: the fleet's bulk command form over the group
  // route (POST /groups/{id}/commands), kept across reloads so its
  // results keep following the command events.
  const cmdListeners = [];
  const members = { picked: new Set(), onChange: () => {}, sendAll: (body) => ui.api('POST', path + '/commands', body) };
  const cmdResult = el('span', { id: 'group-command-result', role: 'status' });
  const cmdCard = el('section', { class: 'card', id: 'group-commands' }, el('h2', {}, 'Command to every member'),
    el('div', { class: 'bulk' }, sendCommandAction.render(ui, members, (cls, text) => {
      cmdResult.className = cls;
      cmdResult.textContent = text;
    }, (f) => cmdListeners.push(f))), cmdResult);

  const l = ui.loader(async () => {
    if (dirty) return;
    await ui.loadCatalog(ui.api, ui.SETTINGS);
    let g;
    try {
      g = await ui.api('GET', path);
    } catch (e) {
      if (e.status === 404) {
        box.replaceChildren(el('p', { class: 'error', id: 'group-missing' }, 'No group ' + gid + '.'));
        return;
      }
      throw e;
    }
    members.picked = new Set(ui.groupMembers(g) || []);
    box.replaceChildren(
      el('div', { class: 'page-head' }, el('h1', { id: 'group-name' }, g.name || gid),
        el('span', { class: 'muted', id: 'group-meta' }, 'priority ' + (g.priority ?? 0) + ' · ' + (g.mode || 'enforce')),
        el('span', { class: 'spacer' }),
        confirmButton(ui, { id: 'group-delete' }, 'Delete group', 'Really delete?', async () => {
          try {
            await ui.api('DELETE', path);
            location.hash = '#/groups';
          } catch (x) {
            ui.showError(x);
          }
        })),
      el('section', { class: 'card', id: 'group-settings' }, el('h2', {}, 'Name and priority'),
        el('p', { class: 'muted' }, 'The group with the highest priority wins a setting; a device\'s own value beats every group.'),
        renameForm(g)),
      el('div', { class: 'grid' },
        el('section', { class: 'card' }, el('h2', {}, 'Group policy'), policyForm(g)),
        el('section', { class: 'card', id: 'group-members' }, el('h2', {}, 'Devices'), membersPanel(g)),
        cmdCard,
        ui.revisionsPanel('groups', gid, { el, api: ui.api, optional: ui.optional, onRollback: () => l.reload() }).card));
  });
  return {
    reload: l.reload,
    destroy: l.close,
    onCommand: (ev) => {
      for (const f of cmdListeners) f(ev);
    },
  };
}
