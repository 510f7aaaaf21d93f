// Enrollment tokens (GET/POST/DELETE /enrollment-tokens): the list, a
// create form, revoke. A new token's enrollment string
// (doorbell://enroll?server=...&pin=...&token=..., docs/TRUST.md) is shown
// with its QR code, which the Android app scans at provisioning. The server
// draws the QR (POST /enrollment-tokens/qr): the console embeds no QR code.

export function tokensView(ui) {
  const { el } = ui;
  const body = el('tbody');
  const expires = el('select', { id: 'token-expires', 'aria-label': 'Expires in' },
    [['1h', '1 hour'], ['24h', '24 hours'], ['168h', '7 days'], ['720h', '30 days']].map(([v, t]) => el('option', { value: v }, t)));
  expires.value = '24h';
  const uses = el('input', { type: 'number', id: 'token-uses', min: 1, max: 1000000, value: '1', step: 1, 'aria-label': 'Max uses' });
  const created = el('section', { class: 'card', id: 'token-new', hidden: true });
  const result = el('span', { role: 'status', id: 'token-create-result' });
  const form = el('form', { class: 'inline-form', id: 'token-form' },
    el('label', {}, 'Expires in ', expires), el('label', {}, 'Devices ', uses),
    el('button', { type: 'submit', class: 'primary', id: 'token-create' }, 'Create enrollment token'), result);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const t = await ui.api('POST', '/enrollment-tokens', { expiresIn: expires.value, maxUses: Number(uses.value) || 1 });
      result.textContent = '';
      await showNew(t);
      l.reload();
    } catch (x) {
      result.className = 'error';
      result.textContent = x.message;
    }
  });

  async function showNew(t) {
    const kids = [el('h2', {}, 'New enrollment token ', el('code', {}, t.id)),
      el('p', { class: 'notice' }, 'The secret is shown only now. Give it, or the QR code, to the device being enrolled.'),
      el('dl', { class: 'facts' }, el('dt', {}, 'Token'), el('dd', {}, el('code', { id: 'token-secret' }, t.token)),
        el('dt', {}, 'Expires'), el('dd', {}, ui.ago(t.expiresAt)), el('dt', {}, 'Devices'), el('dd', {}, String(t.maxUses)))];
    if (t.enrollUrl) {
      kids.push(el('p', {}, 'Enrollment string (', el('code', {}, 'doorbell agent --enroll-url'), ', or scan the code in the Android app):'),
        el('pre', { class: 'enroll-url' }, el('code', { id: 'token-enroll-url' }, t.enrollUrl)));
      const img = el('img', { id: 'token-qr', alt: 'QR code of the enrollment string', width: 256, height: 256 });
      kids.push(img);
      try {
        const res = await fetch('/enrollment-tokens/qr', {
          method: 'POST', cache: 'no-store',
          headers: { Authorization: 'Bearer ' + sessionStorage.getItem('doorbell.token'), 'Content-Type': 'application/json', Accept: 'image/png' },
          body: JSON.stringify({ enrollUrl: t.enrollUrl }),
        });
        if (!res.ok) throw new Error('HTTP ' + res.status);
        // A data: URL: the page's Content-Security-Policy allows images
        // from its origin and data: only.
        const blob = await res.blob();
        img.src = await new Promise((ok, fail) => {
          const r = new FileReader();
          r.onload = () => ok(r.result);
          r.onerror = () => fail(r.error);
          r.readAsDataURL(blob);
        });
      } catch (x) {
        img.replaceWith(el('p', { class: 'error' }, 'The QR code could not be drawn: ' + x.message));
      }
    } else {
      kids.push(el('p', { class: 'muted', id: 'token-no-tls' }, 'This server runs without TLS, so there is no enrollment string to scan; agents use ',
        el('code', {}, '--server'), ' and ', el('code', {}, '--enroll-token'), '.'));
    }
    created.replaceChildren(...kids);
    created.hidden = false;
  }

  ui.main().replaceChildren(
    el('div', { class: 'page-head' }, el('h1', {}, 'Enrollment tokens'),
      el('span', { class: 'muted' }, 'Each lets a limited number of devices enroll until it expires.')),
    el('p', { id: 'page-error', class: 'error', role: 'alert', hidden: true }),
    el('section', { class: 'card' }, form),
    created,
    el('section', { class: 'card' }, el('div', { class: 'table-wrap' }, el('table', { id: 'enroll-tokens', class: 'devices' },
      el('thead', {}, el('tr', {}, ['Token', 'Used', 'Expires', 'Created', 'By', ''].map((h) => el('th', { scope: 'col' }, h)))), body))));
  const l = ui.loader(async () => {
    const data = await ui.api('GET', '/enrollment-tokens');
    const list = (data && data.tokens) || [];
    body.replaceChildren(...list.map((t) => {
      const revoke = el('button', { type: 'button', class: 'danger token-revoke', dataset: { tokenId: t.id } }, 'Revoke');
      revoke.addEventListener('click', async () => {
        try {
          await ui.api('DELETE', '/enrollment-tokens/' + ui.enc(t.id));
          l.reload();
        } catch (x) {
          ui.showError(x);
        }
      });
      return el('tr', { dataset: { tokenId: t.id } },
        el('td', { 'data-label': 'Token' }, el('code', {}, t.id)),
        el('td', { 'data-label': 'Used' }, t.uses + ' / ' + t.maxUses),
        el('td', { 'data-label': 'Expires' }, ui.ago(t.expiresAt)),
        el('td', { 'data-label': 'Created' }, ui.ago(t.createdAt)),
        el('td', { 'data-label': 'By' }, t.createdBy),
        el('td', {}, revoke));
    }));
    if (!list.length) body.replaceChildren(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No enrollment tokens.')));
  });
  return { reload: l.reload, destroy: l.close };
}
