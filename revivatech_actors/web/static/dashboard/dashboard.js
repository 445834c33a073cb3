// The RevivaTech analytics dashboard: plain ES, no build step, no library.
//
// Everything shown comes from open ingest (page URLs, fingerprints, step names are whatever a
// visitor's browser sent), so data reaches the page only as text: textContent and text nodes,
// never innerHTML; attributes are set only under fixed names with values computed here.
"use strict";

(() => {
  // The admin token lives in this tab only (sessionStorage), never in the page's URL.
  const TOKEN_KEY = "revivatech.adminToken";
  // Relative to the page, so the dashboard also works behind a path prefix.
  const API = new URL("api/analytics/", document.baseURI);
  const ACTORS_EVERY_MS = 5000;
  const RECENT_EVERY_MS = 30000;
  const MODELS_EVERY_MS = 60000;
  const MODEL_NAMES = { lead_scoring: "Lead", churn_prediction: "Churn risk" };
  const RECONNECT_MAX_MS = 30000;

  const $ = (id) => document.getElementById(id);
  const numberFormat = new Intl.NumberFormat("en");
  const timeFormat = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
    dateStyle: "medium",
    timeStyle: "short",
  });

  const state = {
    token: null, // null: rely on the main app's `token` cookie, if any
    signedIn: false,
    ws: null,
    reconnectDelay: 1000,
    reconnectTimer: null,
    actorsTimer: null,
    modelsTimer: null,
    recentTimer: null,
    lookup: 0, // the latest visitor lookup; an older one's answer is dropped
  };

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // --- building DOM from data, as text only -------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    return node;
  }

  function show(node, visible) {
    node.hidden = !visible;
  }

  function message(node, text, kind) {
    node.textContent = text || "";
    node.classList.toggle("error", kind === "error");
    show(node, Boolean(text));
  }

  function formatNumber(value) {
    return typeof value === "number" && Number.isFinite(value) ? numberFormat.format(value) : "–";
  }

  function formatPercent(share, digits = 1) {
    return typeof share === "number" ? `${(share * 100).toFixed(digits)} %` : "–";
  }

  function formatSeconds(seconds) {
    if (typeof seconds !== "number") return "–";
    if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
    if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
    if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
    return `${(seconds / 86400).toFixed(1)} d`;
  }

  function formatTime(iso) {
    const date = iso ? new Date(iso) : null;
    return date && !Number.isNaN(date.getTime()) ? dateTimeFormat.format(date) : "–";
  }

  function clockTime(iso) {
    const date = iso ? new Date(iso) : new Date();
    return Number.isNaN(date.getTime()) ? "–" : timeFormat.format(date);
  }

  // A horizontal bar: a track with a fill whose width is a share (CSSOM, allowed by the CSP).
  function bar(share, className) {
    const track = el("span", `bar ${className || ""}`.trim());
    const fill = el("span", "bar-fill");
    fill.style.width = `${Math.max(0, Math.min(1, share)) * 100}%`;
    track.append(fill);
    return track;
  }

  // --- the API --------------------------------------------------------------------------------

  async function api(path, params) {
    const url = new URL(path, API);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    let response;
    try {
      response = await fetch(url, { headers, credentials: "same-origin", cache: "no-store" });
    } catch (_error) {
      throw new ApiError(0, "network", "The service could not be reached.");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_error) {
      body = null;
    }
    if (!response.ok) {
      const text = body && typeof body.message === "string" ? body.message : response.statusText;
      const error = new ApiError(response.status, body && body.error, text);
      if (response.status === 401 || response.status === 403) refused(error);
      throw error;
    }
    return body;
  }

  // A fingerprint as one path segment; "." and ".." would be resolved away by the URL parser.
  function segment(text) {
    if (text === "." || text === "..") return null;
    return encodeURIComponent(text);
  }

  // --- signing in and out ---------------------------------------------------------------------

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch (_error) {
      return null;
    }
  }

  function keepToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_error) {
      // storage disabled: the token lasts as long as the page
    }
  }

  function showSignIn(text) {
    stopLive();
    state.signedIn = false;
    show($("dashboard"), false);
    show($("nav"), false);
    show($("session"), false);
    show($("signin"), true);
    message($("signin-message"), text, "error");
    $("token").value = "";
    $("token").focus();
  }

  // A 401 or 403 from any call: the credential is no longer good enough.
  function refused(error) {
    if (!state.signedIn) return;
    keepToken(null);
    state.token = null;
    const why =
      error.status === 403
        ? "This credential is not an admin's (403): sign in with an admin token."
        : "The service refused the credential (401): it is wrong or has expired. Sign in again.";
    showSignIn(why);
  }

  // Checks a credential (the token, or the cookie when token is null) with one admin call.
  async function trySignIn(token) {
    state.token = token;
    state.signedIn = false;
    try {
      const answer = await api("actors");
      return { ok: true, actors: answer };
    } catch (error) {
      return { ok: false, error };
    }
  }

  function enterDashboard(actors) {
    state.signedIn = true;
    show($("signin"), false);
    show($("dashboard"), true);
    show($("nav"), true);
    show($("session"), true);
    $("sign-out").textContent = state.token ? "Sign out" : "Use a token";
    renderActors(actors);
    startLive();
    loadFunnel();
    loadRecent();
    loadModels();
  }

  async function start() {
    const saved = storedToken();
    // Without a saved token, the main app's `token` cookie may sign us in (the page cannot
    // read it: it is tried by making one call without a token).
    const attempt = await trySignIn(saved || null);
    if (attempt.ok) {
      enterDashboard(attempt.actors);
      return;
    }
    keepToken(null);
    state.token = null;
    const error = attempt.error;
    if (saved && error.status === 401) {
      showSignIn("The saved token was refused (401). Sign in again.");
    } else if (error.status === 403) {
      showSignIn("Your session is not an admin's (403): sign in with an admin token.");
    } else if (error.status === 401) {
      showSignIn("");
    } else {
      showSignIn(`The service could not be asked: ${error.message}`);
    }
  }

  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return;
    message($("signin-message"), "Signing in…");
    const attempt = await trySignIn(token);
    if (attempt.ok) {
      keepToken(token);
      enterDashboard(attempt.actors);
      return;
    }
    state.token = null;
    const status = attempt.error.status;
    const why =
      status === 401
        ? "That token was refused (401): check auth.admin_tokens."
        : status === 403
          ? "That credential is not an admin's (403)."
          : `Could not sign in: ${attempt.error.message}`;
    message($("signin-message"), why, "error");
    $("token").select();
  });

  $("sign-out").addEventListener("click", () => {
    keepToken(null);
    state.token = null;
    showSignIn("");
  });

  // --- the live feed --------------------------------------------------------------------------

  function setLive(text, kind) {
    const pill = $("live-status");
    pill.textContent = text;
    pill.className = `pill ${kind || ""}`.trim();
  }

  function startLive() {
    stopLive();
    connect();
    state.actorsTimer = setInterval(refreshActors, ACTORS_EVERY_MS);
    state.recentTimer = setInterval(loadRecent, RECENT_EVERY_MS);
    state.modelsTimer = setInterval(loadModels, MODELS_EVERY_MS);
  }

  function stopLive() {
    clearInterval(state.actorsTimer);
    clearInterval(state.recentTimer);
    clearInterval(state.modelsTimer);
    clearTimeout(state.reconnectTimer);
    state.actorsTimer = state.recentTimer = state.modelsTimer = state.reconnectTimer = null;
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close(1000);
  }

  function connect() {
    const url = new URL("ws", API);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    // Browsers cannot set a WebSocket's headers: the token goes as ?token= (docs/api.md);
    // without one, the browser sends the `token` cookie itself.
    if (state.token) url.searchParams.set("token", state.token);
    setLive("Connecting…");
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (_error) {
      reconnectLater();
      return;
    }
    state.ws = ws;
    ws.addEventListener("open", () => {
      ws.send(JSON.stringify({ type: "subscribe_realtime" }));
    });
    ws.addEventListener("message", (event) => {
      let received;
      try {
        received = JSON.parse(event.data);
      } catch (_error) {
        return;
      }
      onLiveMessage(received);
    });
    ws.addEventListener("close", () => {
      if (state.ws !== ws) return; // closed on purpose
      state.ws = null;
      reconnectLater();
      // A refused upgrade looks like any close to a page: an admin call tells a bad credential.
      refreshActors();
    });
  }

  function reconnectLater() {
    if (!state.signedIn) return;
    const delay = state.reconnectDelay;
    state.reconnectDelay = Math.min(RECONNECT_MAX_MS, delay * 2);
    setLive(`Offline · retrying in ${Math.round(delay / 1000)} s`, "bad");
    state.reconnectTimer = setTimeout(() => {
      if (state.signedIn) connect();
    }, delay);
  }

  function onLiveMessage(received) {
    if (!received || typeof received !== "object") return;
    if (received.type === "connection_established") {
      state.reconnectDelay = 1000;
      setLive("Live", "good");
    } else if (received.type === "realtime_metrics" && received.data) {
      renderRealtime(received.data);
    } else if (received.type === "error") {
      setLive(`Live · ${String(received.error || "error")}`, "warn");
    }
  }

  // --- realtime overview ----------------------------------------------------------------------

  function renderRealtime(data) {
    const overview = data.overview || {};
    $("kpi-users").textContent = formatNumber(overview.active_users);
    $("kpi-sessions").textContent = formatNumber(overview.active_sessions);
    $("kpi-events").textContent = formatNumber(overview.total_events);
    $("kpi-pageviews").textContent = formatNumber(overview.page_views);
    $("kpi-conversions").textContent = formatNumber(overview.conversions);
    const performance = data.performance || {};
    $("perf-latency").textContent =
      typeof performance.avgResponseTime === "number"
        ? `${performance.avgResponseTime.toFixed(1)} ms`
        : "–";
    $("perf-errors").textContent = formatPercent(performance.errorRate, 2);
    $("perf-uptime").textContent =
      typeof performance.uptime === "number" ? `${performance.uptime.toFixed(2)} %` : "–";
    $("perf-requests").textContent = formatNumber(performance.requests);
    const minutes = typeof data.windowSeconds === "number" ? data.windowSeconds / 60 : null;
    const span = minutes === null ? "the window" : `the last ${formatNumber(minutes)} min`;
    const where = data.source === "redis" ? "every instance" : "this instance";
    $("realtime-meta").textContent = `Over ${span}, ${where} · updated ${clockTime(data.timestamp)}`;
    renderTopPages(Array.isArray(data.topPages) ? data.topPages : []);
    drawSparkline(data.series);
  }

  function renderTopPages(pages) {
    const list = $("top-pages");
    const most = pages.reduce((top, page) => Math.max(top, Number(page.views) || 0), 0);
    list.replaceChildren(
      ...pages.map((page) => {
        const item = el("li", "bar-row");
        const label = el("span", "bar-label", page.page_url);
        label.title = String(page.page_url);
        item.append(label, el("span", "bar-value", formatNumber(page.views)));
        item.append(bar(most ? page.views / most : 0));
        return item;
      }),
    );
    show($("top-pages-empty"), pages.length === 0);
  }

  // The sparkline: events per bucket of the window (10 s each), oldest first, as the feed
  // reports them; the newest bucket is still filling.
  function drawSparkline(series) {
    const width = 320;
    const height = 72;
    const pad = 4;
    const counts = series && Array.isArray(series.events) ? series.events.map(Number) : [];
    const seconds = series && Number(series.bucketSeconds) > 0 ? Number(series.bucketSeconds) : 10;
    const picture = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      preserveAspectRatio: "none",
      role: "img",
      "aria-label": `Events per ${seconds} s over the window`,
      "data-events": counts.join(","),
    });
    if (counts.length > 1) {
      const top = Math.max(1, ...counts);
      const x = (i) => pad + (i / (counts.length - 1)) * (width - 2 * pad);
      const y = (value) => height - pad - (value / top) * (height - 2 * pad);
      const points = counts.map((value, i) => [x(i), y(value)]);
      const line = points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
      const end = points[points.length - 1];
      const area = `M${pad},${height - pad} L${line.replaceAll(" ", " L")} L${end[0].toFixed(1)},${height - pad} Z`;
      $("spark-caption").textContent =
        `events per ${seconds} s over ${formatSeconds(seconds * counts.length)} · ` +
        `highest ${formatNumber(Math.max(...counts))}`;
      picture.append(
        svg("path", { class: "spark-area", d: area }),
        svg("polyline", { class: "spark-line", points: line }),
        svg("circle", { class: "spark-dot", cx: end[0].toFixed(1), cy: end[1].toFixed(1), r: 3 }),
      );
    }
    $("sparkline").replaceChildren(picture);
  }

  // --- the funnel -----------------------------------------------------------------------------

  async function loadFunnel() {
    const form = $("funnel-form");
    const steps = $("funnel-steps")
      .value.split(",")
      .map((step) => step.trim())
      .filter(Boolean)
      .join(",");
    const params = {
      steps,
      window: $("funnel-window").value,
      timeframe: $("funnel-timeframe").value,
    };
    form.setAttribute("aria-busy", "true");
    try {
      const answer = await api("funnel", params);
      message($("funnel-message"), "");
      renderFunnel(answer.data);
    } catch (error) {
      if (error.status !== 401 && error.status !== 403) {
        message($("funnel-message"), error.message, "error");
      }
    } finally {
      form.removeAttribute("aria-busy");
    }
  }

  function renderFunnel(data) {
    const steps = Array.isArray(data.steps) ? data.steps : [];
    const input = $("funnel-steps");
    if (!input.value.trim()) input.value = steps.map((step) => step.step).join(", ");
    const first = steps.length ? steps[0].count : 0;
    $("funnel-steps-list").replaceChildren(
      ...steps.map((step, index) => {
        const item = el("li", "funnel-step");
        const head = el("div", "funnel-head");
        head.append(
          el("span", "funnel-name", step.step),
          el("span", "funnel-count", `${formatNumber(step.count)} visitor${step.count === 1 ? "" : "s"}`),
        );
        item.append(head, bar(first ? step.count / first : 0, "funnel-bar"));
        const notes = [`${formatPercent(step.conversionFromFirst)} of entrants`];
        if (index > 0) {
          notes.push(`${formatPercent(step.conversionFromPrevious)} from the step before`);
          if (typeof step.medianSecondsFromPrevious === "number") {
            notes.push(`median ${formatSeconds(step.medianSecondsFromPrevious)} after it`);
          }
        }
        item.append(el("p", "muted small", notes.join(" · ")));
        return item;
      }),
    );
    const parts = [`${formatTime(data.from)} → ${formatTime(data.to)}`];
    if (typeof data.windowSeconds === "number") {
      parts.push(`window ${formatSeconds(data.windowSeconds)}`);
    }
    if (data.cached) parts.push(`cached, computed ${clockTime(data.computedAt)}`);
    $("funnel-meta").textContent = parts.join(" · ");
  }

  $("funnel-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadFunnel();
  });

  // --- visitor lookup -------------------------------------------------------------------------

  const SCORES = [
    ["engagement", "Engagement"],
    ["lead", "Lead"],
    ["churnRisk", "Churn risk"],
    ["priceSensitivity", "Price sensitivity"],
  ];

  async function lookUp(fingerprint) {
    const lookup = ++state.lookup;
    const visitor = $("visitor");
    const note = $("visitor-message");
    const path = segment(fingerprint);
    if (path === null) {
      show(visitor, false);
      message(note, "This fingerprint cannot be looked up by URL.", "error");
      return;
    }
    message(note, "Looking up…");
    let insights;
    let journey;
    try {
      [insights, journey] = await Promise.all([
        api(`insights/${path}`),
        api(`journey/${path}`, { limit: 100 }),
      ]);
    } catch (error) {
      if (lookup !== state.lookup || error.status === 401 || error.status === 403) return;
      show(visitor, false);
      const text =
        error.code === "unknown_visitor" ? "No events are stored for this visitor." : error.message;
      message(note, text, error.code === "unknown_visitor" ? "" : "error");
      return;
    }
    if (lookup !== state.lookup) return;
    message(note, "");
    renderVisitor(insights.data, journey.data);
    show(visitor, true);
  }

  function fact(list, label, value) {
    const row = el("div");
    row.append(el("dt", null, label), el("dd", null, value));
    list.append(row);
  }

  function renderVisitor(insights, journey) {
    const profile = insights.profile || {};
    const behavior = insights.behavior || {};
    $("visitor-name").textContent = profile.fingerprint;
    $("visitor-segment").textContent = profile.segment || "–";
    $("visitor-stage").textContent = `stage: ${journey.stage || "unknown"}`;
    const facts = $("visitor-facts");
    facts.replaceChildren();
    fact(facts, "Events", formatNumber(profile.totalEvents));
    fact(facts, "Sessions", formatNumber(profile.totalSessions));
    fact(facts, "Page views", formatNumber(profile.totalPageViews));
    fact(facts, "Bookings", `${formatNumber(profile.totalBookings)} of ${formatNumber(profile.bookingsStarted)} started`);
    fact(facts, "Booking value", formatNumber(profile.totalValue));
    fact(facts, "Days active", formatNumber(profile.daysActive));
    fact(facts, "Avg session", formatSeconds(profile.avgSessionSeconds));
    fact(facts, "Pages / session", formatNumber(profile.pagesPerSession));
    fact(facts, "Bounce rate", formatPercent(behavior.bounceRate));
    fact(facts, "Device", behavior.preferredDevice || "–");
    fact(facts, "First seen", formatTime(profile.firstSeen));
    fact(facts, "Last seen", formatTime(profile.lastSeen));
    renderScores(insights.scores || {}, insights.scoreDetails || {});
    renderJourney(journey);
  }

  function renderScores(scores, details) {
    $("visitor-scores").replaceChildren(
      ...SCORES.map(([key, title]) => {
        const card = el("article", "score");
        const value = typeof scores[key] === "number" ? scores[key] : null;
        const head = el("div", "score-head");
        head.append(el("h5", null, title), el("span", "score-value", value === null ? "–" : value.toFixed(0)));
        card.append(head, bar(value === null ? 0 : value / 100, "score-bar"));
        const detail = details[key] || {};
        if (typeof detail.confidence === "number") {
          card.append(el("p", "muted small", `confidence ${formatPercent(detail.confidence, 0)}`));
        }
        const factors = Array.isArray(detail.factors) ? detail.factors : [];
        const most = factors.reduce((top, f) => Math.max(top, Math.abs(Number(f.contribution) || 0)), 0);
        const list = el("ol", "factors");
        for (const factor of factors) {
          const contribution = Number(factor.contribution) || 0;
          const item = el("li", "factor");
          const label = String(factor.name).replaceAll("_", " ");
          const name = el("span", "factor-name", label);
          name.title = label;
          item.append(name);
          // A diverging bar: points added grow right of the middle, points taken grow left.
          const track = el("span", "factor-track");
          const fill = el("span", contribution < 0 ? "factor-fill negative" : "factor-fill");
          fill.style.width = `${most ? (Math.abs(contribution) / most) * 50 : 0}%`;
          track.append(fill);
          const shown = Number(contribution.toFixed(1)) || 0; // no "-0.0"
          const sign = shown > 0 ? "+" : "";
          item.append(track, el("span", "factor-value", `${sign}${shown.toFixed(1)}`));
          list.append(item);
        }
        card.append(list);
        return card;
      }),
    );
  }

  // The fields a touchpoint always has; any other is an explicit step's own, shown as text.
  const TOUCHPOINT_FIELDS = new Set(["type", "page", "at", "timeSpentSeconds", "step", "time_spent_seconds"]);

  function renderJourney(journey) {
    const sessions = Array.isArray(journey.sessions) ? journey.sessions.slice().reverse() : [];
    const touches = [];
    if (journey.firstTouch) touches.push(`first touch ${journey.firstTouch}`);
    if (journey.lastTouch) touches.push(`last touch ${journey.lastTouch}`);
    const count = journey.totalSessions;
    touches.unshift(`${formatNumber(count)} session${count === 1 ? "" : "s"}, newest first`);
    $("journey-meta").textContent = touches.join(" · ");
    $("journey-sessions").replaceChildren(
      ...sessions.map((session) => {
        const item = el("li", "session-item");
        const head = el("div", "session-head");
        head.append(
          el("span", "session-id", session.sessionId),
          el("span", "badge stage", session.stage || "no stage"),
          el("span", "muted small", formatTime(session.startedAt)),
        );
        const list = el("ol", "touchpoints");
        for (const touch of Array.isArray(session.touchpoints) ? session.touchpoints : []) {
          const point = el("li", touch.step ? "touchpoint step" : "touchpoint");
          const line = el("div", "touch-line");
          line.append(
            el("span", "touch-time", clockTime(touch.at)),
            el("span", "touch-type", touch.type),
          );
          if (typeof touch.timeSpentSeconds === "number") {
            line.append(el("span", "muted small", formatSeconds(touch.timeSpentSeconds)));
          }
          point.append(line);
          if (touch.page) point.append(el("div", "touch-page", touch.page));
          const extra = Object.entries(touch)
            .filter(([name, value]) => !TOUCHPOINT_FIELDS.has(name) && value !== null)
            .map(([name, value]) => `${name}: ${typeof value === "string" ? value : JSON.stringify(value)}`);
          if (extra.length) point.append(el("div", "touch-extra", extra.join(" · ")));
          list.append(point);
        }
        item.append(head, list);
        return item;
      }),
    );
  }

  $("visitor-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const fingerprint = $("visitor-fingerprint").value;
    if (fingerprint.trim()) lookUp(fingerprint);
  });

  async function loadRecent() {
    let answer;
    try {
      answer = await api("insights", { limit: 8 });
    } catch (_error) {
      return; // the lookup works without the hints
    }
    const visitors = (answer.data && answer.data.insights) || [];
    $("recent-list").replaceChildren(
      ...visitors.map((visitor) => {
        const chip = el("button", "chip", visitor.fingerprint);
        chip.type = "button";
        chip.addEventListener("click", () => {
          $("visitor-fingerprint").value = visitor.fingerprint;
          lookUp(visitor.fingerprint);
        });
        return chip;
      }),
    );
    show($("recent-visitors"), visitors.length > 0);
  }

  // --- the score models -----------------------------------------------------------------------

  async function loadModels() {
    if (!state.signedIn) return;
    try {
      renderModels(await api("models"));
    } catch (error) {
      if (error.status !== 401 && error.status !== 403) {
        message($("models-status"), `Not refreshed: ${error.message}`, "error");
      }
    }
  }

  function renderModels(answer) {
    const data = answer && answer.status === "ready" ? answer.data : null;
    if (!data) {
      message($("models-status"), (answer && answer.message) || "Not backtested yet.");
      $("models-meta").textContent = "";
      $("model-rows").replaceChildren();
      return;
    }
    message($("models-status"), "");
    const cutoffs = Array.isArray(data.cutoffs) ? data.cutoffs.length : 0;
    $("models-meta").textContent =
      `${formatNumber(data.visitors)} visitors · ${cutoffs} cut-offs · ${data.horizonDays}-day horizon · ${formatTime(data.evaluatedAt)}`;
    const rows = Object.entries(data.models || {}).map(([type, choice]) => modelRow(type, choice));
    $("model-rows").replaceChildren(...rows);
  }

  function aucCell(figures) {
    const cell = el("span", "inbox");
    if (!figures || typeof figures.rocAuc !== "number") {
      cell.append(el("span", "muted", "–"));
      return cell;
    }
    // the bar runs from a coin toss (0.5) to a perfect ranking (1)
    cell.append(el("span", "num", figures.rocAuc.toFixed(3)), bar((figures.rocAuc - 0.5) / 0.5, "inbox-bar"));
    return cell;
  }

  function modelRow(type, choice) {
    const row = el("div", "model-row");
    row.setAttribute("role", "row");
    const name = el("span", "actor-name", MODEL_NAMES[type] || type);
    const learned = choice.inUse === "learned";
    const inUse = el("span", "model-in-use");
    inUse.append(el("span", `badge ${learned ? "state-running" : "state-stopped"}`, learned ? "learned" : "fixed"));
    if (learned) inUse.append(el("span", "muted small", ` ${choice.version}`));
    const fixed = choice.fixed || {};
    const cells = [
      name,
      inUse,
      aucCell(fixed),
      aucCell(choice.learned),
      el("span", "num", formatPercent(fixed.baseRate)),
      el("span", "num", formatNumber(fixed.samples)),
      el("span", "actor-error muted", choice.reason),
    ];
    const labels = ["Model", "In use", "Fixed ROC AUC", "Learned ROC AUC", "Base rate", "Samples", "Why"];
    cells.forEach((cell, index) => {
      cell.setAttribute("role", "cell");
      cell.dataset.label = labels[index]; // the phone layout's captions (CSS attr())
    });
    row.append(...cells);
    return row;
  }

  // --- the actor tree -------------------------------------------------------------------------

  async function refreshActors() {
    if (!state.signedIn) return;
    try {
      renderActors(await api("actors"));
    } catch (error) {
      if (error.status !== 401 && error.status !== 403) {
        $("actors-meta").textContent = `Not refreshed: ${error.message}`;
      }
    }
  }

  function renderActors(answer) {
    const rows = [];
    const walk = (node, depth) => {
      rows.push(actorRow(node, depth));
      for (const child of Array.isArray(node.children) ? node.children : []) walk(child, depth + 1);
    };
    if (answer && answer.data) walk(answer.data, 0);
    $("actor-rows").replaceChildren(...rows);
    const who = answer && answer.worker ? `worker ${answer.worker}, ` : "";
    $("actors-meta").textContent = `${who}pid ${answer ? answer.pid : "–"} · refreshed ${clockTime()}`;
  }

  function actorRow(node, depth) {
    const row = el("div", "actor-row");
    row.setAttribute("role", "row");
    const name = el("span", "actor-name");
    name.style.paddingInlineStart = `${depth * 1.1}rem`;
    name.append(el("span", null, node.name), el("span", "muted small", ` ${node.kind}`));
    const stateCell = el("span", "actor-state");
    const stateClass = `badge state-${String(node.state).replace(/[^a-z]/g, "")}`;
    stateCell.append(el("span", stateClass, node.state));
    const restarts = el("span", node.restarts ? "num warn-text" : "num", formatNumber(node.restarts));
    const inbox = el("span", "inbox");
    if (node.inbox && typeof node.inbox.depth === "number") {
      const capacity = Number(node.inbox.capacity);
      inbox.append(
        el("span", "num", `${formatNumber(node.inbox.depth)} / ${Number.isFinite(capacity) ? formatNumber(capacity) : "∞"}`),
        bar(Number.isFinite(capacity) && capacity > 0 ? node.inbox.depth / capacity : 0, "inbox-bar"),
      );
    } else {
      inbox.append(el("span", "muted", "–"));
    }
    const handled = el("span", "num", formatNumber(node.handled));
    const lastError = el("span", "actor-error");
    if (node.lastError) {
      lastError.append(
        el("strong", null, node.lastError.type),
        document.createTextNode(`: ${node.lastError.message}`),
        el("span", "muted small", ` ${formatTime(node.lastError.time)}`),
      );
    } else {
      lastError.append(el("span", "muted", "none"));
    }
    const cells = [name, stateCell, restarts, inbox, handled, lastError];
    const labels = ["Actor", "State", "Restarts", "Inbox", "Handled", "Last error"];
    cells.forEach((cell, index) => {
      cell.setAttribute("role", "cell");
      cell.dataset.label = labels[index]; // the phone layout's captions (CSS attr())
    });
    row.append(...cells);
    return row;
  }

  start();
})();
