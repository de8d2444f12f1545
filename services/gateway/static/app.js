// The arena dashboard's live page: REST for the state, /ws for live events. Model text is
// always inserted as text (textContent, dom.js), never as HTML.
"use strict";

(() => {
  const COLORS = ["#58a6ff", "#3fb950", "#f0883e", "#bc8cff", "#ff7b72", "#d29922", "#39c5cf"];
  const MAX_DECISIONS = 60;
  const state = { names: {}, decisions: [], chart: null, chartKey: "", board: null, usage: {} };

  const { el, setText, fill, empty, num, fmt, signed, td, get, banner } = window.arenaDom;

  function price(v) {
    const n = num(v);
    if (n === null) return "–";
    return fmt(n, n >= 1000 ? 2 : n >= 1 ? 4 : 6);
  }
  const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "–");
  const name = (id) => state.names[id] || id;

  // ------------------------------------------------------------ REST

  // A part whose refresh failed (a service restarting, a timeout) is asked again every few
  // seconds until it loads; once none is failing, their message leaves the banner.
  const RETRY_MS = 3000;
  const failing = new Set();
  let failure = "";
  async function load(path, render) {
    try {
      render(await get(path));
      return true;
    } catch (error) {
      failure = String(error.message || error);
      banner(failure);
      return false;
    }
  }
  async function reload(part) {
    if (await refreshers[part]()) {
      failing.delete(part);
      const shown = document.getElementById("banner").textContent;
      if (!failing.size && failure && shown === failure) banner("");
      return;
    }
    failing.add(part);
    setTimeout(() => refresh(part), RETRY_MS);
  }

  const refreshers = {
    leaderboard: () => load("/trading/leaderboard", renderLeaderboard),
    positions: () => load("/trading/positions?limit=100", (d) => renderPositions(d.positions)),
    trades: () => load("/trading/trades?limit=25", (d) => renderTrades(d.trades)),
    equity: () => load("/trading/equity?points=1000&limit=20000&format=columns", (d) => renderChart(d.agents)),
    stats: () => load("/trading/stats", renderUsage),
    scheduler: () => load("/scheduler/status", renderScheduler),
    agents: () => load("/trading/agents", (d) => renderAgents(d.agents)),
    prices: () => load("/market/snapshot", (d) => d.snapshot && renderSnapshot(d.snapshot)),
    decisions: () => load("/trading/decisions?limit=30", (d) => {
      state.decisions = d.decisions.map((r) => r.decision);
      renderDecisions();
    }),
  };

  // Many events arrive together at the end of a cycle; refresh each part once.
  const pending = new Set();
  let flushTimer = null;
  function refresh(...parts) {
    parts.forEach((p) => pending.add(p));
    if (flushTimer) return;
    flushTimer = setTimeout(() => {
      flushTimer = null;
      const todo = [...pending];
      pending.clear();
      todo.forEach(reload);
    }, 150);
  }

  // ------------------------------------------------------------ renderers

  function renderLeaderboard(board) {
    const entries = Array.isArray(board) ? board : board.entries;
    state.board = entries;
    for (const e of entries) state.names[e.agent_id] = e.display_name;
    if (!entries.length) return empty("leaderboard", 17, "No agents yet.");
    fill("leaderboard", entries.map((e) => el("tr", { "data-agent": e.agent_id },
      td(e.rank),
      td(e.display_name),
      td(fmt(e.equity)),
      signed(e.return_pct, " %"),
      ...evidenceCells(state.usage[e.agent_id]),
      signed(num(e.realized_pnl) + num(e.unrealized_pnl)),
      td(fmt(e.total_fees)),
      td(fmt(e.llm_cost_usd, 4)),
      signed(e.net_return_pct, " %"),
      td(`${fmt(e.win_rate, 1)} %`),
      td(e.total_trades),
      td(e.parse_failures, e.parse_failures ? "neg" : ""),
      td(e.rejections, e.rejections ? "neg" : ""),
      ...usageCells(state.usage[e.agent_id]),
    )));
  }

  // Model usage comes from /trading/stats (refreshed after each cycle), not the leaderboard.
  const count = (n) => (n >= 1e6 ? `${fmt(n / 1e6, 1)}M` : n >= 1e4 ? `${fmt(n / 1e3, 1)}k` : String(n));
  const ms = (v) => (v === null || v === undefined ? "–" : v >= 1000 ? `${fmt(v / 1000, 2)} s` : `${fmt(v, 0)} ms`);
  function usageCells(u) {
    if (!u || !u.llm_calls) return [td("–", "muted"), td("–", "muted"), td("–", "muted")];
    return [
      td(u.llm_calls),
      td(`${count(u.prompt_tokens)} / ${count(u.completion_tokens)}`),
      td(`${ms(u.latency_p50_ms)} / ${ms(u.latency_p95_ms)}`),
    ];
  }

  // The return and alpha vs BTC so far with their 95 % intervals, from /trading/stats (none
  // before the ledger has three completed cycles): "x % [lo, hi]", green when the whole
  // interval is above zero, red when below.
  function intervalCell(figure, title) {
    if (!figure) return td("–", "muted");
    const lower = num(figure.lower);
    const upper = num(figure.upper);
    const cls = lower > 0 ? "pos" : upper < 0 ? "neg" : "";
    const value = num(figure.value);
    return el("td", { class: cls, title },
      `${value > 0 ? "+" : ""}${fmt(value)} % [${fmt(lower)}, ${fmt(upper)}]`);
  }
  function evidenceCells(s) {
    const over = s && s.evidence_cycles ? `95 % bootstrap interval over ${s.evidence_cycles} completed cycles` : "";
    const beta = s && s.beta !== null && s.beta !== undefined ? `; beta ${fmt(s.beta)}` : "";
    return [
      intervalCell(s && s.return_interval_pct, over),
      intervalCell(s && s.alpha_pct, `${over ? `${over}, ` : ""}percent a year${beta}`),
    ];
  }

  function renderUsage(stats) {
    state.usage = Object.fromEntries(stats.agents.map((a) => [a.agent_id, a]));
    if (state.board) renderLeaderboard(state.board);
  }

  function renderAccounts(accounts) {
    for (const a of accounts) state.names[a.agent_id] = a.display_name;
  }

  function renderAgents(agents) {
    const node = document.getElementById("agents");
    const notOk = agents.filter((a) => a.status === "disabled" || a.status === "silent");
    node.replaceChildren(...notOk.map((a) => el("div", { class: a.status === "disabled" ? "disabled" : "muted", "data-agent": a.agent_id },
      `${a.display_name}: ${a.status}${a.reason ? ` — ${a.reason}` : ""}`)));
  }

  function renderPositions(positions) {
    if (!positions.length) return empty("positions", 10, "No open position.");
    fill("positions", positions.map((p) => el("tr", {},
      td(name(p.agent_id)), td(p.symbol),
      td(p.side, p.side === "LONG" ? "pos" : "neg"), td(`${p.leverage}×`),
      td(price(p.entry_price)), td(price(p.current_price)), signed(p.unrealized_pnl),
      td(price(p.liquidation_price)), td(price(p.stop_loss)), td(price(p.take_profit)),
    )));
  }

  function renderTrades(trades) {
    if (!trades.length) return empty("trades", 8, "No trade yet.");
    fill("trades", trades.map((t) => el("tr", {},
      td(time(t.closed_at || t.executed_at)), td(name(t.agent_id)), td(t.symbol), td(t.side),
      td(price(t.entry_price)), td(price(t.exit_price)), signed(t.realized_pnl),
      td(t.exit_reason || (t.exit_price ? "" : "open"), "muted"),
    )));
  }

  function renderSnapshot(snapshot) {
    setText("source", `source: ${snapshot.source}`, "badge");
    fill("prices", snapshot.symbols.map((s) => el("tr", {},
      td(s.symbol), td(price(s.last_price)), td(price(s.mark_price)),
      signed(s.price_change_pct_24h, " %"), td(`${fmt(num(s.funding_rate) * 100, 4)} %`),
    )));
  }

  function renderScheduler(s) {
    if (!s) return;
    setText("source", `source: ${s.source}`, "badge");
    const label = !s.running ? "stopped" : s.paused ? "paused" : "running";
    const cls = !s.running ? "badge badge-bad" : s.paused ? "badge badge-warn" : "badge badge-good";
    setText("scheduler", `scheduler: ${label}`, cls);
    const next = s.next_run_at && !s.paused ? `next cycle ${time(s.next_run_at)}` : "";
    setText("cycle", `${s.cycles_completed} cycles done${next ? ", " + next : ""}`);
  }

  function describe(action) {
    if (action.action === "HOLD") return "HOLD";
    const parts = [action.action, action.symbol];
    if (action.margin_usd) parts.push(`$${fmt(action.margin_usd)}`);
    if (action.leverage) parts.push(`${action.leverage}×`);
    return parts.filter(Boolean).join(" ");
  }

  function renderDecisions() {
    const list = document.getElementById("decisions");
    list.replaceChildren(...state.decisions.map((d) => el("li", { "data-decision": d.decision_id },
      el("div", { class: "meta" }, `${time(d.decided_at)} · ${name(d.agent_id)} · ${d.model || ""} · ${d.cycle_id}`),
      el("div", { class: "actions" }, d.actions.map(describe).join(", ") || "HOLD"),
      // The error says what it is ("parse error: …", "disabled: …", "provider error: …").
      d.error ? el("div", { class: "error" }, d.error) : null,
      el("div", { class: "reasoning" }, d.reasoning || ""),
    )));
  }

  function addDecision(decision) {
    state.decisions = [decision, ...state.decisions.filter((d) => d.decision_id !== decision.decision_id)]
      .slice(0, MAX_DECISIONS);
    renderDecisions();
  }

  function renderChart(columns) {
    const node = document.getElementById("chart");
    if (typeof uPlot === "undefined") return;
    // Per agent its times and equities; the chart wants one time axis with a value (or a
    // gap) per agent at each time.
    const byAgent = [...columns].sort((a, b) => (a.agent_id < b.agent_id ? -1 : 1));
    const agents = byAgent.map((c) => c.agent_id);
    const seconds = byAgent.map((c) => c.at.map((t) => Date.parse(t) / 1000));
    const times = [...new Set(seconds.flat())].sort((a, b) => a - b);
    const index = new Map(times.map((t, i) => [t, i]));
    const series = byAgent.map((c, k) => {
      const values = times.map(() => null);
      seconds[k].forEach((t, i) => { values[index.get(t)] = num(c.equity[i]); });
      return values;
    });
    const data = [times, ...series];
    const key = agents.join(",");
    if (state.chart && state.chartKey === key) {
      state.chart.setData(data);
      return;
    }
    if (state.chart) state.chart.destroy();
    state.chartKey = key;
    const opts = {
      width: Math.max(300, node.clientWidth || 800),
      height: 300,
      axes: [{ stroke: "#8b949e", grid: { stroke: "#30363d" } },
        { stroke: "#8b949e", grid: { stroke: "#30363d" }, label: "equity (USD)" }],
      series: [{}, ...agents.map((a, i) => ({
        label: name(a), stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true,
        value: (_, v) => (v === null ? "–" : fmt(v)),
      }))],
    };
    state.chart = new uPlot(opts, data, node);
  }

  // ------------------------------------------------------------ scheduler control

  function setupControl() {
    const token = document.getElementById("token");
    token.value = sessionStorage.getItem("arena-admin-token") || "";
    document.querySelectorAll("#control button").forEach((button) => {
      button.addEventListener("click", async () => {
        const command = button.dataset.command;
        if (!token.value) {
          setText("control-result", "enter the admin token first (printed by `make run`)");
          token.focus();
          return;
        }
        sessionStorage.setItem("arena-admin-token", token.value);
        const response = await fetch(`/scheduler/${command}`, {
          method: "POST", headers: { Authorization: `Bearer ${token.value}` } });
        let body = {};
        try { body = await response.json(); } catch (_) { /* empty */ }
        if (response.ok) {
          renderScheduler(body);
          setText("control-result", `${command}: done`);
        } else {
          setText("control-result", `${command}: ${body.detail || response.statusText}`);
        }
      });
    });
  }

  // ------------------------------------------------------------ live updates

  const handlers = {
    connection: () => {},
    initial_data: (d) => {
      if (d.accounts) renderAccounts(d.accounts);
      if (d.leaderboard) renderLeaderboard(d.leaderboard);
      if (d.positions) renderPositions(d.positions);
      renderScheduler(d.scheduler_status);
      if (d.market_snapshot) renderSnapshot(d.market_snapshot);
      renderAgents(d.agents || []);
      const missing = Object.entries(d.unavailable || {}).map(([k, v]) => `${k}: ${v}`);
      banner(missing.join(" · "));
      refresh("equity", "trades", "decisions", "stats");
    },
    market_snapshot: (d) => renderSnapshot(d),
    scheduler_status: (d) => renderScheduler(d),
    cycle_start: (d) => setText("cycle", `cycle ${d.sequence} running (${d.cycle_id})`),
    cycle_complete: () => refresh("leaderboard", "equity", "positions", "trades", "scheduler", "stats"),
    llm_decision: (d) => addDecision(d),
    position_update: () => refresh("positions", "trades"),
    account_update: () => refresh("leaderboard"),
    agent_status: () => refresh("agents"),
    error: (d) => banner(d.message || JSON.stringify(d)),
  };

  let retry = 0;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws`);
    socket.addEventListener("open", () => {
      retry = 0;
      const badge = document.getElementById("connection");
      badge.textContent = "live";
      badge.className = "badge badge-good";
      badge.dataset.state = "live";
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      const handle = handlers[message.type];
      if (handle) handle(message.data);
    });
    socket.addEventListener("close", (event) => {
      const delay = Math.min(10, 2 ** retry);
      retry += 1;
      const badge = document.getElementById("connection");
      // The server says why it closed (e.g. full, or this page too slow); shown as text.
      const why = event.reason ? ` (${event.reason})` : "";
      badge.textContent = `disconnected${why} — reconnecting in ${delay} s`;
      badge.className = "badge badge-bad";
      badge.dataset.state = "disconnected";
      setTimeout(connect, delay * 1000);
    });
  }

  setupControl();
  connect();
})();
