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
  tasksHeading: $("#tasks-heading"),
  listsPanel: $("#lists-panel"),
  lists: $("#named-lists"),
  listForm: $("#list-form"),
  listTemplate: $("#list-template"),
};

// Bumped by every fresh load, so a slow answer to an older filter cannot overwrite a newer one.
let generation = 0;
let listsGeneration = 0;
let nextPage = null;
// The caller's lists, as last loaded, and which one the tasks are filtered by: "" for all
// tasks, "none" for the tasks in no list, else a list's id.
let knownLists = [];
let selectedList = "";
// A form's Idempotency-Key lives as long as the draft it was made for: clicking "Add" again
// after a lost answer replays the same request instead of creating a second task or list.
const pendingKeys = new WeakMap();

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

function listsUrl(suffix = "") {
  return `${apiBase()}/api/${encodeURIComponent(userId())}/lists${suffix}`;
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

function idempotencyKey(form, draft) {
  const pending = pendingKeys.get(form);
  if (pending && pending.draft === draft) return pending.key;
  const key = newIdempotencyKey();
  pendingKeys.set(form, { draft, key });
  return key;
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

// Sent only when the task or list carries a version, so the page also works with servers without one.
function ifMatch(item) {
  return item.version == null ? {} : { "If-Match": `"${item.version}"` };
}

// ---- task fields ----------------------------------------------------------------------------

function parseTags(text) {
  return text
    .split(",")
    .map((tag) => tag.trim())
    .filter(Boolean);
}

const pad = (number) => String(number).padStart(2, "0");

// <input type="datetime-local"> holds local wall-clock time without an offset; the API wants
// RFC 3339 with one and answers in UTC, so the page converts both ways in the browser's zone.
function localDateTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  return `${day}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function dueFromInput(value) {
  return value ? new Date(value).toISOString() : null;
}

function isOverdue(task) {
  return task.due_at != null && !task.completed && Date.parse(task.due_at) < Date.now();
}

function listName(id) {
  return knownLists.find((list) => list.id === id)?.name ?? `list ${id}`;
}

// "No list" and the caller's lists; a list not loaded (yet) keeps its option, so saving never
// moves a task out of it by accident.
function fillListSelect(select, chosen) {
  const ids = knownLists.map((list) => list.id);
  if (chosen != null && !ids.includes(chosen)) ids.push(chosen);
  select.replaceChildren(new Option("No list", ""), ...ids.map((id) => new Option(listName(id), String(id))));
  select.value = chosen == null ? "" : String(chosen);
}

function chosenList(select) {
  return select.value ? Number(select.value) : null;
}

// ---- the tasks ------------------------------------------------------------------------------

function wantedPriorities() {
  return new FormData(ui.filterForm).getAll("priority");
}

function wantedTags() {
  return parseTags(ui.filterForm.elements.tag.value);
}

function listQuery() {
  const form = new FormData(ui.filterForm);
  const params = new URLSearchParams({ status: form.get("status"), sort: form.get("sort"), limit: PAGE_SIZE });
  const q = form.get("q").trim();
  if (q) params.set("q", q);
  if (selectedList) params.set("list_id", selectedList);
  // Repeatable: any of the priorities, all of the tags.
  for (const priority of wantedPriorities()) params.append("priority", priority);
  for (const tag of wantedTags()) params.append("tag", tag);
  if (form.get("overdue")) params.set("overdue", form.get("overdue"));
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

// Whether a task changed in the page still belongs under the filters (the search aside).
function matchesFilters(task) {
  const { status, overdue } = ui.filterForm.elements;
  if (status.value !== "all" && (status.value === "completed") !== task.completed) return false;
  if (selectedList === "none" ? task.list_id !== null : selectedList && String(task.list_id) !== selectedList) {
    return false;
  }
  const priorities = wantedPriorities();
  if (priorities.length && !priorities.includes(task.priority)) return false;
  const tags = task.tags.map((tag) => tag.toLowerCase());
  if (!wantedTags().every((tag) => tags.includes(tag.toLowerCase()))) return false;
  return !overdue.value || (overdue.value === "true") === isOverdue(task);
}

// A task or list changed or vanished since the page loaded it: say so and show the current state.
async function handleConflict(error, name) {
  if (error instanceof ApiError && (error.status === 412 || error.status === 404)) {
    const what = error.status === 412 ? "was changed elsewhere" : "no longer exists";
    await refresh().catch(() => {});
    showError(`${name} ${what}; the list was reloaded. ${error.message}`);
    return;
  }
  throw error;
}

function taskFields(form, task = null) {
  const description = form.elements.description.value;
  const due = form.elements.due.value;
  return {
    title: form.elements.title.value,
    description: description.trim() ? description : null,
    list_id: chosenList(form.elements.list),
    // An untouched due date keeps its seconds, which the input cannot show.
    due_at: task && due === localDateTime(task.due_at) ? task.due_at : dueFromInput(due),
    priority: form.elements.priority.value,
    tags: parseTags(form.elements.tags.value),
  };
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
  renderMeta(item, task);
  $(".task-edit", item).setAttribute("aria-label", `Edit ${task.title}`);
  $(".task-delete", item).setAttribute("aria-label", `Delete ${task.title}`);

  const editor = $(".task-editor", item);
  labelFields(editor, `task-${task.id}`);

  // Replaces the item in place, so "Load more" pages already shown stay where they are.
  const show = async (updated) => {
    if (matchesFilters(updated)) item.replaceWith(renderTask(updated));
    else item.remove();
    updateCount();
    await loadLists(); // the counts changed
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
        say(`Marked "${data.title}" ${data.completed ? "completed" : "pending"}`);
        await show(data);
      } catch (error) {
        done.checked = task.completed;
        done.disabled = false;
        await handleConflict(error, `"${task.title}"`);
      }
    }),
  );

  $(".task-edit", item).addEventListener("click", () => {
    editor.elements.title.value = task.title;
    editor.elements.description.value = task.description ?? "";
    fillListSelect(editor.elements.list, task.list_id);
    editor.elements.due.value = localDateTime(task.due_at);
    editor.elements.priority.value = task.priority;
    editor.elements.tags.value = task.tags.join(", ");
    editor.hidden = false;
    editor.elements.title.focus();
  });
  $(".task-cancel", item).addEventListener("click", () => {
    editor.hidden = true;
  });
  editor.addEventListener(
    "submit",
    action(async () => {
      try {
        const { data } = await api("PUT", tasksUrl(`/${task.id}`), {
          body: taskFields(editor, task),
          headers: ifMatch(task),
        });
        say(`Saved "${data.title}"`);
        await show(data);
      } catch (error) {
        await handleConflict(error, `"${task.title}"`);
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
        await loadLists();
      } catch (error) {
        await handleConflict(error, `"${task.title}"`);
      }
    }),
  );
  return item;
}

function renderMeta(item, task) {
  $(".task-meta", item).hidden = task.list_id == null && !task.due_at && task.priority === "none" && !task.tags.length;
  const inList = $(".task-in-list", item);
  inList.textContent = task.list_id == null ? "" : listName(task.list_id);
  inList.hidden = task.list_id == null;

  const due = $(".task-due", item);
  due.hidden = !task.due_at;
  if (task.due_at) {
    due.dateTime = task.due_at;
    due.textContent = `due ${localDateTime(task.due_at).replace("T", " ")}${isOverdue(task) ? " (overdue)" : ""}`;
    due.classList.toggle("overdue", isOverdue(task));
  }

  const priority = $(".task-priority", item);
  priority.textContent = task.priority;
  priority.dataset.priority = task.priority;
  priority.hidden = task.priority === "none";

  const tags = $(".task-tags", item);
  for (const tag of task.tags) {
    const chip = document.createElement("span");
    chip.className = "tag";
    chip.dataset.testid = "task-tag";
    chip.textContent = tag;
    tags.append(chip);
  }
}

// Template forms repeat: each copy gets its own ids, so every label names its field.
function labelFields(form, prefix) {
  for (const label of form.querySelectorAll("label[data-field]")) {
    label.htmlFor = form.elements[label.dataset.field].id = `${prefix}-${label.dataset.field}`;
  }
}

// ---- the lists ------------------------------------------------------------------------------

async function loadLists() {
  const mine = ++listsGeneration;
  const lists = [];
  for (let url = listsUrl("?limit=100"); url; ) {
    const { response, data } = await api("GET", url);
    lists.push(...data);
    url = nextLink(response);
  }
  if (mine !== listsGeneration) return;
  knownLists = lists;
  if (selectedList && selectedList !== "none" && !lists.some((list) => String(list.id) === selectedList)) {
    selectedList = ""; // deleted elsewhere
  }
  ui.lists.replaceChildren(...lists.map(renderList));
  const addList = ui.addForm.elements.list;
  const kept = addList.value === "" || lists.some((list) => String(list.id) === addList.value);
  fillListSelect(addList, kept ? chosenList(addList) : defaultList());
  showSelection();
}

function defaultList() {
  return selectedList && selectedList !== "none" ? Number(selectedList) : null;
}

function showSelection() {
  for (const button of ui.listsPanel.querySelectorAll(".list-select")) {
    button.setAttribute("aria-pressed", String(button.dataset.list === selectedList));
  }
  ui.tasksHeading.textContent =
    selectedList === "" ? "Tasks" : selectedList === "none" ? "Tasks in no list" : `Tasks in ${listName(Number(selectedList))}`;
}

function renderList(list) {
  const item = ui.listTemplate.content.firstElementChild.cloneNode(true);
  item.dataset.listId = list.id;
  const select = $(".list-select", item);
  select.dataset.list = String(list.id);
  $(".list-name", item).textContent = list.name;
  $(".list-counts", item).textContent = `${list.open_count} of ${list.task_count} open`;
  $(".list-rename", item).setAttribute("aria-label", `Rename list ${list.name}`);
  $(".list-delete", item).setAttribute("aria-label", `Delete list ${list.name}`);

  const editor = $(".list-editor", item);
  labelFields(editor, `list-${list.id}`);
  $(".list-rename", item).addEventListener("click", () => {
    editor.elements.name.value = list.name;
    editor.hidden = false;
    editor.elements.name.focus();
  });
  $(".list-cancel", item).addEventListener("click", () => {
    editor.hidden = true;
  });
  editor.addEventListener(
    "submit",
    action(async () => {
      try {
        const { data } = await api("PUT", listsUrl(`/${list.id}`), {
          body: { name: editor.elements.name.value },
          headers: ifMatch(list),
        });
        say(`Renamed list "${list.name}" to "${data.name}"`);
        await refresh(); // its tasks show its name
      } catch (error) {
        await handleConflict(error, `List "${list.name}"`);
      }
    }),
  );

  $(".list-delete", item).addEventListener(
    "click",
    action(async () => {
      try {
        await api("DELETE", listsUrl(`/${list.id}`), { headers: ifMatch(list) });
        if (selectedList === String(list.id)) selectedList = "";
        say(`Deleted list "${list.name}"; its tasks are in no list now`);
        await refresh();
      } catch (error) {
        await handleConflict(error, `List "${list.name}"`);
      }
    }),
  );
  return item;
}

// Lists first: the tasks show their list's name.
async function refresh() {
  await loadLists();
  await loadTasks();
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
    await refresh();
  }),
);

ui.addForm.addEventListener(
  "submit",
  action(async () => {
    const body = taskFields(ui.addForm);
    const key = idempotencyKey(ui.addForm, JSON.stringify([tasksUrl(), body]));
    const button = $("button", ui.addForm);
    button.disabled = true; // a double click sends one request; a later retry reuses the key
    try {
      const { response, data } = await api("POST", tasksUrl(), { body, headers: { "Idempotency-Key": key } });
      pendingKeys.delete(ui.addForm);
      ui.addForm.reset();
      ui.addForm.elements.list.value = defaultList() ?? "";
      const replayed = response.headers.get("Idempotent-Replayed") === "true";
      say(replayed ? `"${data.title}" was already added (replayed)` : `Added "${data.title}"`);
      await refresh();
    } finally {
      button.disabled = false;
    }
  }),
);

ui.listForm.addEventListener(
  "submit",
  action(async () => {
    const body = { name: ui.listForm.elements.name.value };
    const key = idempotencyKey(ui.listForm, JSON.stringify([listsUrl(), body]));
    const button = $("button", ui.listForm);
    button.disabled = true;
    try {
      const { response, data } = await api("POST", listsUrl(), { body, headers: { "Idempotency-Key": key } });
      pendingKeys.delete(ui.listForm);
      ui.listForm.reset();
      const replayed = response.headers.get("Idempotent-Replayed") === "true";
      say(replayed ? `List "${data.name}" was already created (replayed)` : `Created list "${data.name}"`);
      await loadLists();
    } finally {
      button.disabled = false;
    }
  }),
);

const chooseList = action(async (list) => {
  selectedList = list;
  ui.addForm.elements.list.value = defaultList() ?? "";
  showSelection();
  await loadTasks();
});
// "All tasks", "No list" and every list: one listener for the whole sidebar.
ui.listsPanel.addEventListener("click", (event) => {
  const button = event.target.closest(".list-select");
  if (button) chooseList(button.dataset.list);
});

ui.filterForm.addEventListener(
  "submit",
  action(async () => {
    await refresh();
    say("Tasks loaded");
  }),
);
for (const field of ui.filterForm.querySelectorAll("select, input[type=checkbox]")) {
  field.addEventListener("change", () => ui.filterForm.requestSubmit());
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
