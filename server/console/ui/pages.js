// The operator pages that live in their own files: groups, the audit log
// and enrollment tokens. app.js's router asks operatorView first; a page
// that is not one of these answers null and app.js routes it itself.

import { groupsView, groupView } from './groups.js';
import { auditView } from './audit.js';
import { tokensView } from './tokens.js';

export function operatorView(ui, parts, params) {
  if (parts[0] === 'groups' && parts[1]) return groupView(ui, parts[1]);
  if (parts[0] === 'groups') return groupsView(ui);
  if (parts[0] === 'audit') return auditView(ui, params);
  if (parts[0] === 'tokens') return tokensView(ui);
  return null;
}
