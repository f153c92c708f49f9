// The pulse live dashboard: logs in (user and password, or a pasted token),
// subscribes to the tenant's closed windows, anomalies, forecasts and the run's
// counters (the `stats` topic) on /ws, and draws one chart per window operator
// for the selected metric, with the metric's anomalies marked on it, the latest
// anomalies listed, and the latest forecast drawn as a band ahead of the line. REST requests (the charts' backfill) count against the
// tenant's rate limit; when one is refused, or the socket closes, a banner
// says why and when the page retries.
// Plain browser JavaScript with no dependencies: it must work offline.
"use strict";

(() => {
  const API = "/api/v1";
  /** Points kept per series (one point per closed window). */
  const MAX_POINTS = 240;
  /** Anomalies listed (newest first) and marked on the charts. */
  const MAX_ANOMALIES = 50;
  /** The span the events/s and windows/s rates are measured over. */
  const RATE_SPAN_MS = 10000;
  /** How far back a chart is filled from the query API when it first appears. */
  const BACKFILL_MS = 10 * 60 * 1000;
  const MAX_RECONNECT_DELAY_MS = 10000;
  /** Retry delays after a 5xx or an unreachable gateway: doubling up to the last. */
  const SERVER_RETRY_MS = [5000, 10000, 20000, 40000, 60000];
  const PALETTE = ["#4fb3ff", "#4cc38a", "#e5b454", "#ef6b6b", "#b58cff", "#5fd4d4", "#ff9f6b",
    "#9ccc65", "#f06292", "#90a4ae", "#ffd54f", "#7986cb"];

  const $ = (id) => document.getElementById(id);
  const { draw, formatNumber, formatTime } = window.PulseChart;

  // ---- Sessions: one token set per tenant, kept for the browser tab's life.

  const sessions = {
    all() {
      try {
        return JSON.parse(sessionStorage.getItem("pulse.sessions") || "{}");
      } catch (_) {
        return {};
      }
    },
    get(tenant) {
      return this.all()[tenant] || null;
    },
    put(tenant, session) {
      const all = this.all();
      all[tenant] = session;
      sessionStorage.setItem("pulse.sessions", JSON.stringify(all));
      sessionStorage.setItem("pulse.current", tenant);
    },
    remove(tenant) {
      const all = this.all();
      delete all[tenant];
      sessionStorage.setItem("pulse.sessions", JSON.stringify(all));
    },
    current() {
      const tenant = sessionStorage.getItem("pulse.current");
      return tenant && this.get(tenant) ? tenant : Object.keys(this.all())[0] || null;
    },
  };

  /** The `exp` of a JWT in ms since the epoch, or null if it cannot be read. */
  function tokenExpiry(token) {
    try {
      const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      return typeof payload.exp === "number" ? payload.exp * 1000 : null;
    } catch (_) {
      return null;
    }
  }

  async function api(path, { method = "GET", body, token } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const reply = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await reply.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) { /* not JSON: reported by status below */ }
    if (!reply.ok) {
      const error = new Error((json && json.error && json.error.message) || `${reply.status} ${reply.statusText}`);
      error.status = reply.status;
      const retryAfter = Number(reply.headers.get("Retry-After"));
      if (retryAfter > 0) error.retryAfterMs = retryAfter * 1000;
      throw error;
    }
    return json;
  }

  // ---- The banner: what was refused, why, and when the page tries again.

  /** source ("api" or "live") -> { kind, text, retryAt } */
  const problems = new Map();
  let bannerTimer = null;
  let serverFailures = 0;

  function renderBanner() {
    const banner = $("banner");
    if (problems.size === 0) {
      banner.hidden = true;
      banner.textContent = "";
      delete banner.dataset.kind;
      clearInterval(bannerTimer);
      bannerTimer = null;
      return;
    }
    const lines = [...problems.values()].map((p) => {
      if (!p.retryAt) return p.text;
      const seconds = Math.max(0, Math.ceil((p.retryAt - Date.now()) / 1000));
      return `${p.text} Retrying in ${seconds} s (at ${formatTime(p.retryAt)}).`;
    });
    banner.textContent = lines.join(" ");
    banner.dataset.kind = [...problems.values()].pop().kind;
    banner.hidden = false;
    if (!bannerTimer) bannerTimer = setInterval(renderBanner, 1000);
  }

  function reportProblem(source, kind, text, retryAt) {
    const banner = $("banner");
    // How many refusals this page has shown, for tests and the curious.
    if (source === "api") banner.dataset.refusals = String(Number(banner.dataset.refusals || 0) + 1);
    problems.set(source, { kind, text, retryAt });
    renderBanner();
  }

  function clearProblem(source) {
    if (problems.delete(source)) renderBanner();
  }

  /**
   * Shows why a REST request was refused and returns in how many ms to retry
   * it, or null when retrying cannot help (another 4xx, or a 401 that sends
   * the user back to the login).
   */
  function refused(error) {
    const status = error.status || 0;
    if (status === 429) {
      const delay = error.retryAfterMs || 5000;
      reportProblem("api", "rate_limited", `The gateway refused a request: rate limit reached (429: ${error.message}).`, Date.now() + delay);
      return delay;
    }
    if (status === 401) {
      const session = sessions.get(view.tenant);
      if (session && session.refresh) {
        const delay = 1000;
        reportProblem("api", "unauthorized", "The gateway refused a request: not authorised (401); renewing the session.", Date.now() + delay);
        refresh().then(() => clearProblem("api"), () => {});
        return delay;
      }
      expired(view.tenant);
      return null;
    }
    if (status >= 500 || status === 0) {
      const delay = SERVER_RETRY_MS[Math.min(serverFailures, SERVER_RETRY_MS.length - 1)];
      serverFailures += 1;
      const what = status ? `server error (${status}: ${error.message})` : `the gateway cannot be reached (${error.message})`;
      reportProblem("api", "server_error", `A request failed: ${what}.`, Date.now() + delay);
      return delay;
    }
    return null;
  }

  function accepted() {
    serverFailures = 0;
    clearProblem("api");
  }

  function sessionOf(pair) {
    return { access: pair.access_token, refresh: pair.refresh_token, expiresAt: Date.now() + pair.expires_in * 1000 };
  }

  // ---- What the page shows.

  const view = {
    tenant: null,
    ws: null,
    reconnectDelay: 500,
    timers: { reconnect: null, refresh: null },
    metric: null,
    /** operator -> { field, fields: Set, groupFields: [], card, metrics: Map(metric -> Map(group -> points)) } */
    operators: new Map(),
    backfilled: new Set(),
    received: 0,
    /** The latest anomalies, newest first: { t, metric, source, value, score, severity, explanation }. */
    anomalies: [],
    /** metric -> the latest forecast: { issuedAt, points: [{ t, yhat, lower, upper }] } (80 % interval). */
    forecasts: new Map(),
    /** Recent `stats` messages, oldest first, for rates. */
    samples: [],
    renderQueued: false,
  };

  function setConnection(state, text) {
    const element = $("connection");
    element.dataset.state = state;
    element.textContent = text;
  }

  function notice(text) {
    $("notice").textContent = text;
  }

  function showLogin(message) {
    $("login").hidden = false;
    $("login-error").textContent = message || "";
  }

  function fillTenantSelect() {
    const select = $("tenant");
    select.replaceChildren(...Object.keys(sessions.all()).sort().map((tenant) => new Option(tenant, tenant)));
    select.value = view.tenant || "";
    $("controls").hidden = select.options.length === 0;
  }

  // ---- Starting, stopping and switching tenants.

  function stop() {
    for (const name of Object.keys(view.timers)) {
      clearTimeout(view.timers[name]);
      clearInterval(view.timers[name]);
      view.timers[name] = null;
    }
    if (view.ws) {
      view.ws.onclose = null;
      view.ws.close(1000, "switching");
      view.ws = null;
    }
    view.operators.clear();
    view.backfilled.clear();
    view.anomalies = [];
    view.forecasts.clear();
    $("anomaly-list").replaceChildren();
    window.dispatchEvent(new CustomEvent("pulse:reset"));
    view.metric = null;
    view.received = 0;
    view.samples = [];
    problems.clear();
    renderBanner();
    $("charts").replaceChildren();
    $("metrics").replaceChildren();
    $("charts").dataset.points = "0";
    $("stat-received").textContent = "0";
    $("empty").hidden = false;
    setConnection("idle", "not connected");
  }

  function start(tenant) {
    stop();
    view.tenant = tenant;
    sessionStorage.setItem("pulse.current", tenant);
    fillTenantSelect();
    $("login").hidden = true;
    $("live").hidden = false;
    scheduleRefresh();
    connect();
  }

  function scheduleRefresh() {
    const session = sessions.get(view.tenant);
    if (!session || !session.refresh || !session.expiresAt) return;
    const due = Math.max(5000, session.expiresAt - Date.now() - 60000);
    view.timers.refresh = setTimeout(() => refresh().catch(() => {}), due);
  }

  /** Exchanges the refresh token for a new pair; shows the login when that fails. */
  async function refresh() {
    const tenant = view.tenant;
    const session = sessions.get(tenant);
    if (!session || !session.refresh) throw new Error("no refresh token");
    try {
      const pair = await api("/auth/refresh", { method: "POST", body: { refresh_token: session.refresh } });
      sessions.put(tenant, sessionOf(pair));
      scheduleRefresh();
    } catch (error) {
      if (error.status === 401) expired(tenant);
      throw error;
    }
  }

  function expired(tenant) {
    sessions.remove(tenant);
    stop();
    view.tenant = null;
    fillTenantSelect();
    $("live").hidden = true;
    showLogin(`The session of tenant ${tenant} expired; log in again.`);
  }

  // ---- The WebSocket.

  function connect() {
    const session = sessions.get(view.tenant);
    if (!session) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws?token=${encodeURIComponent(session.access)}`);
    view.ws = ws;
    setConnection("connecting", "connecting…");
    ws.onopen = () => {
      view.reconnectDelay = 500;
      setConnection("open", `live · tenant ${view.tenant}`);
      clearProblem("live");
      ws.send(JSON.stringify({ type: "subscribe", topic: "windows", filter: {} }));
      ws.send(JSON.stringify({ type: "subscribe", topic: "anomalies", filter: {} }));
      ws.send(JSON.stringify({ type: "subscribe", topic: "forecasts", filter: {} }));
      ws.send(JSON.stringify({ type: "subscribe", topic: "stats" }));
      ws.send(JSON.stringify({ type: "subscribe", topic: "incidents", filter: {} }));
      // The incidents panel (incidents.js) backfills through the same session.
      const fetchApi = (path) => api(path, { token: (sessions.get(view.tenant) || {}).access });
      window.dispatchEvent(new CustomEvent("pulse:live", { detail: { fetch: fetchApi } }));
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      switch (message.type) {
        case "window": onWindow(message); break;
        case "anomaly": onAnomaly(message); break;
        case "forecast": onForecast(message); break;
        case "stats": onStats(message); break;
        case "incident": window.dispatchEvent(new CustomEvent("pulse:incident", { detail: message })); break;
        case "lagged": notice(`This page fell behind: the server dropped ${message.dropped} window messages.`); break;
        case "error": notice(`Server: ${message.message}`); break;
        default: break;
      }
    };
    ws.onclose = (event) => {
      if (view.ws !== ws) return;
      view.ws = null;
      const why = `${event.code}${event.reason ? ": " + event.reason : ""}`;
      setConnection("closed", `disconnected (${why})`);
      reconnect(event.code, why);
    };
  }

  async function reconnect(code, why) {
    const session = sessions.get(view.tenant);
    if (!session) return;
    if (code === 4401 || (session.expiresAt && session.expiresAt <= Date.now())) {
      if (!session.refresh) {
        expired(view.tenant);
        return;
      }
      try {
        await refresh();
      } catch (_) {
        return;
      }
    }
    const delay = view.reconnectDelay;
    view.reconnectDelay = Math.min(view.reconnectDelay * 2, MAX_RECONNECT_DELAY_MS);
    reportProblem("live", "closed", `The live connection closed (${why}); charts and counters are paused.`, Date.now() + delay);
    view.timers.reconnect = setTimeout(connect, delay);
  }

  // ---- Window data.

  /** The key fields that tell series apart in a chart: all but tenant and metric. */
  function groupFields(key) {
    return Object.keys(key).filter((field) => field !== "tenant" && field !== "metric").sort();
  }

  function groupLabel(fields, key) {
    if (fields.length === 0) return "all";
    return fields.map((field) => `${field}=${key[field] === null || key[field] === undefined ? "∅" : key[field]}`).join(" ");
  }

  function operatorOf(name, values, key) {
    let operator = view.operators.get(name);
    if (!operator) {
      const fields = Object.keys(values);
      operator = {
        field: ["avg", "p95", "p99", "count"].find((f) => fields.includes(f)) || fields[0],
        fields: new Set(),
        groupFields: groupFields(key),
        card: null,
        metrics: new Map(),
      };
      view.operators.set(name, operator);
    }
    for (const field of Object.keys(values)) operator.fields.add(field);
    return operator;
  }

  function addPoint(operator, metric, group, t, values) {
    let groups = operator.metrics.get(metric);
    if (!groups) operator.metrics.set(metric, (groups = new Map()));
    let points = groups.get(group);
    if (!points) groups.set(group, (points = []));
    // Windows arrive in order; a backfilled or replayed one is put in its place.
    let at = points.length;
    while (at > 0 && points[at - 1].t > t) at -= 1;
    if (at > 0 && points[at - 1].t === t) {
      points[at - 1].values = Object.assign({}, points[at - 1].values, values);
    } else {
      points.splice(at, 0, { t, values });
    }
    if (points.length > MAX_POINTS) points.splice(0, points.length - MAX_POINTS);
  }

  function onWindow(message) {
    view.received += 1;
    const metric = message.key.metric === undefined ? "all" : String(message.key.metric);
    const operator = operatorOf(message.operator, message.values, message.key);
    const group = groupLabel(operator.groupFields, message.key);
    addPoint(operator, metric, group, message.window_start, message.values);
    if (!view.metric || (view.metric !== "cpu" && metric === "cpu" && view.received < 50)) view.metric = metric;
    // Only the metric on screen: the others are filled when their tab is chosen.
    if (metric === view.metric) backfill(message.operator, metric, operator.field);
    scheduleRender();
  }

  // ---- Anomalies and forecasts.

  function onAnomaly(message) {
    view.anomalies.unshift({
      t: message.ts,
      metric: message.key.metric === undefined ? "all" : String(message.key.metric),
      source: message.key.source,
      value: message.value,
      score: message.score,
      severity: message.severity,
      explanation: message.explanation,
    });
    if (view.anomalies.length > MAX_ANOMALIES) view.anomalies.length = MAX_ANOMALIES;
    scheduleRender();
  }

  /** Keeps the latest forecast of each metric (its steps arrive one message each). */
  function onForecast(message) {
    const metric = message.key.metric === undefined ? "all" : String(message.key.metric);
    let latest = view.forecasts.get(metric);
    if (!latest || latest.issuedAt < message.issued_at) {
      latest = { issuedAt: message.issued_at, points: [] };
      view.forecasts.set(metric, latest);
    }
    if (latest.issuedAt !== message.issued_at) return;
    latest.points.push({ t: message.ts, yhat: message.yhat, lower: message.lower80, upper: message.upper80 });
    latest.points.sort((a, b) => a.t - b.t);
    scheduleRender();
  }

  function renderAnomalies() {
    const list = $("anomaly-list");
    list.replaceChildren(...view.anomalies.slice(0, 12).map((a) => {
      const item = document.createElement("li");
      item.className = `anomaly ${a.severity}`;
      item.dataset.metric = a.metric;
      item.textContent = `${formatTime(a.t)} · ${a.metric}${a.source ? " on " + a.source : ""} = ${formatNumber(a.value)}`
        + ` · score ${a.score.toFixed(2)} (${a.severity})${a.explanation ? " — " + a.explanation : ""}`;
      return item;
    }));
    $("anomalies").dataset.count = String(view.anomalies.length);
    $("no-anomalies").hidden = view.anomalies.length > 0;
  }

  /** Fills a chart with the windows the gateway retained before the page connected. */
  async function backfill(operatorName, metric, field) {
    const id = `${operatorName}\u0000${metric}\u0000${field}`;
    const session = sessions.get(view.tenant);
    if (view.backfilled.has(id) || metric === "all" || !session) return;
    view.backfilled.add(id);
    const operator = view.operators.get(operatorName);
    const aggregation = ["avg", "min", "max", "sum", "count"].includes(field) || /^p\d+$/.test(field) ? field : null;
    if (!aggregation) return;
    const now = Date.now();
    try {
      const result = await api("/analytics/query", {
        method: "POST",
        token: session.access,
        body: {
          metric_name: metric, operator: operatorName, aggregation,
          start_time: now - BACKFILL_MS, end_time: now, group_by: operator.groupFields,
        },
      });
      accepted();
      if (view.operators.get(operatorName) !== operator) return;
      for (const series of result.series || []) {
        const group = groupLabel(operator.groupFields, series.group || {});
        for (const point of series.points) addPoint(operator, metric, group, point.timestamp, { [field]: point.value });
      }
      scheduleRender();
    } catch (error) {
      // The live stream still fills the chart; a refusal is shown and retried.
      const delay = refused(error);
      if (delay === null || view.operators.get(operatorName) !== operator) return;
      setTimeout(() => {
        if (view.operators.get(operatorName) !== operator) return;
        view.backfilled.delete(id);
        backfill(operatorName, metric, field);
      }, delay);
    }
  }

  // ---- Rendering.

  function scheduleRender() {
    if (view.renderQueued) return;
    view.renderQueued = true;
    requestAnimationFrame(() => {
      view.renderQueued = false;
      render();
    });
  }

  function render() {
    $("stat-received").textContent = view.received.toLocaleString();
    renderAnomalies();
    renderMetricTabs();
    let total = 0;
    for (const [name, operator] of view.operators) total += renderChart(name, operator);
    $("charts").dataset.points = String(total);
    $("empty").hidden = total > 0;
  }

  function renderMetricTabs() {
    const metrics = new Set();
    for (const operator of view.operators.values()) for (const metric of operator.metrics.keys()) metrics.add(metric);
    const nav = $("metrics");
    const names = [...metrics].sort();
    if (nav.dataset.names !== names.join(",")) {
      nav.dataset.names = names.join(",");
      nav.replaceChildren(...names.map((metric) => {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = metric;
        button.dataset.metric = metric;
        button.onclick = () => {
          view.metric = metric;
          for (const [name, operator] of view.operators) backfill(name, metric, operator.field);
          render();
        };
        return button;
      }));
    }
    for (const button of nav.children) button.setAttribute("aria-pressed", String(button.dataset.metric === view.metric));
  }

  function chartCard(name, operator) {
    if (operator.card) return operator.card;
    const card = document.createElement("article");
    card.className = "chart";
    card.dataset.operator = name;
    const header = document.createElement("header");
    const title = document.createElement("h3");
    title.textContent = name;
    const select = document.createElement("select");
    select.setAttribute("aria-label", "Aggregate");
    select.onchange = () => {
      operator.field = select.value;
      backfill(name, view.metric, operator.field);
      render();
    };
    header.append(title, select);
    const canvas = document.createElement("canvas");
    const legend = document.createElement("div");
    legend.className = "legend";
    card.append(header, canvas, legend);
    $("charts").append(card);
    operator.card = { root: card, select, canvas, legend };
    return operator.card;
  }

  /** Draws one operator's series for the selected metric; returns how many points it plotted. */
  function renderChart(name, operator) {
    const card = chartCard(name, operator);
    const fields = [...operator.fields].sort();
    if (card.select.dataset.fields !== fields.join(",")) {
      card.select.dataset.fields = fields.join(",");
      card.select.replaceChildren(...fields.map((field) => new Option(field, field)));
    }
    card.select.value = operator.field;
    const groups = operator.metrics.get(view.metric) || new Map();
    const series = [...groups].sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
      .map(([group, points], index) => ({
        group,
        color: PALETTE[index % PALETTE.length],
        points: points.filter((p) => typeof p.values[operator.field] === "number")
          .map((p) => ({ t: p.t, v: p.values[operator.field] })),
      }));
    const plotted = series.reduce((sum, s) => sum + s.points.length, 0);
    card.root.dataset.points = String(plotted);
    card.root.dataset.series = String(series.length);
    const marks = view.anomalies.filter((a) => a.metric === view.metric).map((a) => ({ t: a.t }));
    // A forecast is per tenant and metric: it goes with the charts of one series per metric.
    const forecast = operator.groupFields.length === 0 ? view.forecasts.get(view.metric) : null;
    // Window lines are drawn at each window's start, forecasts name the window's end: one step back.
    const step = forecast && forecast.points.length > 1 ? forecast.points[1].t - forecast.points[0].t : 0;
    const ahead = forecast ? forecast.points.map((p) => Object.assign({}, p, { t: p.t - step })) : [];
    const bands = ahead.length > 0 ? [{ color: "#e5b454", points: ahead }] : [];
    card.root.dataset.anomalies = String(marks.length);
    card.root.dataset.forecast = String(bands.length > 0 ? forecast.points.length : 0);
    draw(card.canvas, series, { bands, marks });
    card.legend.replaceChildren(...series.map((s) => {
      const item = document.createElement("span");
      item.style.setProperty("--swatch", s.color);
      const last = s.points[s.points.length - 1];
      item.textContent = last ? `${s.group} ${formatNumber(last.v)}` : s.group;
      return item;
    }));
    return plotted;
  }

  // ---- Counters, from the `stats` messages of /ws (every 2 s).

  function onStats(stats) {
    const now = typeof stats.at === "number" ? stats.at : Date.now();
    const pipeline = stats.pipeline || {};
    // Rates over the last RATE_SPAN_MS of samples: windows close in bursts.
    view.samples.push({ at: now, pipeline });
    while (view.samples.length > 2 && now - view.samples[1].at >= RATE_SPAN_MS) view.samples.shift();
    const oldest = view.samples[0];
    if (oldest.at < now) {
      const seconds = (now - oldest.at) / 1000;
      const rate = (name) => Math.max(0, ((pipeline[name] || 0) - (oldest.pipeline[name] || 0)) / seconds);
      $("stat-events-rate").textContent = Math.round(rate("events_in_total")).toLocaleString();
      $("stat-windows-rate").textContent = rate("windows_out_total").toFixed(1);
    }
    $("stat-late").textContent = (pipeline.late_events_total || 0).toLocaleString();
    $("stat-dead").textContent = (pipeline.dead_letters_total || 0).toLocaleString();
    $("stat-clients").textContent = ((stats.live && stats.live.connections) || 0).toLocaleString();
    $("live").dataset.statsAt = String(now);
  }

  // ---- Forms and controls.

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      const pair = await api("/auth/login", {
        method: "POST",
        body: { username: $("username").value.trim(), password: $("password").value },
      });
      $("password").value = "";
      sessions.put(pair.tenant_id, sessionOf(pair));
      start(pair.tenant_id);
    } catch (error) {
      $("login-error").textContent = error.message;
    }
  });

  $("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    const token = $("token").value.trim();
    try {
      const me = await api("/auth/me", { token });
      $("token").value = "";
      sessions.put(me.tenant_id, { access: token, refresh: null, expiresAt: tokenExpiry(token) });
      start(me.tenant_id);
    } catch (error) {
      $("login-error").textContent = error.message;
    }
  });

  $("tenant").addEventListener("change", (event) => start(event.target.value));
  $("add-tenant").addEventListener("click", () => showLogin());
  $("logout").addEventListener("click", () => {
    const tenant = view.tenant;
    stop();
    if (tenant) sessions.remove(tenant);
    view.tenant = null;
    const next = sessions.current();
    if (next) {
      start(next);
    } else {
      fillTenantSelect();
      $("live").hidden = true;
      showLogin();
    }
  });
  window.addEventListener("resize", scheduleRender);

  const tenant = sessions.current();
  if (tenant) start(tenant);
  else showLogin();
})();
