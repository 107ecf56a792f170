// Miner dashboard: live hashrate, balance, credits and withdrawals of one
// miner (GET /api/miners/{id} + EventSource /api/stream?miner=ID), and the
// signed account actions (payout address, withdrawal request).

import {
  $, el, api, signedPost, notify, describeError, formatSat, formatMsat, formatMsatAsBtc,
  parseBtc, formatTime, formatDuration, nowSeconds, randomId, parseJsonExact, registerServiceWorker, markNav,
} from './common.js';
import { drawChart, redrawAll } from './chart.js';

const MAX_CREDITS = 30;
// History is refetched at most this often on live events, and on this
// period anyway so the time axis moves.
const HISTORY_DEBOUNCE_MS = 3000;
const HISTORY_PERIOD_MS = 60000;
let minerId = null;
let source = null;
let explorerTxUrl = null;
let minerHistory = null;
let poolHistory = null;
let historyTimer = null;
let poolBlocks = [];
const BLOCKS_SHOWN = 10;

/** Hashes per second as text: 1.23 TH/s. Not money: a float is fine. */
function formatHps(v) {
  const units = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s', 'PH/s', 'EH/s'];
  let i = 0;
  let x = Number(v) || 0;
  while (x >= 1000 && i < units.length - 1) { x /= 1000; i += 1; }
  return (x >= 100 || x === 0 ? x.toFixed(0) : x.toPrecision(3)) + ' ' + units[i];
}

/** An axis value in sat as BTC (the tick value, exactly). */
const formatSatAxis = (v) => formatSat(BigInt(Math.round(v)));

// ---- offline: the last data seen, kept and shown marked stale ---------------------

function remember(name, value) {
  try {
    const text = JSON.stringify({ at: nowSeconds(), value }, (k, v) => (typeof v === 'bigint' ? v.toString() : v));
    localStorage.setItem('pooldesk.last.' + name, text);
  } catch (e) { /* storage full or disabled: nothing to keep */ }
}

function recall(name) {
  try {
    return JSON.parse(localStorage.getItem('pooldesk.last.' + name) || 'null');
  } catch (e) {
    return null;
  }
}

function setStale(at) {
  const badge = $('#data-state');
  if (at === null) {
    badge.classList.add('hidden');
    badge.textContent = '';
    return;
  }
  badge.className = 'badge stale';
  badge.textContent = `offline — last data from ${formatTime(at)}`;
}

const offline = (e) => e && (e.status === 0 || (e.status === 503 && e.code === 'offline'));

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
    el('td', { class: 'num' }, w.hashrate.h1h_text),
    el('td', { class: 'num', 'data-testid': 'shares-1h' }, shareCounts(w)))));
  if (!body.children.length) {
    body.append(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'No shares in the last hour.')));
  }
}

/** "1200 / 3 (0.25 %)"; "1200 / —" where the pool does not report rejects. */
function shareCounts(w) {
  const accepted = Number(w.accepted_1h || 0);
  if (w.rejected_1h === null || w.rejected_1h === undefined) return `${accepted} / —`;
  const rejected = Number(w.rejected_1h);
  const total = accepted + rejected;
  const rate = total ? ` (${((rejected * 100) / total).toFixed(2)} %)` : '';
  return `${accepted} / ${rejected}${rate}`;
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
    el('td', { class: 'mono' }, txidCell(w.txid)));
}

/** A txid, linked to the pool's block explorer where it has one. */
function txidCell(txid) {
  if (!txid) return '—';
  if (!explorerTxUrl) return txid;
  return el('a', { href: explorerTxUrl.replace('{txid}', encodeURIComponent(txid)), rel: 'noopener noreferrer', target: '_blank' }, txid);
}

function upsertWithdrawal(w) {
  const body = $('#withdrawals');
  const existing = body.querySelector(`tr[data-id="${CSS.escape(String(w.id))}"]`);
  const row = withdrawalRow(w);
  if (existing) existing.replaceWith(row);
  else body.prepend(row);
}

function showDetail(d) {
  explorerTxUrl = d.explorer_tx_url || null;
  $('#miner-name').textContent = d.miner_id;
  showBalance(d.balance_msat);
  showHashrate(d.hashrate);
  showWorkers(d.workers);
  $('#credits').replaceChildren(...(d.recent_credits || []).slice(0, MAX_CREDITS).map(creditItem));
  $('#withdrawals').replaceChildren(...(d.withdrawals || []).map(withdrawalRow));
  showMinerBlocks(d);
  $('#payout-address').textContent = d.payout_address || 'not set';
  $('#payout-payable').textContent = d.payout_address_payable_at
    ? `(payable from ${formatTime(d.payout_address_payable_at)})` : '';
}

async function refetch() {
  if (!minerId) return;
  try {
    const detail = await api('/api/miners/' + encodeURIComponent(minerId));
    showDetail(detail);
    remember('miner.' + minerId, detail);
    setStale(null);
    notify($('#follow-msg'), '', '');
    refetchHistory();
  } catch (e) {
    const kept = offline(e) ? recall('miner.' + minerId) : null;
    if (kept) {
      showDetail(kept.value);
      const history = recall('history.' + minerId);
      if (history) showHistory(history.value);
      setStale(kept.at);
    } else if (e.status === 404) {
      notify($('#follow-msg'), 'warn', `No miner "${minerId}" yet: figures appear with its first share.`);
    } else {
      notify($('#follow-msg'), 'bad', describeError(e));
    }
  }
}

// ---- blocks (PPLNS / SOLO) ------------------------------------------------------

function statementLink(hash) {
  return el('a', { href: '/api/blocks/' + encodeURIComponent(hash) + '/statement', title: hash }, 'statement');
}

/** `immature, 63 to go` while immature; the state otherwise. */
function blockState(b) {
  if (b.state === 'immature' && b.confirmations_to_maturity !== undefined) {
    return `immature, ${b.confirmations_to_maturity} to go`;
  }
  return b.state;
}

/** Work ratio as a percentage with two decimals, exact integers (BigInt). */
function workShare(part, whole) {
  const p = BigInt(part ?? 0);
  const w = BigInt(whole ?? 0);
  if (w === 0n) return '—';
  const bp = (p * 10000n) / w;
  return `${bp / 100n}.${String(bp % 100n).padStart(2, '0')} %`;
}

function showMinerBlocks(d) {
  const box = $('#miner-blocks');
  const has = d.pending_msat !== undefined;
  box.classList.toggle('hidden', !has);
  if (!has) return;
  const pending = $('#pending');
  pending.textContent = formatMsatAsBtc(d.pending_msat);
  pending.dataset.msat = String(d.pending_msat);
  const share = $('#window-share');
  share.textContent = `${workShare(d.window_work, d.window_total_work)} (work ${d.window_work ?? 0} of ${d.window_total_work ?? 0})`;
  share.dataset.work = String(d.window_work ?? 0);
  share.dataset.total = String(d.window_total_work ?? 0);
  const rows = (d.recent_blocks || []).map((b) => el('tr', { 'data-hash': b.hash },
    el('td', {}, String(b.height)),
    el('td', { class: 'state' }, blockState(b)),
    el('td', { class: 'num', 'data-msat': String(b.amount_msat) }, formatMsatAsBtc(b.amount_msat)),
    el('td', {}, statementLink(b.hash))));
  $('#miner-recent-blocks').replaceChildren(...(rows.length ? rows
    : [el('tr', {}, el('td', { colspan: '4', class: 'muted' }, 'no block has paid you yet'))]));
}

function showPoolBlocks() {
  const rows = poolBlocks.slice(0, BLOCKS_SHOWN).map((b) => el('tr', { 'data-hash': b.hash, 'data-state': b.state },
    el('td', {}, String(b.height)),
    el('td', { class: 'state' }, blockState(b)),
    el('td', { class: 'num', 'data-msat': String(b.reward_msat) }, formatMsatAsBtc(b.reward_msat)),
    el('td', {}, b.scheme),
    el('td', {}, formatTime(b.found_at)),
    el('td', {}, statementLink(b.hash))));
  $('#pool-blocks').replaceChildren(...(rows.length ? rows
    : [el('tr', {}, el('td', { colspan: '6', class: 'muted' }, 'none yet'))]));
  if (poolHistory) drawPoolCharts(poolHistory);
}

async function refetchBlocks() {
  try {
    const answer = await api('/api/blocks?limit=' + BLOCKS_SHOWN);
    poolBlocks = answer.blocks || [];
    remember('blocks', poolBlocks);
  } catch (e) {
    const kept = offline(e) ? recall('blocks') : null;
    if (!kept) return;
    poolBlocks = kept.value;
  }
  showPoolBlocks();
}

/** A `block` event: the row changes in place (or arrives on top). */
function upsertBlock(b) {
  const i = poolBlocks.findIndex((x) => x.hash === b.hash);
  if (i >= 0) poolBlocks[i] = b; else poolBlocks.unshift(b);
  poolBlocks.sort((x, y) => y.height - x.height);
  showPoolBlocks();
  // Pending and "what it paid you" change with the block's state.
  refetch();
}

// ---- charts, progress and hourly credits -----------------------------------------

function showProgress(p) {
  const bar = $('#progress-bar');
  bar.value = Number(p.permille);
  bar.dataset.permille = String(p.permille);
  bar.dataset.toGoMsat = String(p.to_go_msat);
  bar.dataset.thresholdMsat = String(p.threshold_msat);
  $('#progress-text').textContent = BigInt(p.to_go_msat) === 0n
    ? `Threshold of ${formatMsatAsBtc(p.threshold_msat)} BTC reached: the next payout batch includes you.`
    : `${formatMsatAsBtc(p.balance_msat)} of ${formatMsatAsBtc(p.threshold_msat)} BTC — ${formatMsatAsBtc(p.to_go_msat)} BTC to go.`;
  const pace = p.per_day_msat === null || p.per_day_msat === undefined ? 'No estimate yet'
    : (BigInt(p.per_day_msat) > 0n ? `About ${formatMsatAsBtc(p.per_day_msat)} BTC a day` : 'Nothing earned lately');
  const eta = p.eta_s === null || p.eta_s === undefined
    ? '' : (Number(p.eta_s) > 0 ? `; at that pace the threshold is reached in about ${formatDuration(Number(p.eta_s))}` : '');
  $('#progress-estimate').textContent = `${pace}${eta} (${p.assumptions}).`;
}

function hashrateSeries(h) {
  const worker = $('#chart-worker').value;
  const points = (list) => list.map(([t, , rate]) => [t, rate]);
  if (worker && h.hashrate.workers[worker]) {
    return [{ name: worker, points: points(h.hashrate.workers[worker]), cls: 'c1' }];
  }
  return [{ name: 'total', points: points(h.hashrate.total), cls: 'c0' }];
}

function showWorkerChoice(h) {
  const select = $('#chart-worker');
  const chosen = select.value;
  const names = Object.keys(h.hashrate.workers).sort();
  select.replaceChildren(el('option', { value: '' }, 'all workers (total)'),
    ...names.map((n) => el('option', { value: n, selected: n === chosen }, n)));
}

function drawMinerCharts(h) {
  drawChart($('#chart-hashrate'), {
    series: hashrateSeries(h), from: h.from, to: h.now, step: true, format: formatHps,
    empty: 'No shares in the last 24 h.',
  });
  const payoutMarks = (h.payouts || []).map((p) => ({
    t: p.at, cls: 'payout', label: `payout #${p.withdrawal_id}: ${formatSat(p.amount_sat)} BTC (${p.state})`,
  }));
  drawChart($('#chart-balance'), {
    series: [{ name: 'balance', points: h.balance.map(([t, msat]) => [t, Number(msat) / 1000]), cls: 'c2' }],
    marks: payoutMarks, from: h.from, to: h.now, step: true, format: formatSatAxis,
  });
  drawChart($('#chart-earnings'), {
    series: [{ name: 'earned per hour', points: h.earnings.map((e) => [e.t, Number(e.amount_msat) / 1000]), cls: 'c1' }],
    marks: payoutMarks, from: h.from, to: h.now, step: true, format: formatSatAxis,
    empty: 'No credits in the last 24 h.',
  });
}

function showEarnings(h) {
  const hour = (t) => {
    const d = new Date(t * 1000);
    return `${d.toLocaleDateString()} ${String(d.getHours()).padStart(2, '0')}:00`;
  };
  const rows = [...h.earnings].reverse().map((e) => el('tr', {},
    el('td', {}, hour(e.t)),
    el('td', { class: 'num mono' }, formatMsat(e.amount_msat)),
    el('td', { class: 'num' }, String(e.credits))));
  $('#earnings').replaceChildren(...(rows.length ? rows
    : [el('tr', {}, el('td', { colspan: 3, class: 'muted' }, 'No credits in the last 24 h.'))]));
}

function showHistory(h) {
  minerHistory = h;
  showWorkerChoice(h);
  drawMinerCharts(h);
  showEarnings(h);
  showProgress(h.progress);
}

let historyPending = null;
/** Fetches the charts' data; live events call it at most every few seconds. */
function refetchHistory(soon = false) {
  if (!minerId) return;
  if (soon) {
    if (historyPending) return;
    historyPending = setTimeout(() => { historyPending = null; refetchHistory(); }, HISTORY_DEBOUNCE_MS);
    return;
  }
  const id = minerId;
  api('/api/miners/' + encodeURIComponent(id) + '/history').then((h) => {
    if (id !== minerId) return;
    remember('history.' + id, h);
    showHistory(h);
  }).catch((e) => {
    if (!offline(e) && e.status !== 404) notify($('#follow-msg'), 'bad', describeError(e));
  });
}

/** A live hashrate event moves the newest point of the hashrate chart. */
function liveHashrate(h) {
  if (!minerHistory || !h || !h.hashrate) return;
  const last = (list, rate) => { if (list.length) list[list.length - 1][2] = rate; };
  last(minerHistory.hashrate.total, h.hashrate.h1m);
  for (const w of h.workers || []) {
    const list = minerHistory.hashrate.workers[w.worker_name];
    if (list) last(list, w.hashrate.h1m);
  }
  drawMinerCharts(minerHistory);
}

function drawPoolCharts(p) {
  drawChart($('#chart-pool-hashrate'), {
    series: [{ name: 'pool', points: p.hashrate.map(([t, , rate]) => [t, rate]), cls: 'c0' }],
    marks: [
      ...(p.blocks || []).map((b) => ({ t: b.at, cls: 'block', label: `block ${b.height ?? ''} by ${b.miner_id}` })),
      // Blocks whose coinbase pays the pool's wallet (not orphaned).
      ...poolBlocks.filter((b) => b.state !== 'orphaned' && b.found_at >= p.from)
        .map((b) => ({ t: b.found_at, cls: 'block', label: `block ${b.height} (${b.state})` })),
    ],
    from: p.from, to: p.now, step: true, format: formatHps, empty: 'No shares in the last 24 h.',
  });
  drawChart($('#chart-pool-miners'), {
    series: [{ name: 'miners', points: p.hashrate.map(([t], i) => [t, p.miners[i]]), cls: 'c1' }],
    from: p.from, to: p.now, step: true, format: (v) => String(Math.round(v)),
  });
}

async function refetchPoolHistory() {
  try {
    poolHistory = await api('/api/pool/history');
    remember('pool', poolHistory);
    drawPoolCharts(poolHistory);
  } catch (e) {
    const kept = offline(e) ? recall('pool') : null;
    if (kept) drawPoolCharts(kept.value);
  }
}

function showPool(p) {
  if (poolHistory && poolHistory.hashrate.length) {
    poolHistory.hashrate[poolHistory.hashrate.length - 1][2] = p.hashrate.h1m;
    poolHistory.miners[poolHistory.miners.length - 1] = p.miners_active;
    drawPoolCharts(poolHistory);
  }
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
    refetchBlocks();
  });
  source.addEventListener('error', () => setStreamState('down', 'reconnecting…'));
  source.addEventListener('pool', (e) => showPool(data(e)));
  source.addEventListener('hashrate', (e) => {
    const h = data(e);
    showHashrate(h.hashrate);
    showWorkers(h.workers);
    liveHashrate(h);
  });
  source.addEventListener('balance', (e) => { showBalance(data(e).balance_msat); refetchHistory(true); });
  source.addEventListener('credit', (e) => { addCredit(data(e)); refetchHistory(true); });
  source.addEventListener('withdrawal', (e) => { upsertWithdrawal(data(e)); refetchHistory(true); });
  // The server could not replay what we missed: refetch.
  source.addEventListener('reset', () => { refetch(); refetchBlocks(); });
  source.addEventListener('lagged', () => { refetch(); refetchBlocks(); });
  source.addEventListener('block', (e) => upsertBlock(data(e)));
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
  // At once, not only when the stream opens: offline, the stream never
  // opens and the last data seen is shown from here, marked stale.
  refetch();
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
  $('#chart-worker').addEventListener('change', () => { if (minerHistory) drawMinerCharts(minerHistory); });
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(redrawAll, 150);
  });
  refetchPoolHistory();
  refetchBlocks();
  historyTimer = setInterval(() => { refetchHistory(); refetchPoolHistory(); refetchBlocks(); }, HISTORY_PERIOD_MS);
  const initial = new URLSearchParams(location.search).get('miner') || localStorage.getItem('pooldesk.minerId');
  if (initial) {
    $('#miner-id').value = initial;
    follow(initial);
  } else {
    connect();
  }
}

start();
