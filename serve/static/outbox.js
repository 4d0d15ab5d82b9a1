// The outbox: a photo step (handle, check pass, check fail) that the street's link dropped is kept on
// the phone in IndexedDB (the photo, the step's fields, the case's version) and sent again, oldest
// first, when the browser comes back online, when a page is drawn and on a timer. Each step keeps the
// Idempotency-Key it got when first made, so a step the service filed but whose answer was lost is
// answered again, not filed twice. Nothing here survives only in memory: a reload or a closed tab
// loses nothing; a phone whose storage refuses says so (the step is then neither sent nor kept).
import { ApiError, request, session, upload } from "./api.js";
import { h, reload, when } from "./dom.js";
import { explain, t } from "./i18n.js";

const DB = "streetorder";
const STORE = "outbox";
const BEAT_MS = 30000; // the timer: a phone that never says `online` (the link came back quietly)
const FIRST_WAIT_MS = 5000; // after a 5xx or 429 without Retry-After; doubles at each refusal
const MOST_WAIT_MS = 10 * 60 * 1000;
export const AFTER = "after"; // the role of a photo taken after handling

let opened = null;

function database() {
  opened ??= new Promise((resolve, reject) => {
    const opening = indexedDB.open(DB, 1);
    opening.onupgradeneeded = () => opening.result.createObjectStore(STORE, { keyPath: "id", autoIncrement: true });
    opening.onsuccess = () => resolve(opening.result);
    opening.onerror = () => reject(opening.error);
  }).catch((error) => {
    opened = null;
    throw error;
  });
  return opened;
}

/** One transaction on the store; resolves with the result of `work`'s request once it is committed
 * (a write refused for lack of space aborts the transaction: rejected, never "saved"). */
async function stored(mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(STORE, mode);
    const asked = work(transaction.objectStore(STORE));
    transaction.oncomplete = () => resolve(asked.result);
    transaction.onabort = () => reject(transaction.error || new DOMException("not saved", "AbortError"));
  });
}

const all = () => stored("readonly", (store) => store.getAll()); // in key order: oldest first
const put = async (item) => (item.id = await stored("readwrite", (store) => store.put(item)));
const remove = (id) => stored("readwrite", (store) => store.delete(id));

/** Who sends a step: a waiting step is sent only for the person (or key) who made it. */
function owner() {
  return session.person ? session.person.username : session.key ? "key" : null;
}

/** A new step, with the Idempotency-Key it keeps through every try (random, not crypto.randomUUID:
 * that needs HTTPS, and a bureau's console may be served on plain HTTP inside its network). */
export function newStep({ caseId, caseNumber, action, etag, photo }) {
  const key = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
  return {
    key, caseId, caseNumber, action, etag, photo, photoName: photo?.name || "photo.jpg",
    made: new Date().toISOString(), owner: owner(), body: { action }, evidenceId: null, tries: 0, due: 0, refused: null,
  };
}

/** Whether a failure is the link's (no answer came): such a step is kept and sent again. */
export function unsent(failure) {
  return !navigator.onLine || (failure instanceof ApiError ? failure.status === 0 : failure instanceof TypeError);
}

/** Send a step: its photo first (unless an earlier try sent it), then the transition standing on it,
 * both with the step's Idempotency-Key. Throws ApiError (status 0: no answer). */
export async function send(step, onProgress = () => {}) {
  const headers = { "Idempotency-Key": step.key };
  if (step.photo && step.evidenceId === null) {
    const form = new FormData();
    form.append("file", step.photo, step.photoName);
    form.append("role", AFTER);
    // the case's version too: a photo for a case changed meanwhile is refused before it is stored
    step.evidenceId = (await upload(`/v1/cases/${step.caseId}/evidence`, form, onProgress, { ...headers, "If-Match": step.etag })).id;
    if (step.id !== undefined) await put(step); // a later try stands on the photo sent
  }
  const body = step.action === "handle" && step.evidenceId !== null ? { ...step.body, evidence_id: step.evidenceId } : step.body;
  try {
    await request(`/v1/cases/${step.caseId}/transitions`, {
      method: "POST", json: body, headers: { ...headers, "If-Match": step.etag },
    });
  } catch (failure) {
    if (failure instanceof ApiError) throw failure;
    throw new ApiError(0, { title: "network", detail: "the step did not reach the service" });
  }
}

/** Keep a step that could not be sent; resolves with the count waiting. Rejects when the phone's
 * storage refuses (quota, or a browser that keeps nothing): the caller must say it was not saved. */
export async function keep(step) {
  await put(step);
  showOutbox();
  return (await all()).filter((item) => !item.refused).length;
}

let signedOut = false; // the service answered 401: steps wait for the next sign-in
let flushing = null;
let again = false;

/** Send the waiting steps, oldest first; one pass at a time, whoever asks (online, a page, the
 * timer). A call during a pass asks for one more after it: the link may have come back meanwhile. */
export function flush() {
  if (flushing) {
    again = true;
    return flushing;
  }
  flushing = drain().finally(() => {
    flushing = null;
    if (again) {
      again = false;
      flush();
    }
  });
  return flushing;
}

/** How long a step the service was too busy for waits: doubling, or the answer's Retry-After. */
function backoffMs(tries, retryAfter) {
  const backoff = Math.min(FIRST_WAIT_MS * 2 ** (tries - 1), MOST_WAIT_MS);
  return Math.max(backoff, (retryAfter || 0) * 1000);
}

async function drain() {
  const me = owner();
  if (!me) return;
  signedOut = false;
  let items;
  try {
    items = await all();
  } catch {
    return; // no IndexedDB on this browser: nothing was kept either
  }
  for (const item of items) {
    if (item.refused || item.owner !== me) continue;
    if (item.due > Date.now()) break; // backing off: the later steps of the case wait their turn
    try {
      await send(item);
    } catch (failure) {
      if (!(failure instanceof ApiError) || failure.status === 0) break; // no link (or no storage): all wait
      if (failure.status === 401) {
        signedOut = true;
        break;
      }
      if (failure.status === 429 || failure.status >= 500) {
        item.tries += 1;
        item.due = Date.now() + backoffMs(item.tries, failure.retryAfter);
      } else {
        item.refused = { status: failure.status, problem: failure.problem }; // kept until discarded
      }
      await put(item);
      if (item.refused) continue;
      break;
    }
    await remove(item.id);
    if (document.querySelector(`#view [data-case="${item.caseId}"]`)) reload(); // the step shows
  }
  await showOutbox();
}

const thumbnails = [];

/** The waiting and refused steps above the page: thumbnail, time, case and step, a discard button. */
export async function showOutbox() {
  const panel = document.getElementById("outbox");
  let items = [];
  try {
    items = await all();
  } catch {
    // no IndexedDB: nothing kept, nothing to show
  }
  while (thumbnails.length) URL.revokeObjectURL(thumbnails.pop());
  panel.hidden = !items.length;
  const waiting = items.filter((item) => !item.refused);
  const others = waiting.filter((item) => item.owner !== owner()).map((item) => item.owner);
  panel.replaceChildren(
    h("p", { id: "outbox-count", "data-waiting": waiting.length, "data-refused": items.length - waiting.length },
      waiting.length ? t("outbox.saved", { n: waiting.length }) : t("outbox.refused_only"),
      signedOut || (waiting.length && !owner()) ? [" ", h("strong", {}, t("outbox.signin"))] : null,
      others.length ? [" ", t("outbox.others", { who: [...new Set(others)].join(t("list.sep")) })] : null),
    h("ul", { id: "outbox-list" }, items.map(row)),
  );
}

function row(item) {
  let thumbnail = null;
  if (item.photo) {
    const url = URL.createObjectURL(item.photo);
    thumbnails.push(url);
    thumbnail = h("img", { src: url, alt: item.photoName, class: "thumbnail" });
  }
  const discard = h("button", { type: "button", class: "discard" }, t("outbox.discard"));
  discard.addEventListener("click", async () => {
    await remove(item.id);
    showOutbox();
  });
  const refusal = item.refused ? new ApiError(item.refused.status, item.refused.problem) : null;
  return h("li", { "data-key": item.key, "data-state": refusal ? "refused" : "waiting" },
    thumbnail,
    h("span", {}, `${when(item.made)} · ${t("case.title", { number: item.caseNumber })} · ${t(`action.${item.action}`)}`,
      refusal ? h("span", { class: "error refusal", title: refusal.message },
        ` ${t("outbox.refused")}${explain(refusal)} (${refusal.problem.title || refusal.status})`) : null),
    discard);
}

window.addEventListener("online", flush);
setInterval(flush, BEAT_MS);
