// The audit log (GET /audit): every change an operator made, in log order,
// a page at a time.

export function auditView(ui, params) {
  const { el } = ui;
  const after = /^[0-9]+$/.test(params.get('after') || '') ? params.get('after') : '';
  const body = el('tbody');
  const next = el('a', { id: 'audit-next', class: 'button', role: 'button', 'aria-disabled': 'true', href: '#' }, 'Next →');
  ui.main().replaceChildren(
    el('div', { class: 'page-head' }, el('h1', {}, 'Audit log'), el('span', { class: 'muted' }, 'Who changed what, from where.')),
    el('p', { id: 'page-error', class: 'error', role: 'alert', hidden: true }),
    el('section', { class: 'card' },
      el('div', { class: 'table-wrap' }, el('table', { id: 'audit', class: 'devices' },
        el('thead', {}, el('tr', {}, ['#', 'When', 'Who', 'Action', 'Target', 'Detail', 'From'].map((h) => el('th', { scope: 'col' }, h)))), body)),
      el('div', { class: 'pager' }, after ? el('a', { class: 'button', href: '#/audit' }, '← First') : null, next)));
  const l = ui.loader(async () => {
    const q = new URLSearchParams({ limit: '100' });
    if (after) q.set('after', after);
    const data = await ui.api('GET', '/audit?' + q);
    const entries = (data && data.entries) || [];
    // Targets and details may name devices: text nodes only.
    body.replaceChildren(...entries.map((e) => el('tr', { dataset: { auditId: e.id, action: e.action } },
      el('td', { 'data-label': '#' }, e.id),
      el('td', { 'data-label': 'When' }, ui.ago(e.at)),
      el('td', { 'data-label': 'Who' }, e.actor),
      el('td', { 'data-label': 'Action', class: 'action' }, e.action),
      el('td', { 'data-label': 'Target', class: 'target' }, e.target),
      el('td', { 'data-label': 'Detail', class: 'detail' }, e.detail || ''),
      el('td', { 'data-label': 'From' }, e.remoteIp || ''))));
    if (!entries.length) body.replaceChildren(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No entries.')));
    next.setAttribute('aria-disabled', String(!data.nextAfter));
    next.href = data.nextAfter ? '#/audit?after=' + ui.enc(data.nextAfter) : '#';
  });
  return { reload: l.reload, destroy: l.close };
}
