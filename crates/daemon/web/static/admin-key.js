// The admin key, kept in this tab's sessionStorage and sent only in the
// X-API-KEY header (never in a URL, where logs and history would keep it).

import { api } from './common.js';

const KEY = 'pooldesk.adminKey';

export function adminKey() {
  return sessionStorage.getItem(KEY);
}

export function setAdminKey(value) {
  if (value) sessionStorage.setItem(KEY, value);
  else sessionStorage.removeItem(KEY);
}

/** An admin API call with the key header. */
export function adminApi(path, options = {}) {
  return api(path, { ...options, headers: { ...(options.headers || {}), 'X-API-KEY': adminKey() || '' } });
}
