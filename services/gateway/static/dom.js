// What the dashboard's pages share: building elements with text only (data is never
// inserted as HTML), number formats, and reading the API.
"use strict";

window.arenaDom = (() => {
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "title") node.title = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setText(id, text, cls) {
    const node = document.getElementById(id);
    node.textContent = text;
    if (cls !== undefined) node.className = cls;
  }

  function fill(tableId, rows) {
    const body = document.querySelector(`#${tableId} tbody`);
    body.replaceChildren(...rows);
  }

  function empty(tableId, columns, text) {
    fill(tableId, [el("tr", {}, el("td", { colspan: String(columns), class: "muted" }, text))]);
  }

  const num = (v) => (v === null || v === undefined ? null : Number(v));
  function fmt(v, digits = 2) {
    const n = num(v);
    return n === null || Number.isNaN(n) ? "–" : n.toLocaleString("en-US", {
      minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  function signed(v, suffix = "", digits = 2) {
    const n = num(v);
    const cls = n === null ? "muted" : n > 0 ? "pos" : n < 0 ? "neg" : "";
    const text = n === null ? "–" : `${n > 0 ? "+" : ""}${fmt(n, digits)}${suffix}`;
    return el("td", { class: cls }, text);
  }
  const td = (text, cls) => el("td", cls ? { class: cls } : {}, text);

  async function get(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
      throw new Error(`${path}: ${detail}`);
    }
    return response.json();
  }

  function banner(text) {
    const node = document.getElementById("banner");
    node.textContent = text || "";
    node.hidden = !text;
  }

  return { el, setText, fill, empty, num, fmt, signed, td, get, banner };
})();
