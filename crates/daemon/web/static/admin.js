// Admin page: miners, credits, withdrawals (approve / reject), PSBT creation.
// The admin key lives in sessionStorage and only ever travels in the
// X-API-KEY header.

import { $, el, notify, describeError, formatSat, formatMsat, formatMsatAsBtc, formatTime, registerServiceWorker, markNav } from './common.js';
import { adminApi, adminKey, setAdminKey } from './admin-key.js';

let minersCursor = null;
let creditsCursor = null;

function requireKey() {
  if (!adminKey()) {
    notify($('#key-msg'), 'warn', 'Enter the admin key to load the admin views.');
    return false;
  }
  return true;
}

// ---- withdrawals -------------------------------------------------------------------

function listOf(answer, name) {
  if (Array.isArray(answer)) return answer;
  return (answer && (answer[name] || answer.rows)) || [];
}

async function decide(id, action, reason) {
  const msg = $('#wd-msg');
  try {
    const body = action === 'reject' ? { reason } : {};
    const answer = await adminApi(`/api/admin/withdrawals/${encodeURIComponent(id)}/${action}`, {
      method: 'POST', body: JSON.stringify(body),
    });
    const state = (answer && answer.state) || (action === 'approve' ? 'approved' : 'rejected');
    notify(msg, 'ok', `Withdrawal #${id}: ${state}.`);
    await loadWithdrawals();
  } catch (e) {
    notify(msg, 'bad', `Withdrawal #${id} not ${action === 'approve' ? 'approved' : 'rejected'}: ${describeError(e)}`);
  }
}

function actionsFor(w) {
  if (w.state !== 'requested') return el('span', { class: 'muted small' }, w.decided_by ? `by ${w.decided_by}` : '');
  const reasonId = `reason-${w.id}`;
  const reason = el('input', { id: reasonId, placeholder: 'reason', maxlength: 200, class: 'hidden' });
  const label = el('label', { for: reasonId, class: 'hidden small' }, `Reason for rejecting #${w.id}`);
  const approve = el('button', {
    type: 'button', 'data-action': 'approve', 'aria-label': `Approve withdrawal ${w.id} of ${formatSat(w.amount_sat)} BTC`,
    onclick: () => decide(w.id, 'approve'),
  }, 'Approve');
  const reject = el('button', {
    type: 'button', class: 'danger', 'data-action': 'reject', 'aria-label': `Reject withdrawal ${w.id}`,
    onclick: () => {
      // First click asks for the reason, second click rejects.
      if (reason.classList.contains('hidden')) {
        reason.classList.remove('hidden');
        label.classList.remove('hidden');
        reason.focus();
        reject.textContent = 'Confirm reject';
        return;
      }
      decide(w.id, 'reject', reason.value.trim() || 'rejected by admin');
    },
  }, 'Reject');
  return el('div', { class: 'row' }, approve, label, reason, reject);
}

async function loadWithdrawals() {
  if (!requireKey()) return;
  const state = $('#wd-state').value;
  const query = state ? '?state=' + encodeURIComponent(state) : '';
  try {
    const answer = await adminApi('/api/admin/withdrawals' + query);
    const rows = listOf(answer, 'withdrawals');
    $('#withdrawals').replaceChildren(...rows.map((w) => el('tr', { 'data-id': w.id },
      el('td', {}, String(w.id)),
      el('td', { class: 'mono' }, w.miner_id),
      el('td', { class: 'num' }, formatSat(w.amount_sat)),
      el('td', { class: 'mono' }, w.address),
      el('td', {}, w.state + (w.note ? ` — ${w.note}` : '')),
      el('td', {}, formatTime(w.created_at)),
      el('td', {}, actionsFor(w)))));
    if (!rows.length) {
      $('#withdrawals').append(el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No withdrawals in this state.')));
    }
  } catch (e) {
    notify($('#wd-msg'), 'bad', 'Could not load withdrawals: ' + describeError(e));
  }
}

async function createPsbt() {
  try {
    const answer = await adminApi('/api/admin/create_psbt', {
      method: 'POST', body: JSON.stringify({ withdrawal_ids: [] }),
    });
    // The id goes in the fragment: it never leaves the browser.
    location.href = '/psbt.html#' + encodeURIComponent(answer.psbt_id);
  } catch (e) {
    notify($('#wd-msg'), 'bad', 'Could not create a PSBT: ' + describeError(e));
  }
}

async function sendApproved() {
  try {
    const answer = await adminApi('/api/admin/send_batch', {
      method: 'POST', body: JSON.stringify({ withdrawal_ids: [] }),
    });
    const tx = answer.txid ? `, transaction ${answer.txid}` : '';
    notify($('#wd-msg'), 'ok', `Batch #${answer.batch_id}: ${answer.state}${tx}.`);
    await loadWithdrawals();
  } catch (e) {
    notify($('#wd-msg'), 'bad', 'Could not send: ' + describeError(e));
  }
}

// ---- miners and credits -----------------------------------------------------------

async function loadMiners(more) {
  if (!requireKey()) return;
  try {
    const cursor = more && minersCursor ? '&cursor=' + encodeURIComponent(minersCursor) : '';
    const answer = await adminApi('/api/admin/miners?limit=100' + cursor);
    const rows = (answer.miners || []).map((m) => el('tr', {},
      el('td', { class: 'mono' }, el('a', { href: '/index.html?miner=' + encodeURIComponent(m.miner_id) }, m.miner_id)),
      el('td', { class: 'num' }, m.hashrate_10m.toExponential(3)),
      el('td', { class: 'num' }, String(m.workers)),
      el('td', { class: 'num' }, formatMsatAsBtc(m.balance_msat)),
      el('td', {}, formatTime(m.last_share_at)),
      el('td', {}, m.has_key ? 'yes' : 'no')));
    if (more) $('#miners').append(...rows);
    else $('#miners').replaceChildren(...rows);
    minersCursor = answer.next_cursor;
    $('#miners-more').classList.toggle('hidden', !minersCursor);
  } catch (e) {
    notify($('#key-msg'), 'bad', 'Could not load miners: ' + describeError(e));
  }
}

async function loadCredits(more) {
  if (!requireKey()) return;
  try {
    const cursor = more && creditsCursor ? '&cursor=' + encodeURIComponent(creditsCursor) : '';
    const answer = await adminApi('/api/admin/credits?limit=50' + cursor);
    const rows = (answer.credits || []).map((c) => el('tr', {},
      el('td', {}, String(c.id)),
      el('td', { class: 'mono' }, c.miner_id),
      el('td', { class: 'num' }, formatMsat(c.amount_msat)),
      el('td', { class: 'num' }, String(c.reports)),
      el('td', {}, formatTime(c.created_at))));
    if (more) $('#credits').append(...rows);
    else $('#credits').replaceChildren(...rows);
    creditsCursor = answer.next_cursor;
    $('#credits-more').classList.toggle('hidden', !creditsCursor);
  } catch (e) {
    notify($('#key-msg'), 'bad', 'Could not load credits: ' + describeError(e));
  }
}

async function loadAll() {
  notify($('#key-msg'), '', '');
  await Promise.all([loadWithdrawals(), loadMiners(false), loadCredits(false)]);
}

function start() {
  markNav();
  registerServiceWorker();
  $('#key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    setAdminKey($('#admin-key').value.trim());
    $('#admin-key').value = '';
    loadAll();
  });
  $('#forget-key').addEventListener('click', () => {
    setAdminKey(null);
    notify($('#key-msg'), 'ok', 'Admin key forgotten.');
  });
  $('#wd-filter').addEventListener('submit', (e) => {
    e.preventDefault();
    loadWithdrawals();
  });
  $('#wd-state').addEventListener('change', loadWithdrawals);
  $('#send-approved').addEventListener('click', sendApproved);
  $('#create-psbt').addEventListener('click', createPsbt);
  $('#miners-more').addEventListener('click', () => loadMiners(true));
  $('#credits-more').addEventListener('click', () => loadCredits(true));
  if (adminKey()) loadAll();
}

start();
