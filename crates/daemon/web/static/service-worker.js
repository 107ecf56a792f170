// pooldesk service worker: keeps the app shell (pages, scripts, styles,
// icons) available offline. API calls always go to the network and are never
// cached: balances and payouts must be live or visibly unavailable.
//
// Bump VERSION when the list of shell files changes; `activate` deletes the
// caches of older versions. Shell files are fetched network-first and the
// cache refreshed on every success, so an upgraded daemon's pages show up at
// once when online.

const VERSION = 'pooldesk-shell-v2';
const SHELL = [
  '/',
  '/index.html',
  '/admin.html',
  '/psbt.html',
  '/faucet.html',
  '/static/app.css',
  '/static/common.js',
  '/static/chart.js',
  '/static/admin-key.js',
  '/static/dashboard.js',
  '/static/admin.js',
  '/static/psbt.js',
  '/static/faucet.js',
  '/static/pow-worker.js',
  '/static/manifest.json',
  '/static/icon-192.png',
  '/static/icon-512.png',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(VERSION).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith('pooldesk-') && n !== VERSION).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

function offlineApiAnswer() {
  return new Response(JSON.stringify({ error: 'offline', message: 'the pool server cannot be reached' }), {
    status: 503,
    headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' },
  });
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (request.method !== 'GET' || url.origin !== self.location.origin) return;
  // The live stream is left to the browser (EventSource reconnects itself).
  if (url.pathname === '/api/stream') return;
  if (url.pathname.startsWith('/api/') || url.pathname === '/healthz' || url.pathname === '/metrics') {
    // Network only, never cached.
    event.respondWith(fetch(request).catch(offlineApiAnswer));
    return;
  }
  event.respondWith(
    fetch(request)
      .then((response) => {
        if (response.ok && SHELL.includes(url.pathname)) {
          const copy = response.clone();
          caches.open(VERSION).then((cache) => cache.put(url.pathname, copy));
        }
        return response;
      })
      .catch(() => caches.match(url.pathname, { ignoreSearch: true })
        .then((hit) => hit || (request.mode === 'navigate' ? caches.match('/index.html') : undefined))
        .then((hit) => hit || Response.error())),
  );
});
