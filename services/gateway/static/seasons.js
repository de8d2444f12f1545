// The dashboard's Seasons page (#seasons, #seasons/<id>): the seasons the gateway serves
// and, for the one chosen, each agent's figures with their intervals and the pairwise
// matrix. Agent ids and a season's description are data: inserted as text only.
"use strict";

(() => {
  const { el, setText, fill, empty, num, fmt, td, get, banner } = window.arenaDom;
  const PAGES = ["live", "seasons"];
  let shown = null; // the season whose report is on the page (or being loaded)

  const path = (id) => `/seasons/${encodeURIComponent(id)}`;

  // ------------------------------------------------------------ pages

  function chosenPage() {
    const [page, ...rest] = location.hash.replace(/^#/, "").split("/");
    let season = null;
    try {
      season = rest.length ? decodeURIComponent(rest.join("/")) : null;
    } catch (_) { /* a malformed hash: no season */ }
    return { page: PAGES.includes(page) ? page : "live", season };
  }

  function route() {
    const { page, season } = chosenPage();
    document.getElementById("live").hidden = page !== "live";
    document.getElementById("seasons-page").hidden = page !== "seasons";
    document.querySelectorAll("#tabs a").forEach((link) => {
      if (link.dataset.page === page) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    });
    if (page === "seasons") loadSeasons(season);
  }

  // ------------------------------------------------------------ the list

  async function loadSeasons(chosen) {
    let seasons;
    try {
      seasons = await get("/seasons");
    } catch (error) {
      banner(String(error.message || error));
      return;
    }
    renderSeasons(seasons, chosen);
    const season = seasons.find((s) => s.id === chosen) || (chosen === null ? seasons[0] : null);
    if (!season) {
      document.getElementById("season").hidden = true;
      shown = null;
      if (chosen !== null) banner(`no season ${chosen} here`);
      return;
    }
    await loadSeason(season);
  }

  function period(season) {
    const about = season.season || {};
    return about.from || about.to ? `${about.from || "…"} to ${about.to || "…"}` : "–";
  }

  function renderSeasons(seasons, chosen) {
    if (!seasons.length) {
      return empty("seasons", 6, "No season here: the gateway serves the seasons in ARENA_SEASONS_DIR.");
    }
    fill("seasons", seasons.map((s, i) => el("tr", {
      "data-season": s.id,
      class: s.id === chosen || (chosen === null && i === 0) ? "chosen" : "",
    },
      el("td", {}, el("a", { href: `#seasons/${encodeURIComponent(s.id)}` }, s.id)),
      td(period(s)),
      td(new Date(s.created).toLocaleString()),
      td(s.runs ?? "–"),
      td(s.cycles ?? "–"),
      td(s.agents.join(", ")),
    )));
  }

  // ------------------------------------------------------------ one season

  async function loadSeason(season) {
    shown = season.id;
    let report;
    try {
      report = await get(`${path(season.id)}/report`);
    } catch (error) {
      banner(String(error.message || error));
      return;
    }
    if (shown !== season.id) return; // another season was chosen meanwhile
    renderSeason(season, report);
  }

  // "value [lower, upper]", green when the whole interval is above zero, red below.
  function interval(figure, digits = 2) {
    if (!figure) return td("–", "muted");
    const lower = num(figure.lower);
    const upper = num(figure.upper);
    const cls = lower > 0 ? "pos" : upper < 0 ? "neg" : "";
    return el("td", { class: cls, title: "95 % bootstrap interval" },
      `${fmt(figure.value, digits)} [${fmt(lower, digits)}, ${fmt(upper, digits)}]`);
  }

  function renderSeason(season, report) {
    document.getElementById("season").hidden = false;
    setText("season-title", `Season ${season.id}`);
    const bench = report.benchmark || {};
    const benchReturn = bench.return_pct ? `${bench.symbol} held: ${fmt(bench.return_pct.value)} %` : "";
    setText("season-meta", [
      `${report.runs} run(s)`, `${report.cycles} cycles`, period(season), benchReturn,
    ].filter(Boolean).join(" · "));
    const link = document.getElementById("season-page");
    link.hidden = !season.report_html;
    if (season.report_html) link.setAttribute("href", `${path(season.id)}/report.html`);
    else link.removeAttribute("href");

    const agents = Object.entries(report.agents || {})
      .sort(([, a], [, b]) => (num(b.return_pct?.value) ?? -Infinity) - (num(a.return_pct?.value) ?? -Infinity));
    if (!agents.length) empty("season-agents", 9, "No agent in this report.");
    else fill("season-agents", agents.map(([id, a], i) => el("tr", { "data-agent": id },
      td(i + 1),
      td(id),
      interval(a.return_pct),
      interval(a.sharpe),
      interval(a.alpha),
      td(fmt(a.beta)),
      td(fmt(a.max_drawdown_pct)),
      td(fmt(a.trades, 1)),
      td((a.rank_frequencies || []).join(" · ")),
    )));
    renderPairwise(agents.map(([id]) => id), report.pairwise || {});
    renderCharts(season);
  }

  function heat(cell, p) {
    // 0.5: no colour; towards 1 green (the row's agent better), towards 0 red.
    const strength = Math.min(1, Math.abs(p - 0.5) * 2) * 0.6;
    const rgb = p >= 0.5 ? "63, 185, 80" : "248, 81, 73";
    cell.style.backgroundColor = `rgba(${rgb}, ${strength.toFixed(3)})`;
  }

  function renderPairwise(ids, matrix) {
    const table = document.getElementById("season-pairwise");
    table.tHead.replaceChildren(el("tr", {}, el("th", {}, "row beats column"),
      ...ids.map((id) => el("th", { scope: "col" }, id))));
    table.tBodies[0].replaceChildren(...ids.map((row) => el("tr", { "data-agent": row },
      el("th", { scope: "row" }, row),
      ...ids.map((column) => {
        const p = num((matrix[row] || {})[column]);
        if (row === column || p === null || Number.isNaN(p)) return td("–", "muted");
        const cell = el("td", { "data-p": String(p) }, `${fmt(p * 100, 0)} %`);
        heat(cell, p);
        return cell;
      }),
    )));
  }

  function renderCharts(season) {
    const node = document.getElementById("season-charts");
    node.replaceChildren(...(season.charts || []).map((name) => el("figure", {},
      el("img", { src: `${path(season.id)}/charts/${encodeURIComponent(name)}.png`, alt: name, loading: "lazy" }),
      el("figcaption", { class: "muted" }, name),
    )));
  }

  window.addEventListener("hashchange", route);
  route();
})();
