// The JSON API, called either as a signed-in person (the HttpOnly session cookie the browser sends by
// itself, plus the session's CSRF token in X-CSRF-Token on every change) or with an API key kept in
// sessionStorage and sent in the X-API-Key header. Neither ever goes into a URL: not in links, not in
// image addresses (images are fetched as blobs).

const KEY = "streetorder.key";
const PERSON = "streetorder.person"; // {name, username, role, department, actions, csrf_token}: no secret

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  /** The signed-in person (from POST /v1/sessions), or null when signed in with a key or not at all. */
  get person() {
    const stored = sessionStorage.getItem(PERSON);
    return stored ? JSON.parse(stored) : null;
  },
  get signedIn() {
    return Boolean(this.key || this.person);
  },
  /** The role of the person signed in; null for a key (keys are judged by scope alone). */
  get role() {
    return this.person?.role || null;
  },
  set(key) {
    sessionStorage.setItem(KEY, key);
  },
  setPerson(person) {
    sessionStorage.removeItem(KEY);
    sessionStorage.setItem(PERSON, JSON.stringify(person));
  },
  clear() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(PERSON);
  },
};

const SAFE = ["GET", "HEAD"];
const FETCHED = "X-Streetorder-Fetched"; // on an answer the service worker kept (serve/templates/sw.js)

/** The oldest kept answer the page drawn now stands on (ISO 8601), or null: all came from the
 * service. Set by request(), reset by the console at each page it draws. */
export const offline = { since: null };

/** Drop the API answers the service worker kept for this session (it drops them itself when it sees
 * the sign-out go by; this covers a page it does not control). */
export async function forgetAnswers() {
  if (!("caches" in window)) return; // plain HTTP away from localhost: no service worker, nothing kept
  for (const name of await caches.keys()) if (name.startsWith("streetorder-api-")) await caches.delete(name);
}

/** A failed request: HTTP status plus the RFC 9457 problem document the service answered, and the
 * seconds its Retry-After asked to wait (429, 503), if any. */
export class ApiError extends Error {
  constructor(status, problem, retryAfter = null) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.retryAfter = Number(retryAfter) || null;
  }
}

/** The key's header, or a person's CSRF token on a change. */
function credentials(method, key, headers) {
  const out = { ...headers };
  if (key) out["X-API-Key"] = key;
  else if (session.person && !SAFE.includes(method)) out["X-CSRF-Token"] = session.person.csrf_token;
  return out;
}

/** fetch() with the key; throws ApiError on any non-2xx answer. */
export async function request(path, { method = "GET", json, headers = {}, key = session.key } = {}) {
  const init = { method, headers: credentials(method, key, headers), credentials: "same-origin" };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  const fetched = response.headers.get(FETCHED);
  if (fetched && !(offline.since && offline.since < fetched)) offline.since = fetched;
  if (!response.ok) {
    const problem = await response.json().catch(() => ({ detail: response.statusText }));
    throw new ApiError(response.status, problem, response.headers.get("Retry-After"));
  }
  return response;
}

/** POST a form with a file and report the share sent (0..1) as it goes: fetch() tells nothing of an
 * upload's progress, and a 5 MB phone photo on a slow street link takes a while. Resolves with the
 * answer's JSON; throws ApiError on a non-2xx answer, and ApiError with status 0 when the link fails. */
export function upload(path, form, onProgress, headers = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(credentials("POST", session.key, headers))) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let answer;
      try {
        answer = JSON.parse(xhr.responseText);
      } catch {
        answer = { detail: xhr.statusText };
      }
      if (xhr.status >= 200 && xhr.status < 300) resolve(answer);
      else reject(new ApiError(xhr.status, answer, xhr.getResponseHeader("Retry-After")));
    });
    const lost = () => reject(new ApiError(0, { title: "network", detail: "the upload did not reach the service" }));
    for (const failed of ["error", "timeout", "abort"]) xhr.addEventListener(failed, lost);
    xhr.send(form);
  });
}

export async function getJSON(path, options) {
  return (await request(path, options)).json();
}

/** Query string with repeated keys for lists and without empty values. */
export function query(params) {
  const out = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== null && item !== undefined && item !== "") out.append(name, item);
    }
  }
  const text = out.toString();
  return text ? `?${text}` : "";
}

const objectUrls = [];

/** Load an image that needs the key into `img` (as a blob URL); `onMissing` runs when there is none. */
export async function loadImage(img, path, onMissing) {
  try {
    const blob = await (await request(path)).blob();
    const url = URL.createObjectURL(blob);
    objectUrls.push(url);
    await new Promise((resolve) => {
      img.addEventListener("load", resolve, { once: true });
      img.addEventListener("error", resolve, { once: true });
      img.src = url;
    });
  } catch (error) {
    if (onMissing) onMissing(error);
    else throw error;
  }
}

/** Free the images of the page being left. */
export function releaseImages() {
  while (objectUrls.length) URL.revokeObjectURL(objectUrls.pop());
}

const cache = new Map();

/** Lists that do not change while the console is open (event classes, departments). */
export function cached(path) {
  if (!cache.has(path)) cache.set(path, getJSON(path).catch((e) => (cache.delete(path), Promise.reject(e))));
  return cache.get(path);
}

/** Fetch a file (the ledger) with the caller's credentials and hand it to the browser as a download. */
export async function download(path, filename) {
  const blob = await (await request(path)).blob();
  const url = URL.createObjectURL(blob);
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return blob;
}
