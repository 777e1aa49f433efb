// Hearth operations dashboard. Vanilla JS, no build, no library: the charts are inline SVG drawn
// here. Every value from the API goes into the page through textContent or an SVG attribute and is
// never parsed as HTML, so a model or label name cannot inject markup.
"use strict";

(() => {
  const POLL_MS = 5000;
  const KEY_STORAGE = "hearth.dashboard.apiKey";
  const SINCE_S = 3600;
  const STEP_S = 30;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];
  const SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };
  const NO_DATA = "no data";

  // ---- small DOM helpers ------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function el(tag, props, children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null) continue;
        if (k === "class") node.className = v;
        else if (k === "text") node.textContent = String(v);
        else if (k === "title") node.title = String(v);
        else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, String(v));
      }
    }
    for (const child of children || []) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  // A number cell: "no data" (styled) for null, never a 0 made up for a missing value.
  function valueNode(value, format, tag = "span") {
    if (value === null || value === undefined || Number.isNaN(value)) return el(tag, { class: "no-data", text: NO_DATA });
    return el(tag, { text: format(value) });
  }

  function td(value, format, cls) {
    const cell = el("td", { class: cls });
    if (format) cell.append(valueNode(value, format));
    else if (value === null || value === undefined || value === "") cell.append(el("span", { class: "no-data", text: NO_DATA }));
    else cell.textContent = String(value);
    return cell;
  }

  // A state from the API becomes a class name only as a slug ("not loaded" -> "not_loaded").
  const slug = (v) => String(v).toLowerCase().replace(/[^a-z0-9_]+/g, "_");

  function badge(text, ...classes) {
    const names = (classes.length ? classes : [text]).filter((c) => c !== null && c !== undefined).map(slug);
    return el("span", { class: ["badge", ...names].join(" "), text });
  }

  // ---- formatting -------------------------------------------------------------------------------

  const isNum = (v) => typeof v === "number" && Number.isFinite(v);

  function fmtNumber(v, digits = 2) {
    if (!isNum(v)) return NO_DATA;
    const abs = Math.abs(v);
    if (abs !== 0 && abs < 0.01) return v.toExponential(1);
    if (abs >= 1000) return Math.round(v).toLocaleString("en");
    return String(Number(v.toFixed(abs < 10 ? digits : 1)));
  }
  const fmtMs = (ms) => (ms >= 1000 ? `${fmtNumber(ms / 1000)} s` : `${fmtNumber(ms)} ms`);
  const fmtSeconds = (s) => fmtMs(s * 1000);
  const fmtPercent = (p) => `${fmtNumber(p, 1)} %`;
  const fmtFraction = (f) => `${fmtNumber(f * 100, 1)} %`;
  const fmtRate = (r) => `${fmtNumber(r)}/s`;
  const fmtCount = (n) => Math.round(n).toLocaleString("en");

  function fmtBytes(b) {
    if (!isNum(b)) return NO_DATA;
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = b;
    while (Math.abs(v) >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return `${fmtNumber(v, 1)} ${units[i]}`;
  }
  const fmtMb = (mb) => fmtBytes(mb * 1024 * 1024);
  const fmtByteRate = (b) => `${fmtBytes(b)}/s`;

  // Times come as unix seconds (numbers) or ISO 8601 strings; both become epoch milliseconds.
  function toMs(v) {
    if (isNum(v)) return v > 1e11 ? v : v * 1000;
    if (typeof v === "string" && v) {
      const t = Date.parse(v);
      return Number.isNaN(t) ? null : t;
    }
    return null;
  }

  const pad = (n) => String(n).padStart(2, "0");
  function fmtClock(ms, seconds = true) {
    const d = new Date(ms);
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return seconds ? `${hm}:${pad(d.getSeconds())}` : hm;
  }

  function fmtWhen(v) {
    const ms = toMs(v);
    if (ms === null) return NO_DATA;
    const age = (Date.now() - ms) / 1000;
    let ago;
    if (age < 60) ago = `${Math.max(0, Math.round(age))} s ago`;
    else if (age < 3600) ago = `${Math.round(age / 60)} min ago`;
    else if (age < 86400) ago = `${Math.round(age / 3600)} h ago`;
    else return new Date(ms).toISOString().replace("T", " ").slice(0, 19);
    return `${fmtClock(ms)} (${ago})`;
  }

  // ---- API --------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, title, detail) {
      super(`${title}: ${detail}`);
      this.status = status;
      this.title = title;
      this.detail = detail;
    }
  }

  function apiKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE);
    } catch (_) {
      return null;
    }
  }

  async function api(path, options = {}) {
    const headers = { Accept: "application/json, application/problem+json", Authorization: `Bearer ${apiKey() || ""}` };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(path, {
        method: options.method || "GET",
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        cache: "no-store",
      });
    } catch (exc) {
      throw new ApiError(0, "Gateway unreachable", exc && exc.message ? exc.message : String(exc));
    }
    const type = resp.headers.get("content-type") || "";
    let body = null;
    if (type.includes("json")) {
      try {
        body = await resp.json();
      } catch (_) {
        body = null;
      }
    }
    if (!resp.ok) {
      const title = body && typeof body.title === "string" ? body.title : `HTTP ${resp.status}`;
      const detail = body && typeof body.detail === "string" ? body.detail : resp.statusText || `${path} failed`;
      throw new ApiError(resp.status, title, detail);
    }
    return body;
  }

  // ---- banner -----------------------------------------------------------------------------------

  let bannerSource = null; // "poll" banners go away on the next good poll; "action" ones stay

  function showBanner(error, source = "poll", kind = "error") {
    const status = error.status ? ` (${error.status})` : "";
    $("banner-title").textContent = `${error.title || "Error"}${status}:`;
    $("banner-detail").textContent = error.detail || String(error.message || error);
    $("banner").className = kind === "info" ? "banner info" : "banner";
    $("banner").hidden = false;
    bannerSource = source;
  }

  function clearBanner(source) {
    if (source === undefined || bannerSource === source) {
      $("banner").hidden = true;
      bannerSource = null;
    }
  }

  // ---- charts -----------------------------------------------------------------------------------

  const colourCache = new Map();
  function colourOf(name) {
    // The same model gets the same colour in every chart, so P95, P99 and throughput line up.
    if (!colourCache.has(name)) {
      let h = 0;
      for (const ch of name) h = (h * 31 + ch.codePointAt(0)) >>> 0;
      let index = h % PALETTE.length;
      const used = new Set(colourCache.values());
      for (let i = 0; i < PALETTE.length && used.has(PALETTE[index]); i += 1) index = (index + 1) % PALETTE.length;
      colourCache.set(name, PALETTE[index]);
    }
    return colourCache.get(name);
  }

  function groupName(group, fallback) {
    const values = Object.entries(group || {}).map(([k, v]) => (Object.keys(group).length > 1 ? `${k}=${v}` : String(v)));
    return values.length ? values.join(", ") : fallback;
  }

  function niceStep(range, targetTicks) {
    const raw = range / Math.max(1, targetTicks);
    const mag = 10 ** Math.floor(Math.log10(raw));
    const norm = raw / mag;
    const nice = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10; // 1-2-5: labels stay short
    return nice * mag;
  }

  const TIME_STEPS_S = [10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];

  const hover = new WeakMap(); // chart container -> last pointer position, kept across redraws

  function nearestIndex(values, t) {
    let lo = 0;
    let hi = values.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (values[mid][0] < t) lo = mid;
      else hi = mid;
    }
    return Math.abs(values[lo][0] - t) <= Math.abs(values[hi][0] - t) ? lo : hi;
  }

  // series: [{name, values: [[unix_s, value|null], ...]}]; opts: {format, yMax, nowS, fallbackName}
  function lineChart(container, series, opts) {
    // Drawn at the container's real width (1 SVG unit = 1 px), so labels keep their size.
    const W = Math.max(320, Math.round(container.clientWidth || 520));
    const H = 200;
    const M = { top: 10, right: 14, bottom: 24, left: 58 };
    const withData = series
      .map((s) => ({ ...s, values: (s.values || []).filter((p) => Array.isArray(p) && isNum(p[0])) }))
      .filter((s) => s.values.some((p) => isNum(p[1])));
    container.replaceChildren();
    if (!withData.length) {
      container.append(el("div", { class: "empty no-data", text: `${NO_DATA} in the last hour` }));
      return;
    }
    let minT = Infinity;
    let maxV = 0;
    let minV = 0;
    for (const s of withData) {
      for (const [t, v] of s.values) {
        minT = Math.min(minT, t);
        if (isNum(v)) {
          maxV = Math.max(maxV, v);
          minV = Math.min(minV, v);
        }
      }
    }
    const nowS = Math.max(opts.nowS, ...withData.map((s) => s.values[s.values.length - 1][0]));
    // Young data is not squeezed into the right edge of an hour: the axis starts at the first
    // sample, and spans at least five minutes.
    const t0 = Math.min(Math.max(nowS - SINCE_S, minT), nowS - 300);
    const t1 = nowS;
    let yMax = opts.yMax !== undefined ? Math.max(opts.yMax, maxV) : maxV;
    if (yMax <= minV) yMax = minV + 1;
    const yStep = niceStep(yMax - minV, 4);
    yMax = Math.ceil(yMax / yStep) * yStep;
    const yMin = Math.floor(minV / yStep) * yStep;
    const pw = W - M.left - M.right;
    const ph = H - M.top - M.bottom;
    const x = (t) => M.left + ((t - t0) / (t1 - t0)) * pw;
    const y = (v) => M.top + ph - ((v - yMin) / (yMax - yMin)) * ph;

    const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": opts.label || "chart" });
    const yAxis = svg("g", { class: "axis y-axis" });
    for (let v = yMin; v <= yMax + yStep / 2; v += yStep) {
      yAxis.append(svg("line", { class: "gridline", x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
      yAxis.append(svg("text", { x: M.left - 6, y: y(v) + 3, "text-anchor": "end" }, opts.format(v)));
    }
    const xAxis = svg("g", { class: "axis x-axis" });
    xAxis.append(svg("line", { x1: M.left, x2: W - M.right, y1: M.top + ph, y2: M.top + ph }));
    const tStep = TIME_STEPS_S.find((s) => (t1 - t0) / s <= 6) || 3600;
    for (let t = Math.ceil(t0 / tStep) * tStep; t <= t1; t += tStep) {
      xAxis.append(svg("line", { x1: x(t), x2: x(t), y1: M.top + ph, y2: M.top + ph + 4 }));
      xAxis.append(svg("text", { x: x(t), y: H - 6, "text-anchor": "middle" }, fmtClock(t * 1000, tStep < 60)));
    }
    root.append(yAxis, xAxis);

    const lines = svg("g", { class: "lines" });
    const legend = el("ul", { class: "legend" });
    for (const s of withData) {
      const colour = colourOf(s.name);
      let d = "";
      let pen = false;
      let points = 0;
      for (const [t, v] of s.values) {
        if (!isNum(v)) {
          pen = false; // a gap in the data is a gap in the line, not a drop to zero
          continue;
        }
        d += `${pen ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
        points += 1;
      }
      lines.append(svg("path", { class: "series-line", d, stroke: colour, "data-series": s.name, "data-points": points }));
      if (points <= 40) {
        for (const [t, v] of s.values) {
          if (isNum(v)) lines.append(svg("circle", { class: "point", cx: x(t), cy: y(v), r: 2.2, fill: colour }));
        }
      }
      const last = [...s.values].reverse().find((p) => isNum(p[1]));
      legend.append(
        el("li", {}, [
          el("span", { class: "swatch", "data-colour": colour }),
          el("span", { text: `${s.name} ` }),
          el("span", { class: "muted", text: last ? opts.format(last[1]) : NO_DATA }),
        ]),
      );
    }
    for (const sw of legend.querySelectorAll(".swatch")) sw.style.background = sw.dataset.colour;
    root.append(lines);

    const cursor = svg("line", { class: "cursor", y1: M.top, y2: M.top + ph, visibility: "hidden" });
    // The whole chart answers the pointer (times clamp to the plot), not just the plot's inside.
    const overlay = svg("rect", { x: 0, y: 0, width: W, height: H, fill: "transparent" });
    root.append(cursor, overlay);

    const tooltip = $("tooltip");
    const showAt = (clientX, clientY) => {
      const box = root.getBoundingClientRect();
      if (!box.width) return;
      const sx = ((clientX - box.left) / box.width) * W;
      const t = t0 + ((Math.min(Math.max(sx, M.left), M.left + pw) - M.left) / pw) * (t1 - t0);
      const rows = [];
      let at = null;
      for (const s of withData) {
        const p = s.values[nearestIndex(s.values, t)];
        if (at === null || Math.abs(p[0] - t) < Math.abs(at - t)) at = p[0];
        rows.push({ name: s.name, t: p[0], v: p[1] });
      }
      cursor.setAttribute("x1", x(at));
      cursor.setAttribute("x2", x(at));
      cursor.setAttribute("visibility", "visible");
      const nodes = [el("div", { class: "row", text: fmtClock(at * 1000) })];
      rows.sort((a, b) => (isNum(b.v) ? b.v : -Infinity) - (isNum(a.v) ? a.v : -Infinity));
      for (const r of rows) {
        const sw = el("span", { class: "swatch" });
        sw.style.cssText = `display:inline-block;width:8px;height:8px;background:${colourOf(r.name)}`;
        nodes.push(el("div", { class: "row" }, [sw, el("span", { text: `${r.name}: ${isNum(r.v) ? opts.format(r.v) : NO_DATA}` })]));
      }
      tooltip.replaceChildren(...nodes);
      tooltip.hidden = false;
      const left = Math.min(clientX + 14, window.innerWidth - tooltip.offsetWidth - 8);
      tooltip.style.left = `${Math.max(4, left)}px`;
      tooltip.style.top = `${clientY + 14}px`;
    };
    overlay.addEventListener("mousemove", (ev) => {
      hover.set(container, { x: ev.clientX, y: ev.clientY });
      showAt(ev.clientX, ev.clientY);
    });
    overlay.addEventListener("mouseleave", () => {
      hover.delete(container);
      cursor.setAttribute("visibility", "hidden");
      tooltip.hidden = true;
    });
    container.append(root, legend);
    const last = hover.get(container);
    if (last) showAt(last.x, last.y); // a redraw under the pointer keeps its tooltip
  }

  function chartError(container, error) {
    container.replaceChildren(el("div", { class: "empty error-text", text: `${error.title}: ${error.detail}` }));
  }

  // ---- series requests --------------------------------------------------------------------------

  function seriesPath(metric, fn, extra) {
    const params = new URLSearchParams({ metric, fn, window: "1m", since: String(SINCE_S), step: String(STEP_S), ...extra });
    return `/v1/telemetry/series?${params}`;
  }

  const CHARTS = [
    {
      id: "chart-p95",
      path: seriesPath("hearth_model_request_duration_seconds", "quantile", { q: "0.95", by: "model" }),
      format: fmtSeconds,
    },
    {
      id: "chart-p99",
      path: seriesPath("hearth_model_request_duration_seconds", "quantile", { q: "0.99", by: "model" }),
      format: fmtSeconds,
    },
    { id: "chart-throughput", path: seriesPath("hearth_model_requests_total", "rate", { by: "model" }), format: fmtRate },
    { id: "chart-routes", path: seriesPath("hearth_http_requests_total", "rate", { by: "route" }), format: fmtRate },
    { id: "chart-cpu", path: seriesPath("hearth_host_cpu_percent", "gauge", {}), format: fmtPercent, yMax: 100, fallbackName: "host" },
  ];
  const GPU_CHART = {
    id: "chart-gpu",
    path: seriesPath("hearth_gpu_utilization_percent", "gauge", { by: "gpu" }),
    format: fmtPercent,
    yMax: 100,
    prefix: "GPU ",
    fallbackName: "all",
  };

  async function drawChart(chart, nowS) {
    const container = $(chart.id).querySelector(".chart");
    try {
      const body = await api(chart.path);
      const series = (body && Array.isArray(body.points) ? body.points : []).map((p) => ({
        name: `${chart.prefix || ""}${groupName(p.group, chart.fallbackName || "all")}`,
        values: p.values || [],
      }));
      lineChart(container, series, { format: chart.format, yMax: chart.yMax, nowS, label: $(chart.id).querySelector("figcaption").textContent });
      return null;
    } catch (error) {
      chartError(container, error);
      return error;
    }
  }

  function drawNoGpu(reason) {
    const container = $("chart-gpu").querySelector(".chart");
    container.replaceChildren(
      el("div", { class: "no-gpu", id: "no-gpu" }, [el("strong", { text: "No GPU: " }), el("span", { text: reason || "none reported" })]),
    );
  }

  // ---- overview sections ------------------------------------------------------------------------

  function renderHealth(components) {
    const list = $("health");
    const counts = { ok: 0, degraded: 0, down: 0 };
    list.replaceChildren(
      ...components.map((c) => {
        const status = ["ok", "degraded", "down"].includes(c.status) ? c.status : "down";
        counts[status] += 1;
        return el("li", { class: `component status-${status}`, title: c.detail || c.status, "data-status": status, "data-name": c.name }, [
          el("span", { class: "name", text: c.name }),
          el("span", { class: "muted", text: ` ${c.kind || ""} ` }),
          badge(status),
          el("span", { class: "detail", text: c.detail || "" }),
        ]);
      }),
    );
    if (!components.length) list.append(el("li", { class: "no-data", text: "no components reported" }));
    const parts = [];
    if (counts.down) parts.push(`${counts.down} down`);
    if (counts.degraded) parts.push(`${counts.degraded} degraded`);
    parts.push(`${counts.ok} ok`);
    $("health-summary").textContent = parts.join(", ");
  }

  function renderScrapeErrors(errors) {
    const entries = Object.entries(errors || {});
    const box = $("scrape-errors");
    box.hidden = !entries.length;
    box.replaceChildren(
      el("strong", { text: `Metrics not scraped (${entries.length}): ` }),
      ...entries.map(([target, reason]) => el("span", { class: "scrape-error", "data-target": target, text: `${target}: ${reason}` })),
    );
  }

  function silenceMatchers(alert) {
    const matchers = [{ label: "alertname", op: "=", value: alert.alertname }];
    for (const [label, value] of Object.entries(alert.labels || {})) {
      if (label !== "alertname" && label !== "severity") matchers.push({ label, op: "=", value: String(value) });
    }
    return matchers;
  }

  async function silence(alert, button) {
    button.disabled = true;
    try {
      await api("/v1/alerts/silences", {
        method: "POST",
        body: { matchers: silenceMatchers(alert), duration_s: 3600, comment: "silenced for 1 h from the dashboard" },
      });
      showBanner({ title: "Silenced", detail: `${alert.alertname} for 1 h` }, "action", "info");
      refreshSoon();
    } catch (error) {
      button.disabled = false;
      showBanner(error, "action");
    }
  }

  function renderAlerts(all) {
    const box = $("alerts");
    const alerts = all.filter((a) => a.state !== "resolved"); // resolved ones are history, not news
    const sorted = [...alerts].sort(
      (a, b) =>
        (SEVERITY_ORDER[a.severity] ?? 3) - (SEVERITY_ORDER[b.severity] ?? 3) ||
        (a.state === "firing" ? 0 : 1) - (b.state === "firing" ? 0 : 1) ||
        String(a.alertname).localeCompare(String(b.alertname)),
    );
    const firing = alerts.filter((a) => a.state === "firing" && !a.silenced).length;
    $("alerts-summary").textContent = alerts.length ? `${firing} firing, ${alerts.length} in all` : "";
    if (!sorted.length) {
      box.replaceChildren(el("div", { class: "all-clear", text: "No active alerts" }));
      return;
    }
    box.replaceChildren(
      ...sorted.map((a) => {
        const button = el("button", { type: "button", class: "silence", text: a.silenced ? "silenced" : "Silence 1h" });
        if (a.silenced) button.disabled = true;
        else button.addEventListener("click", () => silence(a, button));
        const labels = Object.entries(a.labels || {})
          .filter(([k]) => k !== "alertname" && k !== "severity") // shown already as title and badge
          .map(([k, v]) => el("span", { class: "label mono", text: `${k}=${v}` }));
        const when = a.state === "firing" ? `firing since ${fmtWhen(a.fired_at)}` : `pending since ${fmtWhen(a.started_at)}`;
        return el("div", { class: `alert sev-${a.severity}${a.silenced ? " is-silenced" : ""}`, "data-alertname": a.alertname, "data-fingerprint": a.fingerprint }, [
          el("div", {}, [badge(a.severity || "info", a.severity), el("div", {}, [badge(a.state, a.state, a.severity)])]),
          el("div", {}, [
            el("div", { class: "title", text: a.alertname }),
            el("div", { text: a.summary || "" }),
            el("div", { class: "muted" }, [
              el("span", { text: "value " }),
              valueNode(a.value, (v) => fmtNumber(v, 3)),
              el("span", { text: ` · ${when}${a.silenced ? " · silenced" : ""}` }),
            ]),
            el("div", { class: "labels" }, labels),
          ]),
          button,
        ]);
      }),
    );
  }

  function meter(used, total) {
    const bar = el("div", { class: "meter" });
    if (isNum(used) && isNum(total) && total > 0) {
      const share = Math.min(1, used / total);
      const fill = el("span", { class: share > 0.95 ? "full" : share > 0.8 ? "high" : "" });
      fill.style.width = `${(share * 100).toFixed(1)}%`;
      bar.append(fill);
    }
    return bar;
  }

  function stat(label, value, format, extra) {
    const shown = valueNode(value, format, "div");
    shown.classList.add("v");
    return el("div", { class: "stat" }, [el("div", { class: "k", text: label }), shown, extra]);
  }

  function usage(used, total) {
    if (!isNum(used)) return null;
    return isNum(total) ? `${fmtBytes(used)} of ${fmtBytes(total)}` : fmtBytes(used);
  }

  function renderHost(host, gpu) {
    const h = host || {};
    const memory = stat("Memory", usage(h.memory_used_bytes, h.memory_total_bytes), String, meter(h.memory_used_bytes, h.memory_total_bytes));
    const disk = stat("Disk", usage(h.disk_used_bytes, h.disk_total_bytes), String, meter(h.disk_used_bytes, h.disk_total_bytes));
    const cpu = stat("CPU", h.cpu_percent, fmtPercent, meter(h.cpu_percent, 100));
    const rx = stat("Network in", h.network_rx_bytes_per_s, fmtByteRate);
    const tx = stat("Network out", h.network_tx_bytes_per_s, fmtByteRate);
    $("host").replaceChildren(cpu, memory, disk, rx, tx);

    const devices = $("gpu-devices");
    if (gpu && gpu.status === "present") {
      devices.replaceChildren(
        ...(gpu.devices || []).map((d) =>
          el("div", { class: "stat gpu" }, [
            el("div", { class: "k", text: `GPU ${d.index}: ${d.name || ""}` }),
            el("div", { class: "v" }, [valueNode(d.utilization_percent, fmtPercent)]),
            el("div", { class: "muted", text: `memory ${usage(d.memory_used_bytes, d.memory_total_bytes) || NO_DATA}` }),
            meter(d.memory_used_bytes, d.memory_total_bytes),
            el("div", { class: "muted" }, [
              valueNode(d.power_watts, (w) => `${fmtNumber(w, 0)} W`),
              el("span", { text: " · " }),
              valueNode(d.temperature_celsius, (c) => `${fmtNumber(c, 0)} °C`),
            ]),
          ]),
        ),
      );
    } else {
      devices.replaceChildren(
        el("div", { class: "stat" }, [
          el("div", { class: "k", text: "GPU" }),
          el("div", { class: "muted", text: `none: ${(gpu && gpu.reason) || "not reported"}` }),
        ]),
      );
    }
  }

  function renderModels(models) {
    const body = $("models").tBodies[0];
    body.replaceChildren(
      ...models.map((m) => {
        const row = el("tr", { "data-model": m.name, class: isNum(m.errors) && m.errors > 0 ? "bad" : undefined }, [
          td(m.name),
          el("td", {}, [badge(m.state || NO_DATA, m.state || "neutral")]),
          td(m.version),
          td(m.variant),
          td(m.device),
          td(m.memory_mb, fmtMb, "num"),
          td(m.requests, fmtCount, "num"),
          td(m.errors, fmtCount, "num"),
          td(m.p95_ms, fmtMs, "num"),
          td(m.p99_ms, fmtMs, "num"),
          td(m.queue_ms, fmtMs, "num"),
          td(m.compute_ms, fmtMs, "num"),
          td(m.batch_size, (b) => fmtNumber(b), "num"),
        ]);
        return row;
      }),
    );
    if (!models.length) body.append(el("tr", {}, [el("td", { colspan: 13, class: "no-data", text: "no models" })]));
  }

  function renderRoutes(routes) {
    const body = $("routes").tBodies[0];
    body.replaceChildren(
      ...routes.map((r) =>
        el("tr", { "data-route": r.route, class: isNum(r.errors) && r.errors > 0 ? "bad" : undefined }, [
          td(r.route),
          td(r.method),
          td(r.requests, fmtCount, "num"),
          td(r.errors, fmtCount, "num"),
          td(r.p95_ms, fmtMs, "num"),
        ]),
      ),
    );
    if (!routes.length) body.append(el("tr", {}, [el("td", { colspan: 5, class: "no-data", text: "no requests" })]));
  }

  function renderWorkflows(workflows) {
    const body = $("workflows").tBodies[0];
    body.replaceChildren(
      ...workflows.map((w) => {
        const low = isNum(w.success_rate) && w.success_rate < 0.95;
        return el("tr", { "data-workflow": w.workflow, class: low ? "bad" : undefined }, [
          td(w.workflow),
          td(w.runs, fmtCount, "num"),
          td(w.failed, fmtCount, "num"),
          td(w.success_rate, fmtFraction, "num"),
          td(w.p95_s, fmtSeconds, "num"),
        ]);
      }),
    );
    if (!workflows.length) body.append(el("tr", {}, [el("td", { colspan: 5, class: "no-data", text: "no workflow runs" })]));
  }

  let selectedRun = null;

  function renderRuns(runs) {
    const body = $("runs").tBodies[0];
    body.replaceChildren(
      ...runs.map((r) => {
        const open = el("button", { type: "button", class: "run-link", text: r.workflow_id });
        open.addEventListener("click", () => openRun(r));
        return el("tr", { "data-run": r.workflow_id, class: r.workflow_id === selectedRun ? "selected" : r.status === "failed" ? "bad" : undefined }, [
          el("td", {}, [open]),
          td(r.workflow),
          el("td", {}, [
            badge(r.status || NO_DATA, r.status || "neutral"),
            r.failed_step ? el("span", { class: "muted", text: ` at step ${r.failed_step}` }) : null,
          ]),
          td(toMs(r.started_at) === null ? null : fmtWhen(r.started_at)),
          td(r.duration_ms, fmtMs, "num"),
          td(r.trace_id ? r.trace_id.slice(0, 12) : null, undefined, "mono"),
        ]);
      }),
    );
    if (!runs.length) body.append(el("tr", {}, [el("td", { colspan: 6, class: "no-data", text: "no recent runs" })]));
  }

  // ---- run drill-down ---------------------------------------------------------------------------

  // rows: [{label, sub, startMs, endMs, depth, cls, title}] drawn as bars on one time axis.
  function waterfall(rows, caption, width) {
    const starts = rows.map((r) => r.startMs).filter(isNum);
    const ends = rows.map((r) => r.endMs ?? r.startMs).filter(isNum);
    if (!starts.length) return el("p", { class: "no-data", text: `${NO_DATA}: no ${caption} with times` });
    const t0 = Math.min(...starts);
    const t1 = Math.max(t0 + 1, ...ends);
    const W = Math.max(600, Math.round(width || 900));
    const labelW = Math.min(360, Math.round(W * 0.3));
    const durW = 80;
    const rowH = 20;
    const axisH = 18;
    const pw = W - labelW - durW;
    const H = axisH + rows.length * rowH + 4;
    const x = (ms) => labelW + ((ms - t0) / (t1 - t0)) * pw;
    const root = svg("svg", { class: "waterfall", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": caption });
    const step = niceStep(t1 - t0, 5);
    for (let ms = 0; ms <= t1 - t0 + 1e-6; ms += step) {
      root.append(svg("line", { class: "gridline", x1: x(t0 + ms), x2: x(t0 + ms), y1: axisH - 4, y2: H, stroke: "#eef0f3" }));
      root.append(svg("text", { class: "dur", x: x(t0 + ms), y: 11, "text-anchor": "middle" }, fmtMs(ms)));
    }
    rows.forEach((r, i) => {
      const top = axisH + i * rowH;
      if (i % 2 === 0) root.append(svg("rect", { class: "row-bg", x: 0, y: top, width: W, height: rowH }));
      const indent = 4 + (r.depth || 0) * 12;
      const room = Math.max(8, Math.floor((labelW - indent - 8) / 6.5)); // ~6.5 px a character at 11 px
      const text = r.label.length > room ? `${r.label.slice(0, room - 1)}…` : r.label;
      const label = svg("text", { x: indent, y: top + 14 }, text);
      label.append(svg("title", {}, r.title ? `${r.label}: ${r.title}` : r.label));
      root.append(label);
      if (isNum(r.startMs)) {
        const end = isNum(r.endMs) ? r.endMs : t1;
        const bar = svg("rect", {
          class: `bar ${r.cls || ""}`,
          x: x(r.startMs),
          y: top + 4,
          width: Math.max(2, x(end) - x(r.startMs)),
          height: rowH - 8,
          rx: 2,
          "data-name": r.label,
        });
        bar.append(svg("title", {}, `${r.title || r.label}: ${isNum(r.durationMs) ? fmtMs(r.durationMs) : "running"}`));
        root.append(bar);
      }
      root.append(svg("text", { class: "dur", x: W - 4, y: top + 14, "text-anchor": "end" }, isNum(r.durationMs) ? fmtMs(r.durationMs) : NO_DATA));
    });
    return root;
  }

  function stepRows(steps) {
    return steps.map((s) => {
      const startMs = toMs(s.started_at);
      const endMs = toMs(s.finished_at);
      const dur = isNum(s.duration_ms) ? s.duration_ms : isNum(startMs) && isNum(endMs) ? endMs - startMs : null;
      return { label: `${s.id} (${s.type})`, startMs, endMs, durationMs: dur, cls: `step-${s.status}`, title: s.reason || s.status };
    });
  }

  function stepsTable(steps) {
    const table = el("table", { class: "grid steps" }, [
      el("thead", {}, [
        el("tr", {}, ["Step", "Type", "Status", "Started", "Duration", "Attempts", "Error / reason"].map((h) => el("th", { text: h }))),
      ]),
    ]);
    const body = el("tbody");
    for (const s of steps) {
      const problem = s.error ? [s.error.code, s.error.detail || s.error.message].filter(Boolean).join(": ") : s.reason;
      body.append(
        el("tr", { class: s.status === "failed" ? "bad" : undefined, "data-step": s.id }, [
          td(s.id),
          td(s.type),
          el("td", {}, [badge(s.status || NO_DATA, s.status || "neutral")]),
          td(s.started_at ? fmtWhen(s.started_at) : null),
          td(s.duration_ms, fmtMs, "num"),
          td(s.attempts, fmtCount, "num"),
          el("td", { class: s.error ? "error-text" : "muted", text: problem || "" }),
        ]),
      );
    }
    table.append(body);
    return table;
  }

  function spanRows(spans) {
    const byId = new Map(spans.map((s) => [s.span_id, s]));
    const children = new Map();
    const roots = [];
    for (const s of spans) {
      if (s.parent_id && byId.has(s.parent_id)) {
        if (!children.has(s.parent_id)) children.set(s.parent_id, []);
        children.get(s.parent_id).push(s);
      } else roots.push(s);
    }
    const byStart = (a, b) => (toMs(a.start) ?? 0) - (toMs(b.start) ?? 0);
    const rows = [];
    const seen = new Set();
    const walk = (span, depth) => {
      if (seen.has(span.span_id)) return; // a malformed trace with a cycle must not hang the page
      seen.add(span.span_id);
      const startMs = toMs(span.start);
      const endMs = toMs(span.end);
      rows.push({
        label: `${span.service ? `${span.service}: ` : ""}${span.name}`,
        startMs,
        endMs,
        durationMs: isNum(span.duration_ms) ? span.duration_ms : isNum(startMs) && isNum(endMs) ? endMs - startMs : null,
        depth,
        cls: span.status === "error" ? "error" : "",
        title: `${span.name} [${span.status || "unset"}] ${Object.entries(span.attributes || {})
          .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`)
          .join(" ")}`,
      });
      for (const child of (children.get(span.span_id) || []).sort(byStart)) walk(child, depth + 1);
    };
    for (const r of roots.sort(byStart)) walk(r, 0);
    return rows;
  }

  async function openRun(summary) {
    selectedRun = summary.workflow_id;
    for (const row of $("runs").tBodies[0].rows) row.classList.toggle("selected", row.dataset.run === selectedRun);
    const panel = $("run-detail");
    panel.hidden = false;
    $("run-title").textContent = summary.workflow_id;
    $("run-meta").textContent = "loading…";
    $("run-error").hidden = true;
    $("run-steps").replaceChildren();
    $("run-trace").replaceChildren();
    $("trace-id").textContent = summary.trace_id || "";
    const [run, trace] = await Promise.allSettled([
      api(`/v1/runs/${encodeURIComponent(summary.workflow_id)}`),
      summary.trace_id ? api(`/v1/traces/${encodeURIComponent(summary.trace_id)}`) : Promise.resolve(null),
    ]);
    if (selectedRun !== summary.workflow_id) return; // another run was clicked meanwhile
    if (run.status === "fulfilled" && run.value) {
      const r = run.value;
      const version = r.definition_version ? ` v${r.definition_version}` : "";
      $("run-meta").textContent = `${r.workflow || summary.workflow || ""}${version} · ${r.status} · tenant ${r.tenant || NO_DATA} · started ${fmtWhen(r.started_at)}${r.closed_at ? ` · closed ${fmtWhen(r.closed_at)}` : ""}`;
      if (r.error) {
        $("run-error").textContent = [r.error.code, r.error.detail || r.error.message].filter(Boolean).join(": ") || JSON.stringify(r.error);
        $("run-error").hidden = false;
      }
      const steps = (r.progress && r.progress.steps) || [];
      $("run-steps").replaceChildren(
        steps.length ? waterfall(stepRows(steps), "steps", $("run-detail").clientWidth - 26) : el("p", { class: "no-data", text: "no step progress reported" }),
        steps.length ? stepsTable(steps) : "",
      );
    } else {
      const e = run.reason;
      $("run-meta").textContent = "";
      $("run-steps").replaceChildren(el("p", { class: "error-text", text: `${e.title} (${e.status}): ${e.detail}` }));
    }
    if (!summary.trace_id) {
      $("run-trace").replaceChildren(el("p", { class: "no-data", text: "no trace recorded for this run" }));
    } else if (trace.status === "fulfilled" && trace.value) {
      const spans = Array.isArray(trace.value.spans) ? trace.value.spans : [];
      $("run-trace").replaceChildren(
        spans.length ? waterfall(spanRows(spans), "spans", $("run-detail").clientWidth - 26) : el("p", { class: "no-data", text: "the trace has no spans yet" }),
      );
    } else {
      const e = trace.reason || { title: "Trace", status: "", detail: "not found" };
      $("run-trace").replaceChildren(el("p", { class: "error-text", text: `${e.title} (${e.status}): ${e.detail}` }));
    }
  }

  // ---- polling ----------------------------------------------------------------------------------

  let timer = null;
  let running = false;
  let stopped = true;

  function stopPolling() {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  function schedule(ms) {
    if (stopped) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      refresh().catch((error) => showBanner(error));
    }, ms);
  }

  function refreshSoon() {
    schedule(200);
  }

  function authFailed(error) {
    stopPolling();
    showBanner(error);
    $("key-form").hidden = false;
    $("forget-key").hidden = true;
    $("updated").textContent = "not connected";
    if (error.status === 401) {
      try {
        sessionStorage.removeItem(KEY_STORAGE);
      } catch (_) {
        /* storage unavailable: nothing to forget */
      }
    }
  }

  async function refresh() {
    if (running) return;
    running = true;
    try {
      let overview;
      try {
        overview = await api("/v1/telemetry/overview");
      } catch (error) {
        if (error.status === 401 || error.status === 403) {
          authFailed(error);
          return;
        }
        showBanner(error);
        $("updated").textContent = `update failed at ${fmtClock(Date.now())}`;
        return;
      }
      $("content").hidden = false;
      $("key-form").hidden = true;
      $("forget-key").hidden = false;
      const nowS = isNum(overview.generated_at) ? overview.generated_at : Date.now() / 1000;
      renderHealth(overview.components || []);
      renderScrapeErrors(overview.scrape_errors);
      renderAlerts(overview.alerts || []);
      renderHost(overview.host, overview.gpu);
      renderModels(overview.models || []);
      renderRoutes(overview.routes || []);
      renderWorkflows(overview.workflows || []);
      renderRuns(overview.recent_runs || []);
      const charts = [...CHARTS];
      if (overview.gpu && overview.gpu.status === "present") charts.push(GPU_CHART);
      else drawNoGpu(overview.gpu && overview.gpu.reason);
      const errors = (await Promise.all(charts.map((c) => drawChart(c, nowS)))).filter(Boolean);
      if (errors.length) showBanner(errors[0]);
      else clearBanner("poll");
      $("updated").textContent = `updated ${fmtClock(nowS * 1000)} · every ${POLL_MS / 1000} s`;
      document.body.dataset.loaded = String(Date.now()); // lets a test wait for a complete round
    } finally {
      running = false;
      schedule(POLL_MS);
    }
  }

  function start() {
    stopped = false;
    clearBanner();
    refresh().catch((error) => showBanner(error));
  }

  // ---- wiring -----------------------------------------------------------------------------------

  window.addEventListener("unhandledrejection", (ev) => {
    // Nothing of ours should reach here; if something does, it goes to the banner, not the console.
    ev.preventDefault();
    const r = ev.reason || {};
    showBanner({ title: r.title || "Unexpected error", status: r.status, detail: r.detail || String(r.message || r) });
  });

  document.addEventListener("DOMContentLoaded", () => {
    $("banner-close").addEventListener("click", () => clearBanner());
    $("key-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const key = $("api-key").value.trim();
      if (!key) return;
      try {
        sessionStorage.setItem(KEY_STORAGE, key);
      } catch (_) {
        showBanner({ title: "Storage unavailable", detail: "the key is kept in sessionStorage; allow it for this page" });
        return;
      }
      $("api-key").value = "";
      // An admin key also opens a codec session: an HttpOnly cookie for /v1/codec, so the Temporal
      // UI shows decrypted payloads (README "Encrypted workflow payloads"). Other keys get a 403.
      api("/v1/codec/session", { method: "POST" }).catch(() => undefined);
      start();
    });
    $("forget-key").addEventListener("click", () => {
      api("/v1/codec/session", { method: "DELETE" }).catch(() => undefined);
      try {
        sessionStorage.removeItem(KEY_STORAGE);
      } catch (_) {
        /* nothing stored */
      }
      stopPolling();
      $("content").hidden = true;
      $("key-form").hidden = false;
      $("forget-key").hidden = true;
      $("updated").textContent = "not connected";
    });
    if (apiKey()) start();
  });
})();
