// The fastkg admin page: vanilla JS over the admin JSON API. Values are inserted as text, never HTML.
"use strict";
(() => {
  const base = JSON.parse(document.body.dataset.base || '""');
  const api = base + "/admin/api";
  const $ = (id) => document.getElementById(id);
  let csrf = "";
  let events = null;

  async function call(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
    if (body instanceof FormData) {
      init.body = body; // the browser writes the multipart content type and its boundary
    } else if (body !== undefined) {
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

  let knownServices = new Set();

  async function serviceAction(name, method, suffix, body) {
    const response = await call(method, "/services/" + encodeURIComponent(name) + suffix, body);
    say(name + ": " + (response.ok ? "done" : "failed: " + (await response.text())), !response.ok);
    loadServices();
    return response;
  }

  function ms(seconds) {
    return seconds === null || seconds === undefined ? "–" : (seconds * 1000).toFixed(seconds < 0.01 ? 1 : 0) + " ms";
  }

  function scaleForm(s) {
    const form = el("form", null, "inline scale");
    const inputs = [["pool_min", s.pool.min], ["pool_max", s.pool.max]].map(([field, value]) => {
      const input = el("input");
      input.type = "number";
      input.min = "1";
      input.step = "1";
      input.value = String(value);
      input.name = field;
      input.title = field;
      form.appendChild(input);
      return input;
    });
    const button = el("button", "Scale");
    button.type = "submit";
    button.dataset.action = "scale";
    form.appendChild(button);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      button.disabled = true;
      serviceAction(s.name, "PUT", "", { pool_min: inputs[0].value, pool_max: inputs[1].value });
    });
    return form;
  }

  function serviceRow(s) {
    const row = el("tr");
    row.dataset.service = s.name;
    row.dataset.state = s.state;
    row.dataset.version = s.version ? String(s.version.id) : "";
    const version = s.version ? "v" + s.version.id + " " + s.version.hash.slice(0, 8) : "–";
    const endpoints = (s.endpoints || []).map((e) => e.method + " " + e.path).join(", ");
    const pool = s.pool.busy + "/" + s.pool.size + (s.pool.idle === undefined ? "" : " (" + s.pool.idle + " idle)") +
      ", " + s.pool.min + "–" + s.pool.max;
    const t = s.traffic || { requests: 0, errors: 0, rate: 0, p50: null, p99: null };
    const errorRate = t.requests ? (100 * t.errors / t.requests).toFixed(1) + " %" : "–";
    const cells = [s.name, s.prefix || "/", s.state, version, s.kernel_name, endpoints, pool, t.requests,
      t.rate.toFixed(2), ms(t.p50) + " / " + ms(t.p99), t.errors + " (" + errorRate + ")", s.error || "–"];
    const fields = ["name", "prefix", "state", "version", "kernel", "endpoints", "pool", "requests", "rate",
      "latency", "errors", "error"];
    cells.forEach((text, i) => {
      const cell = el("td", text);
      cell.dataset.field = fields[i];
      row.appendChild(cell);
    });
    const actions = el("td", null, "actions");
    for (const [label, method, suffix, action] of [["Reload", "POST", "/reload", "reload"],
      ["Roll back", "POST", "/rollback", "rollback"], ["Undeploy", "DELETE", "", "undeploy"]]) {
      const button = el("button", label, method === "DELETE" ? "danger" : "");
      button.type = "button";
      button.dataset.action = action;
      button.addEventListener("click", () => { button.disabled = true; serviceAction(s.name, method, suffix); });
      actions.appendChild(button);
    }
    actions.appendChild(scaleForm(s));
    const docs = el("a", "Swagger UI");
    docs.href = base + (s.prefix || "") + "/docs";
    docs.target = "_blank";
    docs.rel = "noopener";
    actions.appendChild(docs);
    row.appendChild(actions);
    return row;
  }

  function servicesOff() {
    $("services-status").textContent = "Notebook services are off on this gateway.";
    $("services-table").hidden = true;
    $("deploy-form").hidden = true;
  }

  // the rows as GET /services answers them: pushed by the event stream, or read once after an action
  function renderServices(list) {
    knownServices = new Set(list.map((s) => s.name));
    $("deploy-form").hidden = false;
    $("services-status").textContent = list.length ? "" : "No services deployed.";
    $("services-table").hidden = !list.length;
    const rows = $("service-rows");
    // a pool size being typed in survives the refresh: skip this one
    if (rows.contains(document.activeElement) && document.activeElement.tagName === "INPUT") return;
    rows.replaceChildren(...list.map(serviceRow));
  }

  // one read right after an action, so its result shows without waiting for the stream's next tick
  async function loadServices() {
    const response = await call("GET", "/services");
    if (response.status === 404) servicesOff();
    else if (!response.ok) $("services-status").textContent = "Could not read services (" + response.status + ").";
    else renderServices(await response.json());
  }

  $("deploy-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("deploy-name").value.trim();
    const file = $("deploy-file").files[0];
    if (!name || !file) { say("Give a name and a notebook file", true); return; }
    const form = new FormData();
    form.append("name", name);
    form.append("notebook", file, file.name);
    const button = $("deploy-form").querySelector("button");
    button.disabled = true;
    say("Deploying " + name + "…", false);
    try {
      const exists = knownServices.has(name); // a new version of an existing service
      const response = await call(exists ? "PUT" : "POST", "/services" + (exists ? "/" + encodeURIComponent(name) : ""), form);
      say(name + ": " + (response.ok ? "deployed" : "deploy failed: " + (await response.text())), !response.ok);
      if (response.ok) $("deploy-file").value = "";
    } finally {
      button.disabled = false;
      loadServices();
    }
  });

  function connect() {
    if (events) events.close();
    events = new EventSource(api + "/events");
    events.addEventListener("snapshot", (event) => {
      const snapshot = JSON.parse(event.data);
      renderOverview(snapshot.overview);
      renderKernels(snapshot.kernels);
      if (!snapshot.overview.services) servicesOff();
      document.body.dataset.live = "yes";
    });
    // sent before the first snapshot and then whenever a service or its traffic numbers change
    events.addEventListener("services", (event) => renderServices(JSON.parse(event.data)));
    events.onerror = () => {
      if (events.readyState === EventSource.CLOSED) setTimeout(start, 2000); // refused: check the session
    };
  }

  function showLogin() {
    if (events) { events.close(); events = null; }
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
  }

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("token");
    const response = await call("POST", "/login", { token: input.value });
    input.value = "";
    if (response.ok) { $("login-error").textContent = ""; start(); }
    else if (response.status === 429) {
      $("login-error").textContent = "Too many failed logins: try again in " +
        (response.headers.get("Retry-After") || "a few") + " s.";
    } else $("login-error").textContent = "Wrong token.";
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
