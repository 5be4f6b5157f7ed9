// The Task API demo page: plain DOM and fetch, no build step. The page's Content-Security-Policy
// forbids inline scripts, styles and handlers, so every behaviour is attached from here.
"use strict";

const PAGE_SIZE = 20;
const FALLBACK_API_BASE = "http://127.0.0.1:8000"; // `make run`'s default address
const STORAGE = { base: "taskapi-demo.api-base", user: "taskapi-demo.user-id" };

const $ = (selector, root = document) => root.querySelector(selector);
const ui = {
  base: $("#api-base"),
  user: $("#user-id"),
  token: $("#token"),
  secret: $("#dev-secret"),
  status: $("#status"),
  error: $("#error"),
  addForm: $("#add-form"),
  filterForm: $("#filter-form"),
  list: $("#task-list"),
  count: $("#task-count"),
  loadMore: $("#load-more"),
  template: $("#task-template"),
};

// Bumped by every fresh load, so a slow answer to an older filter cannot overwrite a newer one.
let generation = 0;
let nextPage = null;
// The add form's Idempotency-Key lives as long as the draft it was made for: clicking "Add" again
// after a lost answer replays the same request instead of creating a second task.
let pendingAdd = null;

class ApiError extends Error {
  constructor(status, message, problem = null) {
    super(message);
    this.status = status;
    this.problem = problem;
  }
}

// ---- messages -------------------------------------------------------------------------------

function say(message) {
  ui.status.textContent = message;
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.textContent = "";
  ui.error.hidden = true;
}

// Wraps every user action: one place that turns failures into a visible, token-free message.
function action(handler) {
  return async (event) => {
    if (event && event.type === "submit") event.preventDefault();
    clearError();
    try {
      await handler(event);
    } catch (error) {
      showError(error instanceof ApiError ? error.message : `Unexpected error: ${error.message}`);
    }
  };
}

// ---- settings -------------------------------------------------------------------------------

function defaultBase() {
  const saved = localStorage.getItem(STORAGE.base);
  if (saved) return saved;
  const servedByApi = location.protocol.startsWith("http") && location.pathname.startsWith("/demo");
  return servedByApi ? location.origin : FALLBACK_API_BASE;
}

function apiBase() {
  let url;
  try {
    url = new URL(ui.base.value.trim());
  } catch {
    throw new ApiError(0, "Enter the API base URL, e.g. http://127.0.0.1:8000");
  }
  if (!["http:", "https:"].includes(url.protocol)) throw new ApiError(0, "The API base URL must be http(s)");
  return url.href.replace(/\/+$/, "");
}

function userId() {
  const value = ui.user.value.trim();
  if (!value) throw new ApiError(0, "Enter a user id first");
  return value;
}

function tasksUrl(suffix = "") {
  return `${apiBase()}/api/${encodeURIComponent(userId())}/tasks${suffix}`;
}

// ---- tokens ---------------------------------------------------------------------------------

const utf8 = new TextEncoder();

function base64url(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// The same claims as the server's `taskapi token` (api/auth.py mint_token): sub, iat, exp.
async function mintToken(secret, subject, ttlSeconds = 3600) {
  if (!crypto.subtle) {
    throw new ApiError(0, "Minting needs a secure context (https:// or http://localhost); paste a token instead");
  }
  const now = Math.floor(Date.now() / 1000);
  const encode = (object) => base64url(utf8.encode(JSON.stringify(object)));
  const signingInput = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({ sub: subject, iat: now, exp: now + ttlSeconds })}`;
  const key = await crypto.subtle.importKey("raw", utf8.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const signature = await crypto.subtle.sign("HMAC", key, utf8.encode(signingInput));
  return `${signingInput}.${base64url(new Uint8Array(signature))}`;
}

function token() {
  const value = ui.token.value.trim().replace(/^Bearer\s+/i, "");
  if (!value) throw new ApiError(0, "Paste or mint a token first");
  return value;
}

// crypto.randomUUID only exists in secure contexts; the page may be served from a LAN address.
function newIdempotencyKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ---- HTTP -----------------------------------------------------------------------------------

function problemMessage(status, problem) {
  if (!problem || typeof problem !== "object") return `${status}: the API answered without details`;
  let message = `${problem.status || status} ${problem.title || "Error"}: ${problem.detail || "no details"}`;
  if (Array.isArray(problem.errors) && problem.errors.length) {
    const fields = problem.errors.map((error) => `${(error.loc || []).slice(-1)[0] ?? "request"}: ${error.msg}`);
    message += ` (${fields.join("; ")})`;
  }
  return message;
}

async function api(method, url, { body, headers = {} } = {}) {
  // Bearer tokens only: no cookies, so the API never needs credentialed CORS.
  const init = { method, credentials: "omit", headers: { Authorization: `Bearer ${token()}`, ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    // The browser hides why (refused, DNS, CORS) from scripts; name the usual suspects.
    throw new ApiError(
      0,
      `Could not reach the API at ${new URL(url).origin}: it is down, or this page's origin ` +
        `(${location.origin}) is not in its CORS_ORIGINS.`,
    );
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, problemMessage(response.status, data), data);
  return { response, data };
}

function nextLink(response) {
  const header = response.headers.get("Link") || "";
  const match = header.match(/<([^>]+)>\s*;\s*rel="?next"?/);
  if (!match) return null;
  // The API sends a path; whatever it sends, the token only ever goes to the API's own origin.
  const base = apiBase();
  const next = new URL(match[1], base);
  return next.origin === new URL(base).origin ? next.href : null;
}

// Sent only when the task carries a version, so the page also works with servers without one.
function ifMatch(task) {
  return task.version == null ? {} : { "If-Match": `"${task.version}"` };
}

// ---- the list -------------------------------------------------------------------------------

function listQuery() {
  const form = new FormData(ui.filterForm);
  const params = new URLSearchParams({ status: form.get("status"), sort: form.get("sort"), limit: PAGE_SIZE });
  const q = form.get("q").trim();
  if (q) params.set("q", q);
  return `?${params}`;
}

async function loadTasks({ more = false } = {}) {
  const url = more ? nextPage : tasksUrl(listQuery());
  if (!url) return;
  const mine = more ? generation : ++generation;
  const { response, data } = await api("GET", url);
  if (mine !== generation) return;
  if (!more) ui.list.replaceChildren();
  for (const task of data) ui.list.append(renderTask(task));
  nextPage = nextLink(response);
  updateCount();
}

function updateCount() {
  const shown = ui.list.children.length;
  ui.loadMore.hidden = !nextPage;
  ui.count.textContent =
    shown === 0 ? "No tasks match." : `${shown} task${shown === 1 ? "" : "s"} shown${nextPage ? ", more available" : ""}`;
}

function matchesStatusFilter(task) {
  const status = ui.filterForm.elements.status.value;
  return status === "all" || (status === "completed") === task.completed;
}

// A task changed or vanished since the page loaded it: say so and show the current state.
async function handleConflict(error, task) {
  if (error instanceof ApiError && (error.status === 412 || error.status === 404)) {
    const what = error.status === 412 ? "was changed elsewhere" : "no longer exists";
    await loadTasks().catch(() => {});
    showError(`"${task.title}" ${what}; the list was reloaded. ${error.message}`);
    return;
  }
  throw error;
}

function renderTask(task) {
  const item = ui.template.content.firstElementChild.cloneNode(true);
  item.dataset.taskId = task.id;
  item.classList.toggle("completed", task.completed);

  const done = $(".task-done", item);
  done.checked = task.completed;
  done.setAttribute("aria-label", `Completed: ${task.title}`);
  $(".task-title", item).textContent = task.title;
  const description = $(".task-description", item);
  description.textContent = task.description ?? "";
  description.hidden = !task.description;
  $(".task-edit", item).setAttribute("aria-label", `Edit ${task.title}`);
  $(".task-delete", item).setAttribute("aria-label", `Delete ${task.title}`);

  const editor = $(".task-editor", item);
  const [titleLabel, descriptionLabel] = editor.querySelectorAll("label");
  titleLabel.htmlFor = editor.elements.title.id = `edit-title-${task.id}`;
  descriptionLabel.htmlFor = editor.elements.description.id = `edit-description-${task.id}`;

  // Replaces the item in place, so "Load more" pages already shown stay where they are.
  const show = (updated) => {
    if (matchesStatusFilter(updated)) item.replaceWith(renderTask(updated));
    else item.remove();
    updateCount();
  };

  done.addEventListener(
    "change",
    action(async () => {
      done.disabled = true;
      try {
        const { data } = await api("PATCH", tasksUrl(`/${task.id}/complete`), {
          body: { completed: done.checked },
          headers: ifMatch(task),
        });
        show(data);
        say(`Marked "${data.title}" ${data.completed ? "completed" : "pending"}`);
      } catch (error) {
        done.checked = task.completed;
        done.disabled = false;
        await handleConflict(error, task);
      }
    }),
  );

  $(".task-edit", item).addEventListener("click", () => {
    editor.elements.title.value = task.title;
    editor.elements.description.value = task.description ?? "";
    editor.hidden = false;
    editor.elements.title.focus();
  });
  $(".task-cancel", item).addEventListener("click", () => {
    editor.hidden = true;
  });
  editor.addEventListener(
    "submit",
    action(async () => {
      const description = editor.elements.description.value;
      try {
        const { data } = await api("PUT", tasksUrl(`/${task.id}`), {
          body: { title: editor.elements.title.value, description: description.trim() ? description : null },
          headers: ifMatch(task),
        });
        show(data);
        say(`Saved "${data.title}"`);
      } catch (error) {
        await handleConflict(error, task);
      }
    }),
  );

  $(".task-delete", item).addEventListener(
    "click",
    action(async () => {
      try {
        await api("DELETE", tasksUrl(`/${task.id}`), { headers: ifMatch(task) });
        item.remove();
        updateCount();
        say(`Deleted "${task.title}"`);
      } catch (error) {
        await handleConflict(error, task);
      }
    }),
  );
  return item;
}

// ---- wiring ---------------------------------------------------------------------------------

function remember() {
  localStorage.setItem(STORAGE.base, ui.base.value.trim());
  localStorage.setItem(STORAGE.user, ui.user.value.trim());
}

ui.base.value = defaultBase();
ui.user.value = localStorage.getItem(STORAGE.user) || "";
ui.base.addEventListener("change", remember);
ui.user.addEventListener("change", remember);
$("#connection-form").addEventListener("submit", (event) => event.preventDefault());

$("#mint-form").addEventListener(
  "submit",
  action(async () => {
    const subject = userId();
    if (!ui.secret.value) throw new ApiError(0, "Enter the dev secret (the server's JWT_SECRET)");
    ui.token.value = await mintToken(ui.secret.value, subject);
    say(`Minted a token for "${subject}", valid for 1 hour`);
    await loadTasks();
  }),
);

ui.addForm.addEventListener(
  "submit",
  action(async () => {
    const body = { title: ui.addForm.elements.title.value, description: ui.addForm.elements.description.value || null };
    const draft = JSON.stringify([tasksUrl(), body]);
    if (!pendingAdd || pendingAdd.draft !== draft) pendingAdd = { draft, key: newIdempotencyKey() };
    const button = $("button", ui.addForm);
    button.disabled = true; // a double click sends one request; a later retry reuses the key
    try {
      const { response, data } = await api("POST", tasksUrl(), {
        body,
        headers: { "Idempotency-Key": pendingAdd.key },
      });
      pendingAdd = null;
      ui.addForm.reset();
      const replayed = response.headers.get("Idempotent-Replayed") === "true";
      say(replayed ? `"${data.title}" was already added (replayed)` : `Added "${data.title}"`);
      await loadTasks();
    } finally {
      button.disabled = false;
    }
  }),
);

ui.filterForm.addEventListener(
  "submit",
  action(async () => {
    await loadTasks();
    say("Tasks loaded");
  }),
);
for (const select of ui.filterForm.querySelectorAll("select")) {
  select.addEventListener("change", () => ui.filterForm.requestSubmit());
}
ui.loadMore.addEventListener(
  "click",
  action(async () => {
    ui.loadMore.disabled = true; // a second click before the answer would load the same page twice
    try {
      await loadTasks({ more: true });
    } finally {
      ui.loadMore.disabled = false;
    }
  }),
);
