/* Vigil analytics dashboard: the tenant's live figures from the API's JSON endpoints.
 *
 * The key: from the URL fragment (#key=...&refresh=5; a fragment is never sent to a server) or
 * typed into the form; kept in this tab's sessionStorage and sent only as `Authorization: Bearer`.
 * The fragment is removed from the address bar at once (no key in history or screenshots).
 * Every value shown comes from one API answer and is written with textContent (never as HTML):
 * names in the data (patterns, reasons) cannot inject markup. Each KPI element also carries the
 * raw number in data-value, so a test can compare it with the API's JSON exactly.
 */
(function () {
  "use strict";

  const KEY_STORE = "vigil.dashboard.key";
  const state = { key: null, refreshMs: 5000, timer: null, charts: {}, refreshes: 0, generation: 0 };
  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ formatting (en-US, UTC)
  // The same rules as the browser test's expectations: money with 2 decimals and thousands
  // separators, counts with separators, rates in percent.
  function grouped(text) {
    const [whole, fraction] = text.split(".");
    const sign = whole.startsWith("-") ? "-" : "";
    const digits = sign ? whole.slice(1) : whole;
    return sign + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (fraction !== undefined ? "." + fraction : "");
  }
  const fmt = {
    usd: (v) => (v === null || v === undefined ? "–" : "$" + grouped(Number(v).toFixed(2))),
    count: (v) => (v === null || v === undefined ? "–" : grouped(String(Math.round(v)))),
    percent: (digits) => (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(digits) + " %"),
  };
  const minuteLabel = (iso) => iso.slice(11, 16);        // "2026-12-03T10:15:00Z" -> "10:15"

  function show(id, value, format) {
    const el = $(id);
    el.textContent = format(value);
    el.dataset.value = value === null || value === undefined ? "" : String(value);
  }

  // ------------------------------------------------------------------ the API
  class ApiFailure extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path) {
    let response;
    try {
      response = await fetch(path, {
        headers: { Authorization: "Bearer " + state.key, Accept: "application/json" },
        cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer",
      });
    } catch (e) {
      throw new ApiFailure(0, "the API is not reachable");
    }
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const message = body && body.error ? body.error.message : "HTTP " + response.status;
      throw new ApiFailure(response.status, message);
    }
    return body;
  }

  // ------------------------------------------------------------------ page states
  function setError(message) {
    const el = $("error");
    el.textContent = message || "";
    el.hidden = !message;
  }

  function showLogin(message) {
    stop();
    state.key = null;
    sessionStorage.removeItem(KEY_STORE);
    $("board").hidden = true;
    $("change-key").hidden = true;
    $("login").hidden = false;
    $("tenant").textContent = "";
    $("status").textContent = "";
    document.body.dataset.state = message ? "refused" : "login";
    setError(message);
    $("key-input").focus();
  }

  function stop() {
    state.generation += 1;          // a refresh already under way will not reschedule itself
    if (state.timer !== null) { clearTimeout(state.timer); state.timer = null; }
  }

  async function open(key) {
    stop();
    state.key = key;
    const generation = state.generation;
    $("login").hidden = true;
    setError("");
    try {
      const who = await api("/v1/whoami");
      if (generation !== state.generation) return;
      sessionStorage.setItem(KEY_STORE, key);
      $("tenant").textContent = "tenant " + who.tenant_id;
      document.body.dataset.tenant = who.tenant_id;
    } catch (e) {
      if (generation !== state.generation) return;
      if (e.status === 401) { showLogin("API key refused: " + e.message); return; }
      setError("Cannot open the dashboard: " + e.message);
      document.body.dataset.state = "error";
      $("login").hidden = false;
      return;
    }
    $("board").hidden = false;
    $("change-key").hidden = false;
    document.body.dataset.state = "live";
    refresh(generation);
  }

  // ------------------------------------------------------------------ one refresh
  async function refresh(generation) {
    try {
      // All six answers first, then draw: the page never mixes two refreshes' figures.
      const [revenue, funnel, approval, dlq, alerts, incidents] = await Promise.all([
        api("/v1/revenue?grain=minute"),
        api("/v1/funnel?grain=minute"),
        api("/v1/approval-rate?grain=minute"),
        api("/v1/quality/dlq-rate?grain=minute"),
        api("/v1/fraud/alerts/by-pattern?grain=hour"),
        api("/v1/fraud/incidents/by-pattern?grain=hour"),
      ]);
      if (generation !== state.generation) return;
      draw(revenue, funnel, approval, dlq, alerts, incidents);
      setError("");
      state.refreshes += 1;
      document.body.dataset.refreshes = String(state.refreshes);
      $("status").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC · every "
        + state.refreshMs / 1000 + " s";
    } catch (e) {
      if (generation !== state.generation) return;
      if (e.status === 401) { showLogin("API key refused: " + e.message); return; }
      // A database restart or a slow query: say so, keep the last figures, try again.
      setError("Refresh failed (" + e.message + "); retrying");
    }
    if (generation === state.generation) {
      state.timer = setTimeout(() => refresh(generation), state.refreshMs);
    }
  }

  // Minute windows from `from` to `to` (the API's answered range): a minute without a row is 0,
  // so the time axis does not jump over quiet minutes.
  function minutes(fromIso, toIso) {
    const out = [];
    const start = Date.parse(fromIso), end = Date.parse(toIso);
    for (let t = Math.ceil(start / 60000) * 60000; t < end; t += 60000) out.push(new Date(t).toISOString());
    return out.map((iso) => iso.slice(0, 19) + "Z");
  }

  function byMinute(series, field) {
    const m = new Map();
    for (const row of series) m.set(row.window_start, row[field]);
    return m;
  }

  function draw(revenue, funnel, approval, dlq, alerts, incidents) {
    show("kpi-gmv", revenue.totals.gmv_usd, fmt.usd);
    show("kpi-orders", revenue.totals.orders, fmt.count);
    show("kpi-basket", revenue.totals.avg_basket_usd, fmt.usd);
    show("kpi-approval", approval.totals.approval_rate, fmt.percent(1));
    show("kpi-dlq", dlq.totals.dlq_rate, fmt.percent(2));
    const alertCount = Object.values(alerts.by_pattern).reduce((a, b) => a + b, 0);
    const incidentCount = Object.values(incidents.by_pattern).reduce((a, b) => a + b, 0);
    show("kpi-alerts", alertCount, fmt.count);
    show("kpi-incidents", incidentCount, fmt.count);

    const windows = minutes(revenue.from, revenue.to);
    const labels = windows.map(minuteLabel);
    const gmv = byMinute(revenue.series, "gmv_usd"), orders = byMinute(revenue.series, "orders");
    chart("chart-revenue", {
      type: "bar",
      data: {
        labels,
        datasets: [
          { label: "GMV (USD)", data: windows.map((w) => gmv.get(w) ?? 0), backgroundColor: "#1f6feb", yAxisID: "y" },
          { label: "orders", type: "line", data: windows.map((w) => orders.get(w) ?? 0), borderColor: "#e8590c",
            backgroundColor: "#e8590c", pointRadius: 0, borderWidth: 2, yAxisID: "y1" },
        ],
      },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: "USD" } },
                           y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false },
                                 title: { display: true, text: "orders" } } } },
    });

    const steps = [["page_views", "page views"], ["add_to_carts", "add to cart"], ["checkouts", "checkouts"],
                   ["payment_attempts", "payment attempts"], ["payments_approved", "approved"]];
    chart("chart-funnel", {
      type: "bar",
      data: { labels: steps.map((s) => s[1]),
              datasets: [{ label: "events", data: steps.map((s) => funnel.steps[s[0]]), backgroundColor: "#2f9e44" }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true } } },
    });
    const funnelBody = $("funnel-table").tBodies[0];
    funnelBody.replaceChildren(...steps.map(([field, label], i) => {
      const previous = i === 0 ? null : funnel.steps[steps[i - 1][0]];
      const share = previous ? funnel.steps[field] / previous : null;
      return row([label, fmt.count(funnel.steps[field]), i === 0 ? "" : fmt.percent(1)(share)],
                 { step: field, value: String(funnel.steps[field]) });
    }));

    const rate = byMinute(approval.series, "approval_rate"), dlqRate = byMinute(dlq.series, "dlq_rate");
    const pct = (v) => (v === null || v === undefined ? null : v * 100);
    chart("chart-rates", {
      type: "line",
      data: { labels, datasets: [
        { label: "approval rate %", data: windows.map((w) => pct(rate.get(w))), borderColor: "#2f9e44",
          backgroundColor: "#2f9e44", pointRadius: 0, borderWidth: 2, spanGaps: true, yAxisID: "y" },
        { label: "DLQ rate %", data: windows.map((w) => pct(dlqRate.get(w))), borderColor: "#b42318",
          backgroundColor: "#b42318", pointRadius: 0, borderWidth: 2, spanGaps: true, yAxisID: "y1" },
      ] },
      options: { scales: { y: { min: 0, max: 100, title: { display: true, text: "approved %" } },
                           y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false },
                                 title: { display: true, text: "rejected %" } } } },
    });

    const patterns = [...new Set([...Object.keys(alerts.by_pattern), ...Object.keys(incidents.by_pattern)])].sort();
    chart("chart-fraud", {
      type: "bar",
      data: { labels: patterns, datasets: [
        { label: "alerts", data: patterns.map((p) => alerts.by_pattern[p] ?? 0), backgroundColor: "#b42318" },
        { label: "incidents", data: patterns.map((p) => incidents.by_pattern[p] ?? 0), backgroundColor: "#7048e8" },
      ] },
      options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    $("fraud-table").tBodies[0].replaceChildren(...patterns.map((p) => row(
      [p, fmt.count(alerts.by_pattern[p] ?? 0), fmt.count(incidents.by_pattern[p] ?? 0)], { pattern: p })));
  }

  function row(cells, data) {
    const tr = document.createElement("tr");
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    Object.assign(tr.dataset, data);
    return tr;
  }

  // Charts are made once and then updated in place (no animation: a refresh every few seconds
  // would otherwise keep the page redrawing, and a screenshot could catch a bar half-grown).
  function chart(id, config) {
    const existing = state.charts[id];
    if (existing) {
      existing.data.labels = config.data.labels;
      config.data.datasets.forEach((dataset, i) => { existing.data.datasets[i].data = dataset.data; });
      existing.update("none");
      return;
    }
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
    state.charts[id] = new Chart($(id), config);
  }

  // ------------------------------------------------------------------ start
  function fragmentSettings() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const refresh = Number(params.get("refresh"));
    if (refresh >= 1 && refresh <= 300) state.refreshMs = refresh * 1000;
    const key = params.get("key");
    if (location.hash) history.replaceState(null, "", location.pathname);
    return key && key.trim() ? key.trim() : null;
  }

  function start() {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key-input").value.trim();
      $("key-input").value = "";
      if (key) open(key);
    });
    $("change-key").addEventListener("click", () => showLogin(""));
    window.addEventListener("hashchange", () => {
      const key = fragmentSettings();
      if (key) open(key);
    });
    const key = fragmentSettings() || sessionStorage.getItem(KEY_STORE);
    if (key) open(key); else showLogin("");
  }

  if (typeof Chart === "undefined") {
    setError("The charting library did not load (vendor/chart.js); see the API's log.");
    return;
  }
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  start();
})();
