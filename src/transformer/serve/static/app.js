// The translation and attention explorer: plain JavaScript, no framework, no build step.
//
// The page asks the server three things: GET health (its decoding defaults and limits), POST translate (the
// translation and its n-best list) and POST attention (every attention weight of the translation). What it
// draws is always the last answer of POST attention: `data` below, rendered as SVG.
//
// The heatmap has one <rect class="cell"> per (query row, key column) with data-row, data-col and
// data-weight (the number as the API sent it); masked cells (the decoder's future) are hatched and carry
// data-masked="true". Row and column tokens are <text class="token row-label|col-label">.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const CHAR_WIDTH = 7.3; // px per character of the 12px monospace token font
const LINE_WIDTH = 12; // px of an alignment line of weight 1

// The three kinds of attention: which tokens label the rows (queries) and columns (keys).
const KINDS = {
  encoder: {
    rows: "source_tokens", cols: "source_tokens", layers: "encoder_layers",
    rowTitle: "query", colTitle: "key",
    help: "Encoder self-attention: each source token (row) looks at every source token (columns), " +
      "before and after it.",
  },
  decoder: {
    rows: "target_tokens", cols: "target_tokens", layers: "decoder_layers",
    rowTitle: "query", colTitle: "key",
    masked: (row, col) => col > row,
    help: "Decoder masked self-attention: each decoder input token (row) looks at itself and the tokens " +
      "before it. The hatched triangle is the future, which the causal mask hides: those weights are exactly 0.",
  },
  cross: {
    rows: "output_tokens", cols: "source_tokens", layers: "decoder_layers",
    rowTitle: "output", colTitle: "source",
    help: "Encoder-decoder attention: the decoder position that writes each output token (row) looks at the " +
      "source tokens (columns). This is the alignment the model learnt.",
  },
};

// Viridis, as matplotlib draws the PNG heatmaps of `transformer attention`.
const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
  "#b5de2b", "#fde725"];

let data = null; // the last answer of POST /attention
let view = null; // what the heatmap shows now: {rows, cols, matrix, masked, cells, byRow, byCol, ...}
let ticket = 0; // the latest translation request; older answers are ignored
let pointed = null; // {r, c}: the heatmap row and/or column under the pointer (null: none)
let renderedWidths = ""; // the boxes' widths the figures were last drawn for

const $ = (id) => document.getElementById(id);

function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  if (parent) parent.appendChild(el);
  return el;
}

function colour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const a = hexRgb(VIRIDIS[i]);
  const b = hexRgb(VIRIDIS[i + 1]);
  return `rgb(${a.map((v, k) => Math.round(v + (b[k] - v) * f)).join(",")})`;
}

function hexRgb(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

function fixed(w, digits) {
  return w.toFixed(digits);
}

// -- talking to the server ----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(code, message, field) {
    super(message);
    this.code = code;
    this.field = field;
  }
}

async function postJson(path, body) {
  const start = performance.now();
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError("network_error", `could not reach the server (${err.message})`);
  }
  let json = null;
  try {
    json = await response.json();
  } catch (err) {
    json = null;
  }
  const ms = performance.now() - start;
  if (!response.ok) {
    const error = json && json.error ? json.error : { code: `http_${response.status}`,
      message: `${response.status} ${response.statusText}` };
    throw new ApiError(error.code, error.message, error.field);
  }
  return { json, ms };
}

async function loadDefaults() {
  try {
    const response = await fetch("health");
    const limits = (await response.json()).limits;
    const beam = $("beam-size");
    beam.max = limits.max_beam_size;
    beam.value = limits.beam_size;
    $("n-best").max = limits.max_beam_size;
    $("n-best").value = limits.n_best;
  } catch (err) {
    // The defaults in the page stay; the server still applies its own.
  }
}

function numberField(input) {
  const raw = input.value.trim();
  if (raw === "") return null; // the server's default
  const value = Number(raw);
  return Number.isNaN(value) ? raw : value; // the server says what is wrong with it
}

// -- translating ------------------------------------------------------------------------------------------

async function translate(event) {
  event.preventDefault();
  const mine = ++ticket;
  const text = $("text").value;
  const beamSize = numberField($("beam-size"));
  const nBest = numberField($("n-best"));
  showError(null);
  setBusy(true);
  const [translated, attended] = await Promise.allSettled([
    postJson("translate", { text, beam_size: beamSize, n_best: nBest === null ? 1 : nBest }),
    postJson("attention", { text, beam_size: beamSize }),
  ]);
  if (mine !== ticket) return; // a newer request was sent meanwhile
  setBusy(false);
  if (translated.status === "rejected") {
    showError(translated.reason);
    $("result").hidden = true;
    $("explorer").hidden = true;
    return;
  }
  showTranslation(translated.value, attended.status === "fulfilled" ? attended.value.ms : null);
  if (attended.status === "rejected") {
    data = null;
    $("explorer").hidden = false;
    $("attention-error").hidden = false;
    $("attention-error").textContent = `No attention for this text: ${attended.reason.message}`;
    document.querySelector(".views").hidden = true;
    return;
  }
  data = attended.value.json;
  $("attention-error").hidden = true;
  document.querySelector(".views").hidden = false;
  $("explorer").hidden = false;
  fillSelectors();
  render();
}

function setBusy(busy) {
  $("translate").disabled = busy;
  $("busy").hidden = !busy;
}

function showError(error) {
  const box = $("error");
  if (!error) {
    box.hidden = true;
    return;
  }
  $("error-title").textContent = error.code === "network_error" ? "No answer" : "The server refused this request";
  $("error-message").textContent = error.message;
  $("error-code").textContent = error.code || "";
  box.hidden = false;
}

function showTranslation(answer, attentionMs) {
  const result = answer.json.translations[0];
  $("translation").textContent = result.text;
  $("score").textContent = result.score === null ? "" : `score ${fixed(result.score, 4)} ·`;
  let timing = `translated in ${Math.round(answer.ms)} ms`;
  if (attentionMs !== null) timing += `, attention in ${Math.round(attentionMs)} ms`;
  $("timing").textContent = `${timing} (round trips from this page)`;
  const list = $("nbest");
  list.replaceChildren();
  const hypotheses = result.n_best || [];
  for (const hypothesis of hypotheses) {
    const item = document.createElement("li");
    item.textContent = hypothesis.text;
    const score = document.createElement("span");
    score.className = "nb-score";
    score.textContent = hypothesis.score === null ? "(no score)" : fixed(hypothesis.score, 4);
    item.appendChild(score);
    list.appendChild(item);
  }
  $("nbest-block").hidden = hypotheses.length === 0;
  $("result").hidden = false;
}

// -- the selectors ---------------------------------------------------------------------------------------

function fillSelectors() {
  const layer = $("layer");
  const previousLayer = layer.value;
  const kind = KINDS[$("kind").value];
  const n = data[kind.layers];
  layer.replaceChildren();
  for (let i = 0; i < n; i++) layer.appendChild(new Option(`${i + 1} of ${n}`, String(i)));
  layer.value = previousLayer !== "" && Number(previousLayer) < n ? previousLayer : String(n - 1);

  const head = $("head");
  const previousHead = head.value;
  head.replaceChildren(new Option(`mean of the ${data.heads} heads`, "mean"));
  for (let h = 0; h < data.heads; h++) head.appendChild(new Option(`head ${h + 1}`, String(h)));
  head.value = previousHead === "" || Number(previousHead) >= data.heads ? "mean" : previousHead;
}

// One (rows x cols) matrix: a head's weights, or their mean over the heads.
function matrix(kindName, layer, head) {
  const heads = data.weights[kindName][layer];
  if (head !== "mean") return heads[Number(head)];
  return heads[0].map((row, r) => row.map((_, c) => {
    let sum = 0;
    for (let h = 0; h < heads.length; h++) sum += heads[h][r][c];
    return sum / heads.length;
  }));
}

function headName(head) {
  return head === "mean" ? "mean of the heads" : `head ${Number(head) + 1}`;
}

function render() {
  if (!data) return;
  renderedWidths = boxWidths();
  pointed = null;
  const kindName = $("kind").value;
  const kind = KINDS[kindName];
  const layer = Number($("layer").value);
  const head = $("head").value;
  $("kind-help").textContent = kind.help;
  drawHeatmap(kindName, kind, matrix(kindName, layer, head));
  const crossLayer = Math.min(layer, data.decoder_layers - 1);
  drawAlignment(matrix("cross", crossLayer, head));
  $("alignment-caption").textContent = `Alignment: encoder-decoder attention of layer ${crossLayer + 1}, ` +
    `${headName(head)}, as lines from each output token (right) to the source tokens (left); the thicker ` +
    "the line, the larger the weight.";
}

function boxWidths() {
  return `${$("heatmap-box").clientWidth} ${$("alignment-box").clientWidth}`;
}

// After a resize: redraw only if the figures' room changed (a full-page screenshot, or a phone's address bar,
// resizes the window's height alone), and keep what the pointer was on lit.
function relayout() {
  if (!data || boxWidths() === renderedWidths) return;
  const kept = pointed;
  render();
  if (kept) {
    pointed = kept;
    highlight(kept.r, kept.c);
  }
}

// -- the heatmap -----------------------------------------------------------------------------------------

function longest(tokens) {
  return tokens.reduce((n, t) => Math.max(n, [...t].length), 1);
}

// Cell size and label room: column labels at 45 degrees while cells are wide enough for them to stand apart,
// else upright (they then need no room to the right of the grid).
function heatmapLayout(rows, cols, boxWidth) {
  const rowLabelWidth = Math.max(longest(rows) * CHAR_WIDTH + 14, 74); // 74: room for the corner's titles
  const colLabelLength = longest(cols) * CHAR_WIDTH + 10;
  const fits = (right) => Math.floor((Math.max(boxWidth, 240) - rowLabelWidth - right - 4) / cols.length);
  const slanted = fits(colLabelLength * Math.SQRT1_2);
  const upright = slanted < 26;
  const cell = Math.max(18, Math.min(40, upright ? fits(8) : slanted));
  const left = rowLabelWidth;
  const top = Math.max(upright ? colLabelLength : colLabelLength * Math.SQRT1_2, 34) + 6;
  const right = upright ? 8 : colLabelLength * Math.SQRT1_2;
  return { cell, left, top, upright, width: left + cols.length * cell + right, height: top + rows.length * cell + 4 };
}

function drawHeatmap(kindName, kind, weights) {
  const rows = data[kind.rows];
  const cols = data[kind.cols];
  const masked = (r, c) => Boolean(kind.masked && kind.masked(r, c));
  const { cell, left, top, upright, width, height } = heatmapLayout(rows, cols, $("heatmap-box").clientWidth);

  const root = $("heatmap");
  root.replaceChildren();
  root.setAttribute("width", width);
  root.setAttribute("height", height);
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  root.dataset.kind = kindName;
  root.dataset.rows = rows.length;
  root.dataset.cols = cols.length;
  hatchPattern(root);

  let vmax = 0;
  weights.forEach((row, r) => row.forEach((w, c) => { if (!masked(r, c)) vmax = Math.max(vmax, w); }));
  vmax = vmax > 0 ? vmax : 1;

  const colTitle = svg("text", { class: "axis-title", x: left - 8, y: top - 22, "text-anchor": "end" }, root);
  colTitle.textContent = `${kind.colTitle} →`;
  const rowTitle = svg("text", { class: "axis-title", x: left - 8, y: top - 8, "text-anchor": "end" }, root);
  rowTitle.textContent = `${kind.rowTitle} ↓`;

  const state = { rows, cols, weights, masked, vmax, cell, left, top, byRow: [], byCol: [], rowLabels: [],
    colLabels: [], values: null, kindName };
  for (let c = 0; c < cols.length; c++) state.byCol.push([]);
  const grid = svg("g", { class: "cells" }, root);
  weights.forEach((row, r) => {
    state.byRow.push([]);
    row.forEach((w, c) => {
      const attrs = { class: "cell", x: left + c * cell, y: top + r * cell, width: cell, height: cell,
        "data-row": r, "data-col": c, "data-weight": String(w) };
      if (masked(r, c)) {
        attrs.fill = "url(#hatch)";
        attrs["data-masked"] = "true";
      } else {
        attrs.fill = colour(w / vmax);
      }
      const rect = svg("rect", attrs, grid);
      state.byRow[r].push(rect);
      state.byCol[c].push(rect);
    });
  });
  rows.forEach((token, r) => {
    const label = svg("text", { class: "token row-label", x: left - 6, y: top + r * cell + cell / 2,
      "text-anchor": "end", "dominant-baseline": "central", "data-row": r }, root);
    label.textContent = token;
    state.rowLabels.push(label);
  });
  cols.forEach((token, c) => {
    const x = left + c * cell + cell / 2;
    const label = svg("text", { class: "token col-label", transform: `translate(${x},${top - 6}) ` +
      (upright ? "rotate(-90)" : "rotate(-45)"), "dominant-baseline": upright ? "central" : "auto",
      "data-col": c }, root);
    label.textContent = token;
    state.colLabels.push(label);
  });
  state.values = svg("g", { class: "values" }, root);
  view = state;
  drawLegend(vmax, kind.masked !== undefined);
  $("readout").textContent = "Point at a token or a cell.";
}

function hatchPattern(root) {
  const defs = svg("defs", {}, root);
  const pattern = svg("pattern", { id: "hatch", patternUnits: "userSpaceOnUse", width: 6, height: 6,
    patternTransform: "rotate(45)" }, defs);
  svg("rect", { width: 6, height: 6, fill: "#ffffff" }, pattern);
  svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#b4bcc8", "stroke-width": 2 }, pattern);
}

function drawLegend(vmax, withMask) {
  const legend = $("legend");
  legend.replaceChildren();
  const scale = document.createElement("span");
  const bar = svg("svg", { width: 120, height: 12, "aria-hidden": "true" });
  const defs = svg("defs", {}, bar);
  const gradient = svg("linearGradient", { id: "scale" }, defs);
  VIRIDIS.forEach((hex, i) => svg("stop", { offset: i / (VIRIDIS.length - 1), "stop-color": hex }, gradient));
  svg("rect", { width: 120, height: 12, fill: "url(#scale)" }, bar);
  scale.append("0 ", bar, ` ${fixed(vmax, 2)} (the largest weight shown)`);
  legend.appendChild(scale);
  if (withMask) {
    const mask = document.createElement("span");
    const swatch = svg("svg", { width: 14, height: 14, "aria-hidden": "true" });
    hatchPattern(swatch);
    svg("rect", { width: 14, height: 14, fill: "url(#hatch)", stroke: "#b4bcc8" }, swatch);
    mask.append(swatch, " masked: a later token, never seen (weight exactly 0)");
    legend.appendChild(mask);
  }
}

// Highlight row r and/or column c (null: none) and say their weights.
function highlight(r, c) {
  clearHighlight();
  if (!view) return;
  if (r !== null) {
    view.byRow[r].forEach((rect) => rect.classList.add("in-row"));
    view.rowLabels[r].classList.add("active");
    showValues(view.byRow[r]);
  }
  if (c !== null) {
    view.byCol[c].forEach((rect) => rect.classList.add("in-col"));
    view.colLabels[c].classList.add("active");
    if (r === null) showValues(view.byCol[c]);
  }
  if (r !== null && c !== null) view.byRow[r][c].classList.add("active");
  $("readout").textContent = describe(r, c);
}

function clearHighlight() {
  if (!view) return;
  for (const el of $("heatmap").querySelectorAll(".in-row, .in-col, .active")) {
    el.classList.remove("in-row", "in-col", "active");
  }
  view.values.replaceChildren();
}

function showValues(rects) {
  if (view.cell < 24) return; // too small to print in; the readout has them
  for (const rect of rects) {
    const w = Number(rect.dataset.weight);
    if (rect.dataset.masked || w < 0.005) continue; // masked, or 0 to two decimals: left blank
    const text = svg("text", { class: "cell-value", x: Number(rect.getAttribute("x")) + view.cell / 2,
      y: Number(rect.getAttribute("y")) + view.cell / 2, "text-anchor": "middle", "dominant-baseline": "central",
      fill: w / view.vmax > 0.6 ? "#1d2430" : "#ffffff" }, view.values);
    text.textContent = w >= 0.995 ? "1" : fixed(w, 2).replace(/^0/, "");
  }
}

function describe(r, c) {
  const { rows, cols, weights, masked } = view;
  if (r !== null && c !== null) {
    if (masked(r, c)) return `${rows[r]} → ${cols[c]}: masked (a later token), weight 0`;
    return `${rows[r]} → ${cols[c]}: ${fixed(weights[r][c], 4)}`;
  }
  const pairs = r !== null
    ? cols.map((token, k) => [token, weights[r][k], masked(r, k)])
    : rows.map((token, k) => [token, weights[k][c], masked(k, c)]);
  const open = pairs.filter((p) => !p[2]).sort((a, b) => b[1] - a[1]);
  const shown = open.filter((p, k) => k < 8 && p[1] >= 0.0005);
  let list = shown.map(([token, w]) => `${token} ${fixed(w, 3)}`).join(" · ");
  list += restNote(open.length - shown.length, shown.length < open.length ? open[shown.length][1] : 0);
  return r !== null ? `${rows[r]} attends to: ${list}` : `${cols[c]} is attended by: ${list}`;
}

// " · the other N under 0.001" (or "... at most 0.012"): the weights a readout leaves out.
function restNote(count, largest) {
  if (count === 0) return "";
  return largest < 0.001 ? ` · the other ${count} under 0.001` : ` · the other ${count} at most ${fixed(largest, 3)}`;
}

function onHeatmapPointer(event) {
  const target = event.target.closest("[data-row], [data-col]");
  if (!target || !view) return;
  const r = target.dataset.row === undefined ? null : Number(target.dataset.row);
  const c = target.dataset.col === undefined ? null : Number(target.dataset.col);
  pointed = { r, c };
  highlight(r, c);
}

// -- the alignment ---------------------------------------------------------------------------------------

function drawAlignment(weights) {
  const sources = data.source_tokens;
  const outputs = data.output_tokens;
  const step = 24;
  const leftWidth = longest(sources) * CHAR_WIDTH + 12;
  const rightWidth = longest(outputs) * CHAR_WIDTH + 12;
  const width = Math.max(260, Math.min(520, $("alignment-box").clientWidth || 360));
  const height = Math.max(sources.length, outputs.length) * step + 12;
  const ySource = (j) => 6 + (height - 12 - sources.length * step) / 2 + j * step + step / 2;
  const yOutput = (i) => 6 + (height - 12 - outputs.length * step) / 2 + i * step + step / 2;
  const x0 = leftWidth + 4;
  const x1 = width - rightWidth - 4;

  const root = $("alignment");
  root.replaceChildren();
  root.setAttribute("width", width);
  root.setAttribute("height", height);
  root.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const lines = svg("g", { class: "lines" }, root);
  weights.forEach((row, i) => row.forEach((w, j) => {
    svg("path", { class: "align-line", d: `M${x0},${ySource(j)} C${(x0 + x1) / 2},${ySource(j)} ` +
      `${(x0 + x1) / 2},${yOutput(i)} ${x1},${yOutput(i)}`, "stroke-width": Math.max(w * LINE_WIDTH, 0.01),
      "stroke-opacity": 0.15 + 0.85 * w, "data-row": i, "data-col": j, "data-weight": String(w) }, lines);
  }));
  sources.forEach((token, j) => {
    const label = svg("text", { class: "token source-token", x: leftWidth - 4, y: ySource(j),
      "text-anchor": "end", "dominant-baseline": "central", "data-col": j }, root);
    label.textContent = token;
  });
  outputs.forEach((token, i) => {
    const label = svg("text", { class: "token output-token", x: width - rightWidth + 4, y: yOutput(i),
      "dominant-baseline": "central", "data-row": i }, root);
    label.textContent = token;
  });
  $("align-readout").textContent = "Point at a token to follow its lines.";
}

function onAlignmentPointer(event) {
  const target = event.target.closest("[data-row], [data-col]");
  const root = $("alignment");
  for (const el of root.querySelectorAll(".lit, .dim, .active")) el.classList.remove("lit", "dim", "active");
  if (!target || !data) return;
  const byRow = target.dataset.row !== undefined && target.tagName === "text";
  const byCol = target.dataset.col !== undefined && target.tagName === "text";
  const lines = [...root.querySelectorAll(".align-line")];
  let chosen;
  if (byRow) chosen = lines.filter((l) => l.dataset.row === target.dataset.row);
  else if (byCol) chosen = lines.filter((l) => l.dataset.col === target.dataset.col);
  else chosen = [target];
  lines.forEach((l) => l.classList.add(chosen.includes(l) ? "lit" : "dim"));
  if (target.tagName === "text") target.classList.add("active");
  const outputs = data.output_tokens;
  const sources = data.source_tokens;
  const all = chosen.map((l) => [Number(l.dataset.row), Number(l.dataset.col), Number(l.dataset.weight)])
    .sort((a, b) => b[2] - a[2]);
  const top = all.filter((line, k) => k < 6 && line[2] >= 0.0005);
  $("align-readout").textContent = top.map(([i, j, w]) => `${outputs[i]} ← ${sources[j]} ${fixed(w, 3)}`)
    .join(" · ") + restNote(all.length - top.length, top.length < all.length ? all[top.length][2] : 0);
}

// -- wiring ---------------------------------------------------------------------------------------------

function init() {
  $("translate-form").addEventListener("submit", translate);
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("translate-form").requestSubmit();
    }
  });
  $("beam-size").addEventListener("change", () => { $("n-best").max = $("beam-size").value || 1; });
  $("kind").addEventListener("change", () => { fillSelectors(); render(); });
  $("layer").addEventListener("change", render);
  $("head").addEventListener("change", render);
  const heatmap = $("heatmap");
  heatmap.addEventListener("mouseover", onHeatmapPointer);
  heatmap.addEventListener("click", onHeatmapPointer); // a tap on a phone
  heatmap.addEventListener("mouseleave", () => {
    pointed = null;
    clearHighlight();
    if (view) $("readout").textContent = "Point at a token or a cell.";
  });
  const alignment = $("alignment");
  alignment.addEventListener("mouseover", onAlignmentPointer);
  alignment.addEventListener("click", onAlignmentPointer);
  alignment.addEventListener("mouseleave", onAlignmentPointer);
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(relayout, 150);
  });
  loadDefaults();
}

init();
