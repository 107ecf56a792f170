// Faucet page: fetch a challenge, solve it in a Web Worker (progress shown),
// post the request, then follow it until it is paid.

import { $, api, notify, describeError, formatSat, formatDuration, registerServiceWorker, markNav } from './common.js';

let worker = null;
let pollTimer = null;

function leadingZeroBits(bytes) {
  let bits = 0;
  for (const b of bytes) {
    if (b === 0) { bits += 8; continue; }
    return bits + Math.clz32(b) - 24;
  }
  return bits;
}

/** Double-checks a solution with WebCrypto before sending it. */
async function verifies(challenge, address, nonce, bits) {
  if (!crypto.subtle) return true;
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(`${challenge}:${address}:${nonce}`));
  return leadingZeroBits(new Uint8Array(digest)) >= bits;
}

function solve(challenge, address, bits) {
  return new Promise((resolve, reject) => {
    worker = new Worker('/static/pow-worker.js');
    const expected = 2 ** bits;
    worker.onmessage = (e) => {
      const m = e.data;
      const pct = Math.min(99, Math.floor((m.tried / expected) * 100));
      $('#progress').value = m.nonce !== undefined ? 100 : pct;
      $('#work-text').textContent = `${m.tried.toLocaleString()} hashes tried (about ${expected.toLocaleString()} expected)`;
      if (m.nonce !== undefined) {
        worker.terminate();
        worker = null;
        resolve(m.nonce);
      }
    };
    worker.onerror = (e) => {
      worker = null;
      reject(new Error('the proof-of-work worker failed: ' + e.message));
    };
    worker.postMessage({ challenge, address, bits });
  });
}

function cancel() {
  if (worker) worker.terminate();
  worker = null;
  busy(false);
  notify($('#faucet-msg'), 'warn', 'Cancelled.');
}

function busy(on) {
  $('#request').disabled = on;
  $('#cancel').classList.toggle('hidden', !on);
  $('#work').classList.toggle('hidden', !on && $('#progress').value === 0);
}

function showRequest(r) {
  $('#request-panel').classList.remove('hidden');
  $('#req-id').textContent = '#' + r.request_id;
  $('#req-amount').textContent = formatSat(r.amount_sat);
  $('#req-state').textContent = r.state;
  $('#req-txid').textContent = r.txid || 'not yet sent';
}

function follow(id) {
  clearTimeout(pollTimer);
  const tick = async () => {
    try {
      const r = await api('/api/faucet/requests/' + encodeURIComponent(id));
      showRequest(r);
      if (r.state === 'paid') {
        notify($('#faucet-msg'), 'ok', 'Paid! The coins are on their way.');
        return;
      }
    } catch (e) {
      // Keep trying quietly: the daemon may be restarting.
    }
    pollTimer = setTimeout(tick, 2000);
  };
  tick();
}

async function request(event) {
  event.preventDefault();
  const address = $('#address').value.trim();
  const msg = $('#faucet-msg');
  notify(msg, '', '');
  $('#progress').value = 0;
  busy(true);
  try {
    const c = await api('/api/faucet/challenge');
    $('#work').classList.remove('hidden');
    const nonce = await solve(c.challenge, address, c.difficulty_bits);
    if (!(await verifies(c.challenge, address, nonce, c.difficulty_bits))) {
      throw new Error('the solution did not verify; please try again');
    }
    const r = await api('/api/faucet', {
      method: 'POST',
      body: JSON.stringify({ address, challenge: c.challenge, nonce }),
    });
    notify(msg, 'ok', `Request #${r.request_id} queued.`);
    showRequest(r);
    localStorage.setItem('pooldesk.faucetRequest', String(r.request_id));
    follow(r.request_id);
  } catch (e) {
    notify(msg, 'bad', describeError(e));
  } finally {
    busy(false);
  }
}

async function loadInfo() {
  try {
    const s = await api('/api/faucet');
    $('#network-name').textContent = s.network;
    if (!s.enabled) {
      $('#faucet-info').textContent = s.disabled_reason || 'The faucet is disabled.';
      $('#request').disabled = true;
      return;
    }
    $('#faucet-info').textContent = `${formatSat(s.amount_sat)} ${s.network} BTC per request, once every ${formatDuration(s.cooldown_s)}. `
      + `Left today: ${formatSat(s.remaining_today_sat)} BTC. Waiting to be paid: ${s.queued}.`;
  } catch (e) {
    $('#faucet-info').textContent = 'Faucet status unavailable: ' + describeError(e);
  }
}

function start() {
  markNav();
  registerServiceWorker();
  $('#faucet-form').addEventListener('submit', request);
  $('#cancel').addEventListener('click', cancel);
  loadInfo();
  const last = localStorage.getItem('pooldesk.faucetRequest');
  if (last) follow(last);
}

start();
