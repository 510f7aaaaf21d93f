// Remote commands on a device's page: action buttons (lock, reboot, run a
// script, wipe — which needs the device id typed to confirm) and the list of
// the device's commands, whose states change live from the "command" events
// of GET /events. Device text (result messages, output) only ever becomes
// text nodes.

const FINAL = new Set(['ACKNOWLEDGED', 'ERROR', 'EXPIRED', 'CANCELLED']);
const CANCELLABLE = new Set(['PENDING', 'NOT_NOW']);
const STATE_HELP = {
  PENDING: 'queued; the device has not fetched it',
  DELIVERED: 'the device fetched it',
  NOT_NOW: 'the device cannot now; offered again',
  ACKNOWLEDGED: 'carried out',
  ERROR: 'failed or unsupported',
  EXPIRED: 'not done before it expired',
  CANCELLED: 'cancelled',
};

// commandsPanel returns { node, load(), onCommand(ev) } for device id. h
// holds the console's helpers: el, api, enc, ago.
export function commandsPanel(id, h) {
  const { el, api, enc, ago } = h;
  const base = '/devices/' + enc(id) + '/commands';
  let cmds = []; // newest first
  const note = el('p', { id: 'command-result', role: 'status', class: 'muted' });
  const list = el('div', { id: 'command-list' });

  function say(cls, text) {
    note.className = cls;
    note.textContent = text;
  }

  async function send(type, params, btn) {
    btn.disabled = true;
    say('muted', 'Sending ' + type + '…');
    try {
      const body = { type };
      if (params) body.params = params;
      const c = await api('POST', base, body);
      upsert(c);
      say('ok', `Queued ${c.type} (${c.commandId.slice(0, 8)}…); the device's doorbell rang.`);
    } catch (x) {
      say('error', x.message);
    } finally {
      btn.disabled = false;
    }
  }

  const lockBtn = el('button', { type: 'button', id: 'cmd-lock' }, 'Lock now');
  lockBtn.addEventListener('click', () => send('lock', null, lockBtn));
  const rebootBtn = el('button', { type: 'button', id: 'cmd-reboot' }, 'Reboot');
  rebootBtn.addEventListener('click', () => send('reboot', null, rebootBtn));

  const script = el('input', { id: 'cmd-script', placeholder: 'script name', 'aria-label': 'Script name', size: 14 });
  const scriptBtn = el('button', { type: 'button', id: 'cmd-run-script' }, 'Run script');
  scriptBtn.addEventListener('click', () => {
    if (!script.value.trim()) {
      say('error', 'Name a script from the agent\'s script directory.');
      return;
    }
    send('run_script', { script: script.value.trim() }, scriptBtn);
  });

  // Wipe: the device id must be typed to confirm.
  const confirmIn = el('input', { id: 'cmd-wipe-confirm', placeholder: 'type the device id', 'aria-label': 'Type the device id to confirm the wipe', autocomplete: 'off', size: 20 });
  const wipeBtn = el('button', { type: 'button', id: 'cmd-wipe', class: 'danger', disabled: true }, 'Wipe device');
  confirmIn.addEventListener('input', () => (wipeBtn.disabled = confirmIn.value !== id));
  wipeBtn.addEventListener('click', async () => {
    if (confirmIn.value !== id) return;
    await send('wipe', null, wipeBtn);
    confirmIn.value = '';
    wipeBtn.disabled = true;
  });

  const node = el('section', { class: 'card', id: 'commands' },
    el('h2', {}, 'Commands'),
    el('div', { class: 'actions' }, lockBtn, rebootBtn, script, scriptBtn),
    el('details', { class: 'danger-zone' }, el('summary', {}, 'Wipe…'),
      el('p', { class: 'muted' }, 'Erases the device and cancels its other commands. Type its id to confirm.'),
      el('div', { class: 'actions' }, confirmIn, wipeBtn)),
    note, list);

  function upsert(c) {
    const i = cmds.findIndex((x) => x.commandId === c.commandId);
    if (i >= 0) cmds[i] = c;
    else cmds.unshift(c);
    render();
  }

  function stateBadge(st) {
    return el('span', { class: 'badge c-' + st, dataset: { state: st }, title: STATE_HELP[st] || null }, st);
  }

  function resultText(c) {
    const r = c.result;
    if (!r) return '';
    return [r.errorCode, r.message].filter(Boolean).join(': ');
  }

  function row(c) {
    const cancel = CANCELLABLE.has(c.state)
      ? el('button', { type: 'button', class: 'quiet', dataset: { cancel: c.commandId } }, 'Cancel') : null;
    if (cancel) {
      cancel.addEventListener('click', async () => {
        cancel.disabled = true;
        try {
          upsert(await api('DELETE', '/commands/' + enc(c.commandId)));
          say('ok', 'Cancelled.');
        } catch (x) {
          say('error', x.message);
          cancel.disabled = false;
        }
      });
    }
    const output = c.result && c.result.output
      ? el('details', {}, el('summary', {}, 'output'), el('pre', { class: 'output' }, c.result.output)) : null;
    return el('tr', { dataset: { command: c.commandId, state: c.state } },
      el('td', { 'data-label': 'Type' }, c.type),
      el('td', { 'data-label': 'State' }, stateBadge(c.state)),
      el('td', { 'data-label': 'Created' }, ago(c.createdAt)),
      el('td', { 'data-label': 'Result' }, resultText(c), output),
      el('td', {}, cancel));
  }

  function render() {
    if (!cmds.length) {
      list.replaceChildren(el('p', { class: 'muted' }, 'No commands yet.'));
      return;
    }
    list.replaceChildren(el('div', { class: 'table-wrap' }, el('table', { id: 'commands-table' },
      el('thead', {}, el('tr', {}, ['Type', 'State', 'Created', 'Result', ''].map((t) => el('th', { scope: 'col' }, t)))),
      el('tbody', {}, cmds.slice(0, 20).map(row)))));
  }

  async function load() {
    try {
      const l = await api('GET', base + '?limit=20');
      cmds = (l && Array.isArray(l.commands)) ? l.commands : [];
      node.hidden = false;
      render();
    } catch (e) {
      // A server without commands: no panel.
      if (e.status === 404 && e.code === 'not_found') node.hidden = true;
      else throw e;
    }
  }

  return {
    node,
    load,
    // onCommand takes a "command" event: {command, from}, the command
    // after a change.
    onCommand(ev) {
      const c = ev && ev.command;
      if (!c || c.deviceId !== id) return;
      const i = cmds.findIndex((x) => x.commandId === c.commandId);
      // Never replace a final state with an older, unfinished one.
      if (i >= 0 && FINAL.has(cmds[i].state) && !FINAL.has(c.state)) return;
      upsert(c);
    },
  };
}
