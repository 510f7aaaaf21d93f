// Compliance over time, drawn from a device's history (GET
// /devices/{id}/history): one step line across the states, newest on the
// right, and the share of the time spent COMPLIANT. Plain SVG, no library.

const NS = 'http://www.w3.org/2000/svg';
const LEVEL = { COMPLIANT: 0, STALE: 1, NON_COMPLIANT: 2, UNKNOWN: 3 };
const COLOR = { COMPLIANT: '#1d7a46', STALE: '#8a5a00', NON_COMPLIANT: '#b42318', UNKNOWN: '#4b5563' };

function svg(tag, attrs, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) n.setAttribute(k, String(v));
  if (text != null) n.textContent = text;
  return n;
}

// complianceChart returns a <figure id="compliance-chart"> for transitions
// ({from, to, at}, any order) up to now (ms).
export function complianceChart(transitions, now) {
  const ts = transitions.filter((t) => t && t.at && LEVEL[t.to] !== undefined)
    .map((t) => ({ to: t.to, at: new Date(t.at).getTime() })).filter((t) => !Number.isNaN(t.at))
    .sort((a, b) => a.at - b.at);
  const fig = document.createElement('figure');
  fig.id = 'compliance-chart';
  fig.className = 'chart';
  if (!ts.length) return fig;
  const W = 560, H = 120, L = 110, R = 8, T = 8, B = 22;
  const t0 = ts[0].at;
  const t1 = Math.max(now, ts[ts.length - 1].at + 1);
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (s) => T + LEVEL[s] * ((H - T - B) / 3);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': 'compliance state over time' });
  for (const [s, lv] of Object.entries(LEVEL)) {
    root.append(svg('text', { x: L - 6, y: y(s) + 4, 'text-anchor': 'end', 'font-size': 10, fill: COLOR[s] }, s));
    root.append(svg('line', { x1: L, x2: W - R, y1: y(s), y2: y(s), stroke: '#dfe4ea' }));
    void lv;
  }
  let compliant = 0;
  for (let i = 0; i < ts.length; i++) {
    const a = ts[i].at;
    const b = i + 1 < ts.length ? ts[i + 1].at : t1;
    if (ts[i].to === 'COMPLIANT') compliant += b - a;
    root.append(svg('line', { x1: x(a), x2: x(b), y1: y(ts[i].to), y2: y(ts[i].to), stroke: COLOR[ts[i].to], 'stroke-width': 4, class: 'seg', 'data-state': ts[i].to }));
    if (i + 1 < ts.length) {
      root.append(svg('line', { x1: x(b), x2: x(b), y1: y(ts[i].to), y2: y(ts[i + 1].to), stroke: '#9aa5b1', 'stroke-width': 1 }));
    }
  }
  root.append(svg('text', { x: L, y: H - 6, 'font-size': 10, fill: '#5f6b7a' }, new Date(t0).toLocaleString()));
  root.append(svg('text', { x: W - R, y: H - 6, 'font-size': 10, fill: '#5f6b7a', 'text-anchor': 'end' }, 'now'));
  const share = Math.round((compliant / (t1 - t0)) * 100);
  const cap = document.createElement('figcaption');
  cap.className = 'muted';
  cap.dataset.compliantShare = String(share);
  cap.textContent = `Compliant ${share}% of the time since ${new Date(t0).toLocaleDateString()} (${ts.length} state changes).`;
  fig.append(root, cap);
  return fig;
}
