// Policy revisions of a group or of a device's own settings: a list, each
// revision's diff against the one before, and a rollback button. Every
// value is put in the page as text (never as HTML).

// revisionsPanel returns a card for GET /{owner}/{id}/revisions, where owner
// is 'groups' or 'devices'. deps carries the console's helpers: el (element
// builder), api (authorised request), optional (GET that answers null on a
// server without the route) and onRollback (called after a rollback).
export function revisionsPanel(owner, id, deps) {
  const { el, api, optional, onRollback } = deps;
  const base = '/' + owner + '/' + encodeURIComponent(id);
  const list = el('div', { class: 'revisions' }, el('p', { class: 'muted' }, 'Loading…'));
  const status = el('p', { role: 'status', class: 'muted', id: 'revision-status' });
  const card = el('section', { class: 'card', id: 'revisions' }, el('h2', {}, 'Revisions'), list, status);

  let shown = null; // the revision numbers on screen
  const open = new Set(); // revisions whose details the operator opened

  const show = (v) => (v === null || v === undefined ? 'not managed' : JSON.stringify(v));

  function diffTable(changes) {
    if (!changes || !changes.length) return el('p', { class: 'muted' }, 'No change (the first revision of an empty policy).');
    return el('table', { class: 'diff' },
      el('thead', {}, el('tr', {}, el('th', {}, 'setting'), el('th', {}, 'before'), el('th', {}, 'after'))),
      el('tbody', {}, changes.map((c) => el('tr', {},
        el('td', {}, String(c.setting)),
        el('td', { class: 'before' }, show(c.from)),
        el('td', { class: 'after' }, show(c.to))))));
  }

  async function rollback(n, button) {
    button.disabled = true;
    status.className = 'muted';
    status.textContent = 'Rolling back to revision ' + n + '…';
    try {
      await api('POST', base + '/rollback', { revision: n });
      status.className = 'ok';
      status.textContent = 'Revision ' + n + ' is current again (as a new revision). Devices converge back at their next sync.';
      await load();
      if (onRollback) onRollback();
    } catch (e) {
      status.className = 'error';
      status.textContent = e.message;
      button.disabled = false;
    }
  }

  async function load() {
    const data = await optional(base + '/revisions');
    if (data === null) {
      card.hidden = true;
      return;
    }
    const revs = Array.isArray(data.revisions) ? data.revisions : [];
    // A reload that finds the same revisions keeps the list as it is
    // (with the details the operator opened).
    const key = revs.map((r) => r.n).join(',');
    if (key === shown) return;
    shown = key;
    if (!revs.length) {
      list.replaceChildren(el('p', { class: 'muted' }, 'No revisions yet.'));
      return;
    }
    list.replaceChildren(el('ol', { class: 'revision-list', reversed: true }, revs.map((r, i) => {
      const current = i === 0;
      const button = current ? null : el('button', { type: 'button', class: 'quiet', dataset: { revision: String(r.n) } }, 'Roll back to ' + r.n);
      if (button) button.addEventListener('click', () => rollback(r.n, button));
      const details = el('details', { open: current || open.has(r.n) },
        el('summary', {},
          el('strong', {}, 'Revision ' + r.n), ' ',
          el('span', { class: 'muted' }, new Date(r.at).toLocaleString() + (r.actor ? ' · ' + r.actor : '') + (r.action ? ' · ' + r.action : '')),
          current ? el('span', { class: 'muted' }, ' · current') : null),
        diffTable(r.changes),
        button);
      details.addEventListener('toggle', () => (details.open ? open.add(r.n) : open.delete(r.n)));
      return el('li', { dataset: { revision: String(r.n) } }, details);
    })));
  }

  load().catch((e) => {
    status.className = 'error';
    status.textContent = e.message;
  });
  return { card, reload: load };
}
