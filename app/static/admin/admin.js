// The fastkg admin page: vanilla JS over the admin JSON API. Values are inserted as text, never HTML.
"use strict";
(() => {
  const base = JSON.parse(document.body.dataset.base || '""');
  const api = base + "/admin/api";
  const $ = (id) => document.getElementById(id);
  let csrf = "";
  let events = null;
  let servicesTimer = null;

  async function call(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(api + path, init);
    if (response.status === 401) showLogin();
    return response;
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    const h = Math.floor(s / 3600);
    return h < 48 ? h + " h " + Math.floor((s % 3600) / 60) + " min" : Math.floor(h / 24) + " d";
  }

  function bytes(n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }

  function time(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "–" : d.toLocaleTimeString();
  }

  function say(text, bad) {
    const node = $("message");
    node.textContent = text;
    node.className = "message" + (bad ? " error" : "");
  }

  function renderOverview(o) {
    $("version").textContent = o.version;
    $("uptime").textContent = duration(o.uptime_seconds);
    $("kernel-count").textContent = o.kernels + " / " + (o.max_kernels === null ? "∞" : o.max_kernels) +
      (o.warm ? " (+" + o.warm + " warm)" : "") + (o.pool_kernels ? " (+" + o.pool_kernels + " pool)" : "");
    const ready = $("readiness");
    ready.textContent = o.ready ? "ready" : o.readiness;
    ready.className = o.ready ? "ready" : "not-ready";
    $("culling").textContent = o.cull_idle_timeout > 0
      ? "after " + duration(o.cull_idle_timeout) + " idle" : "off";
  }

  async function act(kernelId, action, button) {
    button.disabled = true;
    const path = "/kernels/" + encodeURIComponent(kernelId) + (action === "shutdown" ? "" : "/" + action);
    const response = await call(action === "shutdown" ? "DELETE" : "POST", path);
    say(response.ok ? action + " " + kernelId.slice(0, 8) + ": done"
      : action + " failed: " + (await response.text()), !response.ok);
    button.disabled = false;
  }

  function kernelRow(k) {
    const row = el("tr");
    row.dataset.kernelId = k.id;
    row.dataset.state = k.state;
    const id = el("td", k.id.slice(0, 8), "id");
    id.title = k.id;
    const state = el("td");
    state.appendChild(el("span", k.state, "state state-" + k.state));
    const cells = [
      id, el("td", k.name), state, el("td", k.connections), el("td", time(k.started)),
      el("td", time(k.last_activity)), el("td", duration(k.idle_seconds)), el("td", duration(k.cull_in_seconds)),
      el("td", k.restarts), el("td", k.owner || "–"), el("td", k.holder || "–"),
      el("td", k.cpu_percent === null ? "–" : k.cpu_percent.toFixed(1) + " %"), el("td", bytes(k.memory_bytes)),
    ];
    cells[11].title = k.usage_source ? "from the " + k.usage_source : "";
    cells.forEach((cell) => row.appendChild(cell));
    const actions = el("td", null, "actions");
    if (k.actions) {
      for (const [action, label] of [["interrupt", "Interrupt"], ["restart", "Restart"], ["shutdown", "Shut down"]]) {
        const button = el("button", label, action === "shutdown" ? "danger" : "");
        button.type = "button";
        button.dataset.action = action;
        button.addEventListener("click", () => act(k.id, action, button));
        actions.appendChild(button);
      }
    }
    row.appendChild(actions);
    return row;
  }

  function renderKernels(kernels) {
    const body = $("kernel-rows");
    const rows = kernels.map(kernelRow);
    if (!rows.length) {
      const empty = el("tr", null, "empty");
      const cell = el("td", "No kernels running");
      cell.colSpan = 14;
      empty.appendChild(cell);
      rows.push(empty);
    }
    body.replaceChildren(...rows);
  }

  async function serviceAction(name, method, suffix) {
    const response = await call(method, "/services/" + encodeURIComponent(name) + suffix);
    say(name + ": " + (response.ok ? "done" : "failed (" + response.status + ")"), !response.ok);
    loadServices();
  }

  function serviceRow(s) {
    const row = el("tr");
    row.dataset.service = s.name;
    const version = s.version ? (s.version.id || "") + (s.version.hash ? " " + s.version.hash.slice(0, 8) : "") : "–";
    const endpoints = (s.endpoints || []).map((e) => e.method + " " + e.path).join(", ");
    const pool = s.pool ? s.pool.busy + "/" + s.pool.size + ", " + s.pool.min + "–" + s.pool.max : "–";
    for (const text of [s.name, s.prefix, s.state, version, s.kernel_name, endpoints, pool, s.error || "–"]) {
      row.appendChild(el("td", text));
    }
    const actions = el("td", null, "actions");
    for (const [label, method, suffix] of [["Reload", "POST", "/reload"], ["Roll back", "POST", "/rollback"],
      ["Undeploy", "DELETE", ""]]) {
      const button = el("button", label, method === "DELETE" ? "danger" : "");
      button.type = "button";
      button.addEventListener("click", () => serviceAction(s.name, method, suffix));
      actions.appendChild(button);
    }
    const docs = el("a", "Swagger");
    docs.href = base + (s.prefix || "") + "/docs";
    actions.appendChild(docs);
    row.appendChild(actions);
    return row;
  }

  async function loadServices() {
    const response = await call("GET", "/services");
    const status = $("services-status");
    const table = $("services-table");
    if (response.status === 404) {
      status.textContent = "Notebook services are off on this gateway.";
      table.hidden = true;
      return;
    }
    if (!response.ok) {
      status.textContent = "Could not read services (" + response.status + ").";
      return;
    }
    const data = await response.json();
    const list = Array.isArray(data) ? data : data.services || [];
    status.textContent = list.length ? "" : "No services deployed.";
    table.hidden = !list.length;
    $("service-rows").replaceChildren(...list.map(serviceRow));
  }

  function connect() {
    if (events) events.close();
    events = new EventSource(api + "/events");
    events.addEventListener("snapshot", (event) => {
      const snapshot = JSON.parse(event.data);
      renderOverview(snapshot.overview);
      renderKernels(snapshot.kernels);
      document.body.dataset.live = "yes";
    });
    events.onerror = () => {
      if (events.readyState === EventSource.CLOSED) setTimeout(start, 2000); // refused: check the session
    };
  }

  function showLogin() {
    if (events) { events.close(); events = null; }
    clearInterval(servicesTimer);
    $("login").hidden = false;
    $("kernels").hidden = true;
    $("services").hidden = true;
    $("logout").hidden = true;
    $("token").focus();
  }

  async function start() {
    const response = await fetch(api + "/session", { credentials: "same-origin" });
    const session = await response.json();
    csrf = session.csrf_token;
    if (!session.authenticated) { showLogin(); return; }
    $("login").hidden = true;
    $("kernels").hidden = false;
    $("services").hidden = false;
    $("logout").hidden = !session.token_required;
    connect();
    loadServices();
    clearInterval(servicesTimer);
    servicesTimer = setInterval(loadServices, 5000);
  }

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("token");
    const response = await call("POST", "/login", { token: input.value });
    input.value = "";
    if (response.ok) { $("login-error").textContent = ""; start(); }
    else $("login-error").textContent = "Wrong token.";
  });

  $("logout").addEventListener("click", async () => {
    await call("POST", "/logout");
    showLogin();
  });

  $("idle-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const seconds = Number($("idle-seconds").value);
    const response = await call("POST", "/kernels/shutdown-idle", { idle_seconds: seconds });
    if (response.ok) {
      const result = await response.json();
      say("Shut down " + result.shut_down.length + " idle kernel(s)", false);
    } else say("Shutting down idle kernels failed (" + response.status + ")", true);
  });

  start();
})();
