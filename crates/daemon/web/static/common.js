// Shared helpers of the pooldesk pages: API calls, exact money formatting,
// the COINjecture request signature, service worker registration.
//
// Money: every amount arrives as an integer field (`*_msat`, `*_sat`) and is
// turned into a BigInt from the number's own JSON text, so no amount ever
// passes through a float, however large. Formatting is integer arithmetic.

/** Parses JSON, turning `*_msat` / `*_sat` integers into BigInt exactly. */
export function parseJsonExact(text) {
  return JSON.parse(text, function (key, value, context) {
    if (typeof value === 'number' && /(^|_)m?sat$/.test(key)) {
      // `context.source` is the literal text (modern browsers); without it,
      // only integers a double holds exactly are trusted.
      if (context && typeof context.source === 'string' && /^-?\d+$/.test(context.source)) {
        return BigInt(context.source);
      }
      return Number.isSafeInteger(value) ? BigInt(value) : null;
    }
    return value;
  });
}

/** An API error with the server's JSON error body. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.error) || 'http_' + status;
    this.body = body || {};
  }
}

/** fetch + JSON; throws ApiError for non-2xx answers. */
export async function api(path, { method = 'GET', headers = {}, body } = {}) {
  const init = { method, headers: { Accept: 'application/json', ...headers }, cache: 'no-store' };
  if (body !== undefined) {
    init.body = body;
    init.headers['Content-Type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { error: 'offline', message: 'cannot reach the server (offline?)' });
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? parseJsonExact(text) : null;
  } catch (e) {
    json = { error: 'bad_response', message: text.slice(0, 200) };
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

// ---- money (integer arithmetic only) ---------------------------------------

function toBig(v) {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  return null;
}

function scaled(units, decimals) {
  const big = toBig(units);
  if (big === null) return '—';
  const negative = big < 0n;
  const magnitude = negative ? -big : big;
  const base = 10n ** BigInt(decimals);
  const whole = magnitude / base;
  const fraction = (magnitude % base).toString().padStart(decimals, '0');
  return (negative ? '-' : '') + whole.toString() + '.' + fraction;
}

/** Satoshis as a BTC string with 8 decimals: 10000 → "0.00010000". */
export function formatSat(sat) {
  return scaled(sat, 8);
}

/** Millisatoshis as BTC with 11 decimals (sub-satoshi credits stay exact). */
export function formatMsat(msat) {
  return scaled(msat, 11);
}

/** Millisatoshis as whole-satoshi BTC (8 decimals), rounding down. */
export function formatMsatAsBtc(msat) {
  const big = toBig(msat);
  if (big === null) return '—';
  const sat = big >= 0n ? big / 1000n : -((-big + 999n) / 1000n);
  return scaled(sat, 8);
}

/** Parses a BTC decimal string (at most 8 decimals) to satoshis, or null. */
export function parseBtc(text) {
  const m = /^\s*(\d{1,8})(?:\.(\d{0,8}))?\s*$/.exec(text);
  if (!m) return null;
  return BigInt(m[1]) * 100000000n + BigInt((m[2] || '').padEnd(8, '0') || '0');
}

/** Fee rate given in milli-sat/vB as "2.500 sat/vB". */
export function formatMilliSatVb(milli) {
  return milli === null || milli === undefined ? '—' : scaled(milli, 3) + ' sat/vB';
}

export function formatTime(unixSeconds) {
  if (unixSeconds === null || unixSeconds === undefined) return '—';
  const d = new Date(Number(unixSeconds) * 1000);
  return d.toLocaleString();
}

// ---- canonical JSON and the personal-key signature ----------------------------

/**
 * Python's `json.dumps(obj, sort_keys=True, separators=(',', ':'))` for
 * the bodies the pages send (strings, integers, nested objects/arrays).
 * `ensure_ascii` is Python's default: everything outside printable ASCII
 * (DEL and beyond, including each half of a surrogate pair) becomes
 * `\uXXXX` with lower-case hex, as Python writes it.
 */
// A duration in the largest units that fit, e.g. "45 s", "10 min",
// "1 h 30 min", "2 d 3 h": a 10-minute cooldown is not "0 h".
export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(Number(seconds) || 0));
  const unit = (big, bigName, small, smallName) => {
    const whole = Math.floor(s / big);
    const rest = Math.floor((s % big) / small);
    return rest ? `${whole} ${bigName} ${rest} ${smallName}` : `${whole} ${bigName}`;
  };
  if (s < 60) return `${s} s`;
  if (s < 3600) return unit(60, 'min', 1, 's');
  if (s < 86400) return unit(3600, 'h', 60, 'min');
  return unit(86400, 'd', 3600, 'h');
}

export function canonicalJson(value) {
  if (value === null) return 'null';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error('only integers are signed');
    return String(value);
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'string') return asciiEscape(JSON.stringify(value));
  if (Array.isArray(value)) return '[' + value.map(canonicalJson).join(',') + ']';
  if (typeof value === 'object') {
    // Python sorts keys by code point; JS sorts strings by UTF-16 code
    // units, which differs only for astral characters in keys (none here).
    const keys = Object.keys(value).sort();
    return '{' + keys.map((k) => asciiEscape(JSON.stringify(k)) + ':' + canonicalJson(value[k])).join(',') + '}';
  }
  throw new Error('cannot sign a ' + typeof value);
}

function asciiEscape(json) {
  return json.replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Hex HMAC-SHA256 of `text` with the API key's UTF-8 bytes as the key. */
export async function hmacHex(apiKey, text) {
  if (!window.crypto || !crypto.subtle) {
    throw new ApiError(0, { error: 'insecure_context', message: 'signing needs a secure context (HTTPS or localhost)' });
  }
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey('raw', enc.encode(apiKey), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return hex(await crypto.subtle.sign('HMAC', key, enc.encode(text)));
}

/**
 * POSTs `body` signed with the miner's personal key (headers X-User-ID,
 * X-Signature, X-Timestamp), sending exactly the canonical bytes that were
 * signed. The signature covers `POST <path>\n<canonical body>`, so it is
 * good for this endpoint only (the seed's /v1/ingest/block alone signs the
 * body without method and path).
 */
export async function signedPost(path, minerId, apiKey, body) {
  const text = canonicalJson(body);
  const message = path === '/v1/ingest/block' ? text : `POST ${path}\n${text}`;
  const signature = await hmacHex(apiKey, message);
  return api(path, {
    method: 'POST',
    body: text,
    headers: {
      'X-User-ID': minerId,
      'X-Signature': signature,
      'X-Timestamp': String(Math.floor(Date.now() / 1000)),
    },
  });
}

export function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

export function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return hex(b.buffer);
}

// ---- DOM helpers ------------------------------------------------------------------

export const $ = (selector, root = document) => root.querySelector(selector);

/** Creates an element; children may be strings (text, never HTML). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Shows a message in a notice element (`kind`: ok, bad, warn, or ''). */
export function notify(node, kind, message) {
  node.className = 'notice' + (kind ? ' ' + kind : '');
  node.textContent = message;
  node.classList.toggle('hidden', !message);
}

export function describeError(e) {
  if (e instanceof ApiError) {
    let text = `${e.message} (${e.code})`;
    if (e.body && e.body.seconds_left !== undefined) text += ` — try again in ${e.body.seconds_left} s`;
    return text;
  }
  return String(e && e.message ? e.message : e);
}

// ---- installable app ------------------------------------------------------------

/** Registers the service worker (whole-app scope) once the page loaded. */
export function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  window.addEventListener('load', () => {
    navigator.serviceWorker.register('/static/service-worker.js', { scope: '/' }).catch((e) => {
      console.warn('service worker registration failed', e);
    });
  });
}

/** Marks the current page in the navigation. */
export function markNav() {
  const here = location.pathname === '/' ? '/index.html' : location.pathname;
  for (const a of document.querySelectorAll('header.top nav a')) {
    if (a.getAttribute('href') === here) a.setAttribute('aria-current', 'page');
  }
}
