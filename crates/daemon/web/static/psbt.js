// PSBT review: what the batch pays, to whom, for which withdrawals, at what
// fee; export for offline signing; import the signed PSBT and finalize.

import { $, el, notify, describeError, formatSat, formatMilliSatVb, registerServiceWorker, markNav } from './common.js';
import { adminApi, adminKey, setAdminKey } from './admin-key.js';

let current = null;

function show(review) {
  current = review;
  $('#review').classList.remove('hidden');
  $('#sign').classList.remove('hidden');
  $('#r-id').textContent = '#' + review.psbt_id + (review.batch_id ? ` (batch ${review.batch_id})` : '');
  $('#r-state').textContent = review.state;
  $('#r-paid').textContent = formatSat(review.paid_to_miners_sat);
  $('#r-change').textContent = formatSat(review.change_sat);
  $('#r-fee').textContent = review.fee_sat === null || review.fee_sat === undefined ? 'unknown' : formatSat(review.fee_sat);
  $('#r-rate').textContent = formatMilliSatVb(review.fee_rate_milli_sat_vb);
  const s = review.signatures || {};
  $('#r-sigs').textContent = `${s.inputs_signed ?? 0} of ${s.inputs_total ?? 0}` + (s.complete ? ' (complete)' : '');
  $('#r-txid').textContent = review.txid || '—';
  $('#r-warnings').replaceChildren(...(review.warnings || []).map((w) => el('li', {}, '⚠ ' + w)));
  $('#r-differences').replaceChildren(...(review.differences || []).map((d) => el('li', {}, '≠ ' + d)));
  $('#r-inputs').replaceChildren(...(review.inputs || []).map((i) => el('tr', {},
    el('td', { class: 'mono' }, i.outpoint),
    el('td', { class: 'num' }, i.amount_sat === null || i.amount_sat === undefined ? 'unknown' : formatSat(i.amount_sat)),
    el('td', { class: i.verified ? '' : 'bad-text' }, i.verified ? 'yes' : 'NO'),
    el('td', {}, i.signed ? 'yes' : 'no'))));
  $('#r-outputs').replaceChildren(...(review.outputs || []).map((o) => el('tr', {},
    el('td', {}, String(o.index)),
    el('td', { class: 'mono' }, o.address),
    el('td', { class: 'num' }, formatSat(o.amount_sat)),
    el('td', { class: o.role === 'unknown' ? 'bad-text' : '' }, o.role),
    el('td', {}, (o.withdrawal_ids || []).map((id) => '#' + id).join(', ') || '—'))));
  $('#unsigned').value = review.psbt || '';
  $('#psbt-id').value = String(review.psbt_id);
}

async function load(id) {
  try {
    const answer = await adminApi('/api/admin/psbt/' + encodeURIComponent(id));
    show(answer.review || answer);
    notify($('#load-msg'), '', '');
    history.replaceState(null, '', '#' + encodeURIComponent(id));
  } catch (e) {
    notify($('#load-msg'), 'bad', 'Could not load the PSBT: ' + describeError(e));
  }
}

async function create() {
  try {
    const answer = await adminApi('/api/admin/create_psbt', { method: 'POST', body: JSON.stringify({ withdrawal_ids: [] }) });
    show(answer.review || { psbt_id: answer.psbt_id, psbt: answer.psbt });
    history.replaceState(null, '', '#' + encodeURIComponent(answer.psbt_id));
    notify($('#load-msg'), 'ok', `PSBT #${answer.psbt_id} created. Review it before signing.`);
  } catch (e) {
    notify($('#load-msg'), 'bad', 'Could not create a PSBT: ' + describeError(e));
  }
}

function base64ToBytes(text) {
  const binary = atob(text.trim());
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function bytesToBase64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function download() {
  if (!current || !current.psbt) return;
  const blob = new Blob([base64ToBytes(current.psbt)], { type: 'application/octet-stream' });
  const a = el('a', { href: URL.createObjectURL(blob), download: `pooldesk-${current.psbt_id}.psbt` });
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

/** A dropped file: binary PSBT (magic "psbt\xff") or base64 text. */
async function readSignedFile(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const magic = [0x70, 0x73, 0x62, 0x74, 0xff];
  if (magic.every((b, i) => bytes[i] === b)) return bytesToBase64(bytes);
  return new TextDecoder().decode(bytes).trim();
}

async function finalize(event) {
  event.preventDefault();
  const msg = $('#finalize-msg');
  $('#finalize-differences').replaceChildren();
  if (!current) return;
  const file = $('#signed-file').files[0];
  const psbt = file ? await readSignedFile(file) : $('#signed').value.trim();
  if (!psbt) {
    notify(msg, 'bad', 'Choose a signed PSBT file or paste it first.');
    return;
  }
  try {
    const answer = await adminApi('/api/admin/finalize_psbt', {
      method: 'POST', body: JSON.stringify({ psbt_id: current.psbt_id, psbt }),
    });
    notify(msg, 'ok', `Broadcast: ${answer.txid}`);
    load(current.psbt_id);
  } catch (e) {
    notify(msg, 'bad', 'Refused: ' + describeError(e));
    const differences = (e.body && e.body.differences) || [];
    $('#finalize-differences').replaceChildren(...differences.map((d) => el('li', {}, '≠ ' + d)));
  }
}

function start() {
  markNav();
  registerServiceWorker();
  $('#key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    setAdminKey($('#admin-key').value.trim());
    $('#admin-key').value = '';
    notify($('#load-msg'), 'ok', 'Admin key set for this tab.');
  });
  $('#load-form').addEventListener('submit', (e) => {
    e.preventDefault();
    load($('#psbt-id').value.trim());
  });
  $('#create').addEventListener('click', create);
  $('#download').addEventListener('click', download);
  $('#copy').addEventListener('click', () => navigator.clipboard && navigator.clipboard.writeText($('#unsigned').value));
  $('#finalize-form').addEventListener('submit', finalize);
  if (!adminKey()) notify($('#load-msg'), 'warn', 'Enter the admin key first.');
  const fromHash = decodeURIComponent(location.hash.slice(1));
  if (fromHash && adminKey()) load(fromHash);
}

start();
