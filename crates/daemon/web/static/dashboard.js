// Miner dashboard: live hashrate, balance, credits and withdrawals of one
// miner (GET /api/miners/{id} + EventSource /api/stream?miner=ID), and the
// signed account actions (payout address, withdrawal request).

import {
  $, el, api, signedPost, notify, describeError, formatSat, formatMsat, formatMsatAsBtc,
  parseBtc, formatTime, nowSeconds, randomId, parseJsonExact, registerServiceWorker, markNav,
} from './common.js';

const MAX_CREDITS = 30;
let minerId = null;
let source = null;

const keyName = (id) => 'pooldesk.key.' + id;

function setStreamState(state, text) {
  const node = $('#stream-state');
  node.textContent = text;
  node.className = 'badge ' + (state === 'live' ? 'live' : 'down');
}

function showHashrate(h) {
  if (!h) return;
  $('#hr-1m').textContent = h.h1m_text;
  $('#hr-10m').textContent = h.h10m_text;
  $('#hr-1h').textContent = h.h1h_text;
}

function showWorkers(workers) {
  const body = $('#workers');
  body.replaceChildren(...(workers || []).map((w) => el('tr', {},
    el('td', { class: 'mono' }, w.worker_name),
    el('td', { class: 'num' }, w.hashrate.h1m_text),
    el('td', { class: 'num' }, w.hashrate.h10m_text),
    el('td', { class: 'num' }, w.hashrate.h1h_text))));
  if (!body.children.length) {
    body.append(el('tr', {}, el('td', { colspan: 4, class: 'muted' }, 'No shares in the last hour.')));
  }
}

function showBalance(balanceMsat) {
  $('#balance').textContent = formatMsatAsBtc(balanceMsat);
  $('#balance-msat').textContent = balanceMsat === null || balanceMsat === undefined ? '' : `(${balanceMsat.toString()} msat)`;
}

function creditItem(c) {
  return el('li', {},
    el('span', { class: 'mono' }, '+' + formatMsat(c.amount_msat) + ' BTC'), ' ',
    el('span', { class: 'muted' }, `${c.worker_name} · ${formatTime(c.at)}`));
}

function addCredit(c) {
  const list = $('#credits');
  list.prepend(creditItem(c));
  while (list.children.length > MAX_CREDITS) list.lastElementChild.remove();
}

function withdrawalRow(w) {
  return el('tr', { 'data-id': w.id },
    el('td', {}, String(w.id)),
    el('td', { class: 'num' }, formatSat(w.amount_sat)),
    el('td', {}, w.state + (w.note ? ` (${w.note})` : '')),
    el('td', { class: 'mono' }, w.address),
    el('td', { class: 'mono' }, w.txid || '—'));
}

function upsertWithdrawal(w) {
  const body = $('#withdrawals');
  const existing = body.querySelector(`tr[data-id="${CSS.escape(String(w.id))}"]`);
  const row = withdrawalRow(w);
  if (existing) existing.replaceWith(row);
  else body.prepend(row);
}

function showDetail(d) {
  $('#miner-name').textContent = d.miner_id;
  showBalance(d.balance_msat);
  showHashrate(d.hashrate);
  showWorkers(d.workers);
  $('#credits').replaceChildren(...(d.recent_credits || []).slice(0, MAX_CREDITS).map(creditItem));
  $('#withdrawals').replaceChildren(...(d.withdrawals || []).map(withdrawalRow));
  $('#payout-address').textContent = d.payout_address || 'not set';
  $('#payout-payable').textContent = d.payout_address_payable_at
    ? `(payable from ${formatTime(d.payout_address_payable_at)})` : '';
}

async function refetch() {
  if (!minerId) return;
  try {
    showDetail(await api('/api/miners/' + encodeURIComponent(minerId)));
    notify($('#follow-msg'), '', '');
  } catch (e) {
    if (e.status === 404) {
      notify($('#follow-msg'), 'warn', `No miner "${minerId}" yet: figures appear with its first share.`);
    } else {
      notify($('#follow-msg'), 'bad', describeError(e));
    }
  }
}

function showPool(p) {
  $('#pool-hr').textContent = p.hashrate.h10m_text;
  $('#pool-miners').textContent = String(p.miners_active);
  $('#pool-workers').textContent = String(p.workers_active);
  $('#pool-owed').textContent = formatMsatAsBtc(p.ledger.owed_msat);
  $('#pool-warnings').replaceChildren(...(p.warnings || []).map((w) => el('li', {}, w.message)));
  const badges = $('#pool-badges');
  badges.replaceChildren(el('span', { class: 'badge' }, p.network));
  if (p.simulated) badges.append(el('span', { class: 'badge sim' }, 'SIMULATED — no real money'));
}

function data(event) {
  return parseJsonExact(event.data);
}

/** Opens the live stream; the browser reconnects by itself with Last-Event-ID. */
function connect() {
  if (source) source.close();
  const url = '/api/stream' + (minerId ? '?miner=' + encodeURIComponent(minerId) : '');
  source = new EventSource(url);
  setStreamState('connecting', 'connecting…');
  source.addEventListener('open', () => {
    setStreamState('live', 'live');
    // Anything that happened while (re)connecting: fetch the truth once.
    refetch();
  });
  source.addEventListener('error', () => setStreamState('down', 'reconnecting…'));
  source.addEventListener('pool', (e) => showPool(data(e)));
  source.addEventListener('hashrate', (e) => {
    const h = data(e);
    showHashrate(h.hashrate);
    showWorkers(h.workers);
  });
  source.addEventListener('balance', (e) => showBalance(data(e).balance_msat));
  source.addEventListener('credit', (e) => addCredit(data(e)));
  source.addEventListener('withdrawal', (e) => upsertWithdrawal(data(e)));
  // The server could not replay what we missed: refetch.
  source.addEventListener('reset', refetch);
  source.addEventListener('lagged', refetch);
}

function follow(id) {
  minerId = id.trim();
  if (!minerId) return;
  localStorage.setItem('pooldesk.minerId', minerId);
  const url = new URL(location.href);
  url.searchParams.set('miner', minerId);
  history.replaceState(null, '', url);
  $('#miner-panel').classList.remove('hidden');
  $('#account-panel').classList.remove('hidden');
  showAccount();
  connect();
}

// ---- account ----------------------------------------------------------------------

function apiKey() {
  return minerId ? localStorage.getItem(keyName(minerId)) : null;
}

function showAccount() {
  const key = apiKey();
  $('#signed-out').classList.toggle('hidden', !!key);
  $('#signed-in').classList.toggle('hidden', !key);
  $('#signed-as').textContent = minerId || '';
  notify($('#account-msg'), '', '');
}

async function signIn(event) {
  event.preventDefault();
  const key = $('#api-key').value.trim();
  try {
    await signedPost('/v1/user/auth-test', minerId, key, { miner_id: minerId, ts: nowSeconds() });
    localStorage.setItem(keyName(minerId), key);
    $('#api-key').value = '';
    showAccount();
    notify($('#account-msg'), 'ok', 'Signed in.');
  } catch (e) {
    notify($('#account-msg'), 'bad', 'Sign-in failed: ' + describeError(e));
  }
}

function signOut() {
  localStorage.removeItem(keyName(minerId));
  showAccount();
  notify($('#account-msg'), 'ok', 'Signed out; the key was removed from this browser.');
}

async function setAddress(event) {
  event.preventDefault();
  const address = $('#new-address').value.trim();
  try {
    await signedPost('/api/miner/payout_address', minerId, apiKey(), { miner_id: minerId, address, event_id: randomId(), ts: nowSeconds() });
    $('#new-address').value = '';
    notify($('#account-msg'), 'ok', 'Payout address saved. A new address becomes payable after the pool\'s waiting period.');
    refetch();
  } catch (e) {
    notify($('#account-msg'), 'bad', 'Could not set the address: ' + describeError(e));
  }
}

async function withdraw(event) {
  event.preventDefault();
  const text = $('#withdraw-amount').value.trim();
  const sat = parseBtc(text);
  if (sat === null || sat <= 0n) {
    notify($('#account-msg'), 'bad', 'Enter an amount in BTC with at most 8 decimals, e.g. 0.0001.');
    return;
  }
  // The amount goes as the exact decimal string (never a float).
  const body = { miner_id: minerId, amount: formatSat(sat), event_id: randomId(), ts: nowSeconds() };
  try {
    const answer = await signedPost('/api/withdraw', minerId, apiKey(), body);
    $('#withdraw-amount').value = '';
    notify($('#account-msg'), 'ok', `Withdrawal #${answer.withdrawal_id} requested (${answer.state}).`);
    refetch();
  } catch (e) {
    notify($('#account-msg'), 'bad', 'Withdrawal refused: ' + describeError(e));
  }
}

function start() {
  markNav();
  registerServiceWorker();
  $('#follow-form').addEventListener('submit', (e) => {
    e.preventDefault();
    follow($('#miner-id').value);
  });
  $('#signin-form').addEventListener('submit', signIn);
  $('#signout').addEventListener('click', signOut);
  $('#address-form').addEventListener('submit', setAddress);
  $('#withdraw-form').addEventListener('submit', withdraw);
  const initial = new URLSearchParams(location.search).get('miner') || localStorage.getItem('pooldesk.minerId');
  if (initial) {
    $('#miner-id').value = initial;
    follow(initial);
  } else {
    connect();
  }
}

start();
