// The settings catalog (GET /settings) for the console's policy editor:
// every setting the server knows, in canonical order, with its type and
// one-line description. The editor is built from it, so a setting added
// to the server's catalog appears here with no console change.

// The console's control type for each catalog type.
const CONTROL = { bool: 'bool', int: 'int', strings: 'list', object: 'json' };

let cached = null;

// loadCatalog fetches the catalog once and merges it into settings (the
// console's name -> {label, type} table), keeping the console's own labels
// and putting the catalog's order first. Without a catalog (an older
// server) settings stays as it is.
export async function loadCatalog(api, settings) {
  if (!cached) {
    cached = api('GET', '/settings').then((c) => (c && Array.isArray(c.settings) ? c.settings : []), () => []);
  }
  const list = await cached;
  if (!list.length) return settings;
  const merged = {};
  for (const s of list) {
    const own = settings[s.name] || {};
    merged[s.name] = {
      label: own.label || s.description || s.name,
      type: CONTROL[s.type] || 'json',
      description: s.description || '',
      schema: s.schema || null,
    };
  }
  for (const [k, v] of Object.entries(settings)) if (!merged[k]) merged[k] = v;
  for (const k of Object.keys(settings)) delete settings[k];
  return Object.assign(settings, merged);
}

// policyEditBody returns the body of PUT /devices/{id}/policy for the rows
// of the device's policy editor: only what the operator changed. Each row
// is {key, inherit, wasOwn, value, before, mode, modeBefore}: inherit
// means "no device value" (a group's or the default applies), so a row
// that had its own value and now inherits sends null; a row with its own
// value sends it when it was inheriting or the value changed; a changed
// mode goes into "modes". An untouched row sends nothing.
export function policyEditBody(rows) {
  const body = {};
  const modes = {};
  for (const r of rows) {
    if (r.inherit || r.value === null) {
      if (r.wasOwn) body[r.key] = null;
    } else if (!r.wasOwn || JSON.stringify(r.value) !== JSON.stringify(r.before)) {
      body[r.key] = r.value;
    }
    if (r.mode !== r.modeBefore) modes[r.key] = r.mode;
  }
  if (Object.keys(modes).length) body.modes = modes;
  return body;
}

// groupPolicyBody returns the body of PUT /groups/{id}/policy, which
// replaces the group's settings, per-setting modes and mode: every row the
// group sets ({key, inherit, value, mode}; inherit = the group does not set
// it), its own mode where it differs from the group's, and the group mode.
export function groupPolicyBody(rows, groupMode) {
  const body = { mode: groupMode };
  const modes = {};
  for (const r of rows) {
    if (r.inherit || r.value === null) continue;
    body[r.key] = r.value;
    if (r.mode && r.mode !== groupMode) modes[r.key] = r.mode;
  }
  if (Object.keys(modes).length) body.modes = modes;
  return body;
}
