// The taskflow board: tasks in a column per status, live from /api/events.
//
// A client of the public API like any other: every call carries the pasted bearer token, and
// the server decides every rule. Which buttons a card shows follows the default policy only so
// as not to offer what would surely be refused; whatever the server answers is shown as is.
"use strict";

(() => {
  const TOKEN_KEY = "taskflow.token";
  const STATUSES = ["pending", "in_progress", "review", "blocked", "completed"];
  const PAGE = 100;

  const state = {
    token: null,
    me: null,
    tasks: new Map(), // id -> task, as the API shows it
    waiting: new Map(), // id -> ids it waits on (its unfinished dependencies)
    reasons: new Map(), // id -> why it is blocked (from its latest `blocked` audit row)
    workers: new Map(), // actor id -> "agent" | "human" | null (being looked up)
    open: null, // {id, kind, value}: a card's inline form (block reason, progress)
    lastEventId: 0,
    stream: null, // the AbortController of the event stream
  };

  const $ = (id) => document.getElementById(id);

  // ---- Calling the API ---------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path, { body, headers = {}, signal } = {}) {
    const init = {
      method,
      headers: { Authorization: `Bearer ${state.token}`, ...headers },
      signal,
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    if (!resp.ok) {
      throw new ApiError(resp.status, await messageOf(resp));
    }
    return resp;
  }

  // The API's own words: every error body is {"error": "...", "status_code": n}.
  async function messageOf(resp) {
    try {
      const body = await resp.json();
      return body.error || body.detail || `HTTP ${resp.status}`;
    } catch {
      return `HTTP ${resp.status} ${resp.statusText}`;
    }
  }

  async function json(method, path, options) {
    const resp = await api(method, path, options);
    return resp.status === 204 ? null : resp.json();
  }

  async function allPages(path) {
    const rows = [];
    for (;;) {
      const sep = path.includes("?") ? "&" : "?";
      const page = await json("GET", `${path}${sep}limit=${PAGE}&offset=${rows.length}`);
      rows.push(...page);
      if (page.length < PAGE) return rows;
    }
  }

  // The id of the newest audit row: the live feed resumes after it, so the board neither
  // misses a change made while it loads nor replays the whole trail.
  async function auditPosition() {
    const head = await api("GET", "/api/audit?limit=1");
    const total = Number(head.headers.get("X-Total-Count") || 0);
    if (total === 0) return 0;
    const last = await json("GET", `/api/audit?limit=1&offset=${total - 1}`);
    return last.length ? last[0].id : 0;
  }

  // ---- Messages ----------------------------------------------------------------------------

  // The alert region stays in the page (screen readers announce changes to a live region
  // that exists, not one that appears); only its text and the Dismiss button come and go.
  function showError(text) {
    $("error-text").textContent = text;
    $("error").classList.add("shown");
    $("error-close").hidden = false;
  }

  function clearError() {
    $("error").classList.remove("shown");
    $("error-close").hidden = true;
    $("error-text").textContent = "";
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  function connectionText(live) {
    const who = state.me ? `${state.me.id} (${state.me.role}, ${state.me.actor_type})` : "";
    return `Signed in as ${who} · ${live}`;
  }

  // ---- Signing in --------------------------------------------------------------------------

  async function signIn(token) {
    state.token = token;
    try {
      state.me = await json("GET", "/api/me");
    } catch (err) {
      state.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      showError(`Sign-in failed: ${err.message}`);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    clearError();
    $("sign-in").hidden = true;
    $("board").hidden = false;
    $("sign-out").hidden = false;
    setStatus(connectionText("loading…"));
    try {
      await load();
    } catch (err) {
      showError(`Loading the board failed: ${err.message}`);
    }
  }

  function signOut(message) {
    if (state.stream) state.stream.abort();
    state.stream = null;
    state.token = null;
    state.me = null;
    state.tasks.clear();
    state.waiting.clear();
    state.reasons.clear();
    state.workers.clear();
    state.open = null;
    sessionStorage.removeItem(TOKEN_KEY);
    for (const list of document.querySelectorAll(".cards")) list.replaceChildren();
    updateCounts();
    $("board").hidden = true;
    $("sign-out").hidden = true;
    $("sign-in").hidden = false;
    $("token").value = "";
    setStatus("Not signed in");
    if (message) showError(message);
    $("token").focus();
  }

  async function load() {
    const after = await auditPosition();
    const tasks = await allPages("/api/tasks");
    for (const task of tasks) state.tasks.set(task.id, task);
    for (const task of tasks) renderCard(task.id);
    updateCounts();
    connect(after);
    const open = tasks.filter((t) => t.status !== "completed");
    await inParallel([
      ...open.map((t) => () => refreshDependencies(t.id)),
      ...open.filter((t) => t.status === "blocked").map((t) => () => refreshReason(t.id)),
    ]);
  }

  // A few calls at a time, so that a big board does not flood the server.
  async function inParallel(calls) {
    const queue = [...calls];
    const worker = async () => {
      while (queue.length) await queue.shift()();
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  // The reason given when the task was last blocked: the newest `blocked` row of its trail.
  async function refreshReason(id) {
    try {
      const path = `/api/audit?task_id=${id}&action=blocked&limit=1`;
      const first = await api("GET", path);
      const total = Number(first.headers.get("X-Total-Count") || 0);
      const rows = total > 1 ? await json("GET", `${path}&offset=${total - 1}`) : await first.json();
      const reason = rows.length && rows[0].context ? rows[0].context.reason : null;
      if (reason) state.reasons.set(id, reason);
      renderCard(id);
    } catch (err) {
      console.warn(`block reason of #${id}:`, err.message);
    }
  }

  async function refreshDependencies(id) {
    try {
      const view = await json("GET", `/api/tasks/${id}/dependencies`);
      setWaiting(id, view.waiting_on);
    } catch (err) {
      if (err.status !== 404) console.warn(`dependencies of #${id}:`, err.message);
    }
  }

  function setWaiting(id, ids) {
    if (ids.length) state.waiting.set(id, ids);
    else state.waiting.delete(id);
    renderCard(id);
  }

  // ---- The live feed -----------------------------------------------------------------------

  // EventSource cannot send an Authorization header, so the stream is read with fetch and
  // parsed here. A dropped stream is reopened with Last-Event-ID: nothing lost, nothing twice.
  function connect(after) {
    state.lastEventId = after;
    const controller = new AbortController();
    state.stream = controller;
    let delay = 1000;
    const run = async () => {
      while (state.stream === controller) {
        try {
          const resp = await api("GET", "/api/events", {
            headers: { "Last-Event-ID": String(state.lastEventId), Accept: "text/event-stream" },
            signal: controller.signal,
          });
          setStatus(connectionText("live"));
          delay = 1000;
          await readEvents(resp.body, controller.signal);
        } catch (err) {
          if (controller.signal.aborted) return;
          if (err instanceof ApiError && err.status === 401) {
            signOut(`Signed out: ${err.message}`);
            return;
          }
        }
        if (state.stream !== controller) return;
        setStatus(connectionText("reconnecting…"));
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 15000);
      }
    };
    run();
  }

  async function readEvents(body, signal) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        dispatchFrame(frame);
      }
    }
  }

  function dispatchFrame(frame) {
    let id = null;
    const data = [];
    for (const line of frame.split("\n")) {
      if (line === "" || line.startsWith(":")) continue; // a keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") id = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    try {
      applyEvent(JSON.parse(data.join("\n")));
    } catch (err) {
      console.warn("an event the board could not read:", err);
    }
    if (id !== null && /^\d+$/.test(id)) state.lastEventId = Number(id);
  }

  function applyEvent({ audit, task }) {
    const id = audit.task_id;
    if (audit.action === "blocked" && audit.context && audit.context.reason) {
      state.reasons.set(id, audit.context.reason);
    } else if (!task || task.status !== "blocked") {
      state.reasons.delete(id);
    }
    if (task) {
      upsert(task);
    } else if (state.tasks.delete(id)) {
      state.waiting.delete(id);
      renderCard(id);
    }
    switch (audit.action) {
      case "dependency_added":
      case "dependency_removed":
        refreshDependencies(id);
        break;
      case "completed":
        // Whoever waited on this task waits on one task fewer.
        for (const [other, ids] of state.waiting) {
          if (ids.includes(id)) setWaiting(other, ids.filter((x) => x !== id));
        }
        break;
    }
    updateCounts();
  }

  // The newest version wins: the feed and the answers to this tab's own calls can arrive in
  // either order.
  function upsert(task) {
    const known = state.tasks.get(task.id);
    if (known && known.version > task.version) return;
    state.tasks.set(task.id, task);
    renderCard(task.id);
  }

  // ---- Rendering ---------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  function updateCounts() {
    for (const status of STATUSES) {
      const list = document.querySelector(`[data-column="${status}"] .cards`);
      document.querySelector(`[data-count="${status}"]`).textContent = list.children.length;
    }
  }

  // Replaces (or removes) task `id`'s card, keeping it in id order in its column, and puts the
  // keyboard focus back where it was if it was on the card.
  function renderCard(id) {
    const old = document.getElementById(`task-${id}`);
    const focused = old && old.contains(document.activeElement) ? document.activeElement : null;
    const focusKey = focused && (focused.dataset.action || focused.dataset.field || "card");
    if (old && state.open && state.open.id === id) {
      const input = old.querySelector("[data-field]");
      if (input) state.open.value = input.value;
    }
    const task = state.tasks.get(id);
    if (old) old.closest("li").remove();
    if (!task) return;
    const item = el("li", {}, card(task));
    const list = document.querySelector(`[data-column="${task.status}"] .cards`);
    const next = [...list.children].find((li) => Number(li.dataset.id) > id);
    item.dataset.id = id;
    list.insertBefore(item, next || null);
    if (focusKey) {
      const again =
        item.querySelector(`[data-action="${focusKey}"], [data-field="${focusKey}"]`) ||
        item.querySelector("article");
      again.focus();
    }
  }

  function card(task) {
    const titleId = `task-${task.id}-title`;
    const article = el("article", {
      class: `card priority-${task.priority}`,
      id: `task-${task.id}`,
      "data-task-id": task.id,
      "data-status": task.status,
      "aria-labelledby": titleId,
      tabindex: "-1",
    });
    article.append(
      el("h3", { id: titleId, class: "title" }, el("span", { class: "task-id", text: `#${task.id} ` }), task.title),
      el(
        "p",
        { class: "meta" },
        el("span", { class: `badge priority`, "data-priority": task.priority, text: task.priority }),
        task.project_slug ? el("span", { class: "badge project", text: task.project_slug }) : null,
      ),
    );
    if (task.description) article.append(el("p", { class: "description", text: task.description }));
    const reason = task.status === "blocked" && state.reasons.get(task.id);
    if (reason) article.append(el("p", { class: "reason", text: `Blocked: ${reason}` }));
    if (task.assigned_to) {
      const kind = workerType(task.assigned_to);
      article.append(
        el(
          "p",
          { class: "assignee" },
          el("span", { class: "label", text: "Assignee " }),
          el("span", { class: "who", text: task.assigned_to }),
          kind ? el("span", { class: `badge actor actor-${kind}`, text: kind }) : null,
        ),
      );
    }
    if (task.status === "in_progress" || task.progress_percent > 0) {
      const labelId = `task-${task.id}-progress`;
      article.append(
        el(
          "p",
          { class: "progress" },
          el("span", { id: labelId, class: "label", text: "Progress " }),
          el("progress", { max: "100", value: String(task.progress_percent), "aria-labelledby": labelId }),
          el("span", { class: "percent", text: ` ${task.progress_percent}%` }),
        ),
      );
    }
    if (task.lease_expires_at) {
      article.append(el("p", { class: "lease", "data-expires": task.lease_expires_at, text: leaseText(task.lease_expires_at) }));
    }
    const waiting = state.waiting.get(task.id);
    if (waiting && waiting.length) {
      article.append(el("p", { class: "waiting", text: `Waiting on ${waiting.map((x) => `#${x}`).join(", ")}` }));
    }
    article.append(actions(task));
    return article;
  }

  function leaseText(expiresAt) {
    const left = Math.round((Date.parse(expiresAt) - Date.now()) / 1000);
    if (left <= 0) return "Lease expired";
    const h = Math.floor(left / 3600);
    const m = Math.floor((left % 3600) / 60);
    const s = left % 60;
    const mmss = `${String(m).padStart(h ? 2 : 1, "0")}:${String(s).padStart(2, "0")}`;
    return `Lease ${h ? `${h}:` : ""}${mmss} left`;
  }

  // An agent or a human: the worker registry says; an actor it does not know is a human.
  function workerType(id) {
    if (state.workers.has(id)) return state.workers.get(id);
    state.workers.set(id, null);
    json("GET", `/api/workers/${encodeURIComponent(id)}`)
      .then((w) => w.type)
      .catch(() => "human")
      .then((kind) => {
        state.workers.set(id, kind);
        for (const task of state.tasks.values()) {
          if (task.assigned_to === id) renderCard(task.id);
        }
      });
    return null;
  }

  // The lifecycle actions the default policy lets this user take on `task`.
  function allowed(task) {
    const admin = state.me.role === "admin";
    const mine = task.assigned_to === state.me.id;
    const owner = admin || mine || !task.assigned_to;
    const list = [];
    switch (task.status) {
      case "pending":
        list.push("start");
        if (owner) list.push("block");
        break;
      case "in_progress":
        if (owner) list.push("progress", "review");
        if (admin || mine) list.push("complete");
        if (mine && task.lease_expires_at) list.push("heartbeat");
        if (admin || mine) list.push("release");
        if (owner) list.push("block");
        break;
      case "review":
        list.push("complete", "request-changes");
        if (owner) list.push("block");
        break;
      case "blocked":
        if (owner) list.push("unblock");
        break;
    }
    if (admin) list.push("delete");
    return list;
  }

  const LABELS = {
    start: "Start",
    progress: "Progress…",
    review: "Submit for review",
    complete: "Complete",
    "request-changes": "Request changes",
    block: "Block…",
    unblock: "Unblock",
    heartbeat: "Extend lease",
    release: "Release",
    delete: "Delete",
  };

  function actions(task) {
    const box = el("div", { class: "actions" });
    if (state.open && state.open.id === task.id) {
      box.append(inlineForm(task, state.open));
      return box;
    }
    for (const action of allowed(task)) {
      box.append(
        el("button", {
          type: "button",
          class: action === "delete" ? "danger" : action === "start" || action === "complete" ? "primary" : null,
          "data-action": action,
          "aria-label": `${LABELS[action].replace("…", "")} task #${task.id}: ${task.title}`,
          text: LABELS[action],
          onclick: () => onAction(task.id, action),
        }),
      );
    }
    return box;
  }

  // Block asks for a reason and progress for a percentage, in the card itself.
  function inlineForm(task, open) {
    const inputId = `task-${task.id}-${open.kind}`;
    const input =
      open.kind === "block"
        ? el("input", { id: inputId, "data-field": "reason", maxlength: "500", placeholder: "optional" })
        : el("input", { id: inputId, "data-field": "percent", type: "number", min: "0", max: "100", step: "5", required: true });
    input.value = open.value !== undefined ? open.value : open.kind === "progress" ? String(task.progress_percent) : "";
    const form = el(
      "form",
      {
        class: "inline",
        onsubmit: (e) => {
          e.preventDefault();
          const value = input.value;
          state.open = null;
          run(task.id, open.kind, value);
        },
        onkeydown: (e) => {
          if (e.key === "Escape") closeForm(task.id, open.kind);
        },
      },
      el("label", { for: inputId, text: open.kind === "block" ? "Reason" : "Percent" }),
      input,
      el("button", { type: "submit", class: "primary", "data-action": `${open.kind}-submit`, text: open.kind === "block" ? "Block" : "Save" }),
      el("button", { type: "button", "data-action": `${open.kind}-cancel`, text: "Cancel", onclick: () => closeForm(task.id, open.kind) }),
    );
    return form;
  }

  function closeForm(id, kind) {
    state.open = null;
    renderCard(id);
    const button = document.querySelector(`#task-${id} [data-action="${kind}"]`);
    if (button) button.focus();
  }

  function onAction(id, action) {
    if (action === "block" || action === "progress") {
      state.open = { id, kind: action };
      renderCard(id);
      const input = document.querySelector(`#task-${id} [data-field]`);
      if (input) input.focus();
      return;
    }
    if (action === "delete") {
      const task = state.tasks.get(id);
      if (!window.confirm(`Delete task #${id} "${task ? task.title : ""}"? Its audit trail stays.`)) return;
    }
    run(id, action);
  }

  // Sends the action with the version the card shows as If-Match: acting on a task that moved
  // on meanwhile is refused (412) rather than applied to something the user did not see.
  async function run(id, action, value) {
    const task = state.tasks.get(id);
    if (!task) return;
    const headers = { "If-Match": `"${task.version}"` };
    const base = `/api/tasks/${id}`;
    clearError();
    try {
      let result;
      switch (action) {
        case "block":
          result = await json("POST", `${base}/block`, { headers, body: { reason: value || null } });
          if (value) state.reasons.set(id, value);
          break;
        case "progress":
          result = await json("POST", `${base}/progress?percent=${encodeURIComponent(value)}`, { headers });
          break;
        case "heartbeat":
          result = await json("POST", `${base}/heartbeat?fence=${task.fence}`);
          break;
        case "delete":
          await json("DELETE", base, { headers });
          state.tasks.delete(id);
          state.waiting.delete(id);
          renderCard(id);
          updateCounts();
          return;
        default:
          result = await json("POST", `${base}/${action}`, { headers });
      }
      upsert(result);
      updateCounts();
    } catch (err) {
      showError(`${LABELS[action].replace("…", "")} #${id}: ${err.message}`);
      renderCard(id);
    }
  }

  async function onCreate(event) {
    event.preventDefault();
    const form = event.target;
    const body = { title: $("new-title").value, priority: $("new-priority").value };
    const project = $("new-project").value.trim();
    const description = $("new-description").value.trim();
    if (project) body.project_slug = project;
    if (description) body.description = description;
    clearError();
    $("create-button").disabled = true;
    try {
      const task = await json("POST", "/api/tasks", { body });
      upsert(task);
      updateCounts();
      $("new-title").value = "";
      $("new-description").value = "";
    } catch (err) {
      showError(`Create: ${err.message}`);
    } finally {
      $("create-button").disabled = false;
      form.querySelector("#new-title").focus();
    }
  }

  function tickLeases() {
    for (const node of document.querySelectorAll(".lease[data-expires]")) {
      node.textContent = leaseText(node.dataset.expires);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("sign-in-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const token = $("token").value.trim().replace(/^Bearer\s+/i, "");
      if (token) signIn(token);
    });
    $("sign-out").addEventListener("click", () => signOut());
    $("error-close").addEventListener("click", clearError);
    $("create-form").addEventListener("submit", onCreate);
    setInterval(tickLeases, 1000);
    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) signIn(saved);
  });
})();
