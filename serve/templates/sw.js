// The console's service worker: a phone that reloads the console, or opens it in a new tab, with no
// signal gets the console (and the outbox's waiting steps) instead of the browser's offline page.
// Served at /sw.js (scope: the console's own path); browsers run it on https:// and on
// http://localhost or 127.0.0.1 only: elsewhere the console works as before, without it.
//
// - The shell (the page, its modules, CSS, i18n) is fetched when this worker installs, into a cache
//   named by the release (the package's version and the files' hash: serve/api/routers/console.py);
//   a new release is a new worker text, and the new worker drops the old release's caches.
// - The shell and the API's GETs go to the network first, so that a page online is always the
//   current one; only when no answer comes is the kept copy used. An API answer from the cache has
//   the X-Streetorder-Fetched header (when it was fetched): the page says it shows stale data.
// - Kept: 200 answers to GETs made with the console's own session (the cookie). Never kept: other
//   methods, requests with an API key or any other credentials. The kept answers go with the session:
//   dropped at a sign-in, a sign-out and any 401.
const RELEASE = {{ version|tojson }};
const SHELL = `streetorder-shell-${RELEASE}`;
const ANSWERS = `streetorder-api-${RELEASE}`;
const FILES = ["/", ...{{ files|tojson }}.map((name) => `/console/${name}`)];
const FETCHED = "X-Streetorder-Fetched";

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(SHELL)
      .then((cache) => cache.addAll(FILES.map((path) => new Request(path, { cache: "no-cache" }))))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const mine = [SHELL, ANSWERS];
    for (const name of await caches.keys()) if (name.startsWith("streetorder-") && !mine.includes(name)) await caches.delete(name);
    await self.clients.claim();
  })());
});

// Bumped by each forget(): a read already on its way when the session ended must not be kept after
// the drop (it would outlive the sign-out, readable offline at its address until the next sign-in).
let session = 0;

/** Drop every kept API answer: the session they were fetched with is over (or another begins). */
function forget() {
  session += 1;
  return caches.delete(ANSWERS);
}

/** Network first; the kept copy (under `key`) when no answer comes. `keep` makes the copy kept. */
async function networkFirst(request, cacheName, key, keep) {
  const asked = session;
  let answer;
  try {
    answer = await fetch(request);
  } catch (failure) {
    const kept = await (await caches.open(cacheName)).match(key, { ignoreVary: true });
    if (kept) return kept;
    throw failure;
  }
  if (answer.status === 200) {
    const copy = await keep(answer.clone());
    const cache = await caches.open(cacheName);
    if (cacheName === ANSWERS && asked !== session) return answer; // fetched for a session now over
    await cache.put(key, copy);
  } else if (answer.status === 401) {
    await forget();
  }
  return answer;
}

/** An API answer as kept: the same, plus when it was fetched. */
async function stamped(answer) {
  const headers = new Headers(answer.headers);
  headers.set(FETCHED, new Date().toISOString());
  return new Response(await answer.blob(), { status: answer.status, statusText: answer.statusText, headers });
}

/** Whether a request carries credentials other than the console's session cookie. */
function foreign(request) {
  return request.headers.has("X-API-Key") || request.headers.has("Authorization");
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.startsWith("/v1/sessions") && ["POST", "DELETE"].includes(request.method)) {
    event.waitUntil(forget()); // a sign-in or a sign-out (it goes to the network as ever)
    return;
  }
  if (request.method !== "GET") return;
  if (url.pathname === "/" && request.mode === "navigate") {
    event.respondWith(networkFirst(request, SHELL, "/", (answer) => answer));
  } else if (url.pathname.startsWith("/console/")) {
    event.respondWith(networkFirst(request, SHELL, url.pathname, (answer) => answer));
  } else if (url.pathname.startsWith("/v1/") && !foreign(request)) {
    event.respondWith(networkFirst(request, ANSWERS, request, stamped));
  }
});
