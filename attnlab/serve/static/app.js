// attnlab explorer: asks the JSON API for the tags and attention weights of a sentence and
// draws them in four views: one head (heatmap + lines, several heads overlaid), the whole
// model (every layer x head), the seed's steps of one head with their numbers, and two
// sentences side by side. weights[l][h][i][j] = alpha'_(i,j) of head h in layer l: query
// token i, key token j (numbered from 0 here, from 1 on the page and in the URL).
// The view lives in the URL (#text=...&layer=..&head=..&view=..), so a link reopens it.
// Embedded in a notebook (attnlab.viz.show), window.ATTNLAB_EMBED holds the API's answers.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const VIEWS = ["head", "model", "steps", "compare", "why"];
const SCALES = ["row", "matrix", "fixed"];

const state = {
  data: null,          // the answer of /api/attention for the sentence
  text: "",            // ... which was this
  other: null,         // ... for the second sentence (compare view)
  steps: new Map(),    // "layer,head" -> the answer of /api/steps
  layer: 0, head: 0, query: 0, view: "head", scale: "row",
  word: 0, tagLayer: "UPOS",  // the Why view (why.js): the word whose tag it explains, and the tag layer
  overlay: new Set([0]),  // heads drawn in the line view
  focus: null,            // {side: "query" | "key", index} under the pointer
};

// -- colours ----------------------------------------------------------------------------------
// the viridis scale, sampled at nine points and interpolated
const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [110, 206, 88], [253, 231, 37],
];
// one colour per head in the line view (colour-blind safe, Okabe-Ito)
const HEAD_COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442"];

function colour(t) {
  const x = Math.min(Math.max(t, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const c = VIRIDIS[i].map((v, k) => Math.round(v + f * (VIRIDIS[i + 1][k] - v)));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function headColour(h) { return HEAD_COLOURS[h % HEAD_COLOURS.length]; }

// signed numbers (q, k, v, b): blue below 0, red above, white at 0
function diverging(t) {
  const a = Math.min(Math.abs(t), 1);
  const [r, g, b] = t < 0 ? [33, 102, 172] : [178, 24, 43];
  const mix = (c) => Math.round(255 + a * (c - 255));
  return `rgb(${mix(r)}, ${mix(g)}, ${mix(b)})`;
}

// The colour scale of a view: t(i, j) in [0, 1] and the legend's words.
function colourScale(w, mode) {
  if (mode === "row") {
    const tops = w.map((row) => Math.max(...row, 1e-12));
    return { t: (i, j) => w[i][j] / tops[i], top: "row max", text: "colour: α′ divided by the largest α′ of its row (each query's strongest key is yellow)" };
  }
  if (mode === "matrix") {
    const top = Math.max(1e-12, ...w.map((row) => Math.max(...row)));
    return { t: (i, j) => w[i][j] / top, top: top.toFixed(2), text: `colour: α′ from 0 to ${top.toFixed(3)}, the largest α′ of this head` };
  }
  return { t: (i, j) => w[i][j], top: "1", text: "colour: α′ on a fixed scale from 0 to 1" };
}

// -- talking to the API -------------------------------------------------------------------------
function embedded(path, body) {
  // the answers a notebook embedded in the page (attnlab.viz.show), by sentence
  const e = window.ATTNLAB_EMBED;
  if (path === "/api/health") return e.health;
  const found = e.sentences[body.text];
  if (!found) {
    throw new Error(`this page was saved with ${Object.keys(e.sentences).map((s) => `“${s}”`).join(" and ")} only; ` +
                    "call attnlab.viz.show with another sentence");
  }
  if (path === "/api/attention") return found.attention;
  return found.steps[`${body.layer},${body.head}`];
}

async function api(path, body) {
  if (window.ATTNLAB_EMBED) return embedded(path, body);
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new Error("cannot reach the server: is `attnlab serve` still running?");
  }
  let data = null;
  try { data = await response.json(); } catch (err) { /* not JSON: reported below */ }
  if (!response.ok) {
    throw new Error((data && data.error) || `the server answered ${response.status}`);
  }
  return data;
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

function fillSelect(select, labels, value) {
  select.replaceChildren();
  labels.forEach((label, i) => {
    const option = document.createElement("option");
    option.value = String(i);
    option.textContent = label;
    select.appendChild(option);
  });
  select.value = String(Math.min(Math.max(value, 0), labels.length - 1));
  return Number(select.value);
}

function numbered(count, word) { return Array.from({ length: count }, (_, i) => `${word} ${i + 1}`); }

async function loadHealth() {
  try {
    const health = await api("/api/health");
    const m = health.model;
    if (m.no_tags) $("submit").textContent = "Attend";  // a checkpoint: nothing to tag
    const most = health.limits.max_tokens ? `; at most ${health.limits.max_tokens} tokens per sentence` : "";
    $("model-info").textContent = m.no_attention
      ? `model ${m.name}: tags only (no attention)${most}`
      : `model ${m.name}: ${m.layers} layers × ${m.heads} heads, ${m.normalize}` +
        (m.no_tags ? `; ${m.model_type} checkpoint: word pieces, no tags` : "") + most;
  } catch (err) {
    $("model-info").textContent = "";
    showError(err.message);
  }
}

// -- the sentence -------------------------------------------------------------------------------
function clearResult() {
  state.data = null; state.other = null; state.steps.clear(); state.focus = null;
  $("result").hidden = true;
  for (const id of ["tagged", "thumbs", "steps-panel", "lines", "hover-info", "readout"]) $(id).replaceChildren();
}

async function submit(event) {
  if (event) event.preventDefault();
  const text = $("sentence").value.trim();
  if (!text) { clearResult(); showError("type a sentence first"); return; }
  const button = $("submit");
  button.disabled = true;
  document.body.dataset.ready = "0";
  try {
    const data = await api("/api/attention", { text });
    showError("");
    clearResult();
    state.data = data; state.text = text;
    state.query = Math.min(state.query, data.tokens.length - 1);
    $("result").hidden = false;
    renderTags($("tagged"), data, true);
    setupAttention();
    await render();
    document.body.dataset.ready = "1";
  } catch (err) {
    clearResult();  // never leave the previous sentence's results under the message
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

function setupAttention() {
  const d = state.data;
  // a checkpoint without a tagging head: its word pieces stand where the tags would
  $("no-tags").hidden = !d.no_tags;
  $("no-tags").textContent = d.no_tags ? `No tags: ${d.no_tags}.` : "";
  $("tags-heading").textContent = d.no_tags ? "Word pieces" : "Tags";
  const none = Boolean(d.no_attention);
  $("no-attention").hidden = !none;
  $("no-attention").textContent = none ? `No attention to draw: ${d.no_attention}.` : "";
  $("attention").hidden = none;
  if (none) return;
  state.layer = fillSelect($("layer"), numbered(d.layers, "layer"), state.layer);
  state.head = fillSelect($("head"), numbered(d.heads, "head"), state.head);
  state.query = fillSelect($("query"), d.tokens.map((t, i) => `${i + 1}: ${t}`), state.query);
  state.overlay = new Set([...state.overlay].filter((h) => h < d.heads));
  if (!state.overlay.size) state.overlay.add(state.head);
  renderToggles();
}

// -- the tagged sentence: every layer of tags the model predicts ----------------------------------
function renderTags(box, data, interactive) {
  box.replaceChildren();
  const layers = data.annotations || [{ name: "UPOS", tags: data.tags, probabilities: data.probs }];
  data.tokens.forEach((word, i) => {
    const chip = document.createElement("span");
    chip.className = "token";
    chip.dataset.index = String(i);
    chip.title = layers.map((a) => `${a.name} ${a.tags[i]}: P = ${a.probabilities[i].toFixed(3)}`).join("\n");
    const part = (cls, text) => {
      const el = document.createElement("span");
      el.className = cls; el.textContent = text; chip.appendChild(el);
      return el;
    };
    part("word", word);
    layers.forEach((a, k) => {
      part(k === 0 ? "tag" : "tag extra", a.tags[i]).dataset.layer = a.name;
      part("prob", a.probabilities[i].toFixed(2));
    });
    if (interactive) {
      chip.addEventListener("mouseenter", () => setFocus({ side: "query", index: i }));
      chip.addEventListener("mouseleave", () => setFocus(null));
    }
    box.appendChild(chip);
  });
}

function setFocus(focus) {
  const same = (a, b) => (a === null && b === null) || (a !== null && b !== null && a.side === b.side && a.index === b.index);
  if (same(state.focus, focus)) return;
  state.focus = focus;
  document.querySelectorAll("#tagged .token").forEach((chip) => {
    chip.classList.toggle("focus", focus !== null && Number(chip.dataset.index) === focus.index);
  });
  if (state.view === "head") renderHead();
}

function headWeights(data, layer, head) { return data.weights[layer][head]; }  // (n, n)

// -- rendering the chosen view --------------------------------------------------------------------
async function render() {
  writeUrl();
  if (!state.data || state.data.no_attention) return;
  document.querySelectorAll("#view-tabs button").forEach((b) => b.classList.toggle("active", b.dataset.view === state.view));
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== state.view;
  for (const id of ["controls", "legend-text"]) $(id).hidden = state.view === "why";  // heatmap settings
  const legend = colourScale(headWeights(state.data, state.layer, state.head), state.scale).text;
  $("legend-text").textContent = state.view === "model" && state.scale === "matrix"
    ? "colour: α′ from 0 to the largest α′ of each head (one scale per thumbnail)" : legend;
  try {
    if (state.view === "head") renderHead();
    else if (state.view === "model") renderModel();
    else if (state.view === "steps") await renderSteps();
    else if (state.view === "why") { if (window.renderWhy) await window.renderWhy(); }  // why.js, loaded after this file
    else await renderCompare();
  } catch (err) {
    showError(err.message);
  }
}

function renderHead() {
  const w = headWeights(state.data, state.layer, state.head);
  drawHeatmap($("heatmap"), state.data, w, { focus: state.focus });
  const canvas = $("heatmap");
  canvas.dataset.layer = String(state.layer);
  canvas.dataset.head = String(state.head);
  canvas.setAttribute("aria-label", `attention heatmap of layer ${state.layer + 1}, head ${state.head + 1}`);
  drawLines();
  describeFocus();
}

// -- the heatmap ----------------------------------------------------------------------------------
// Draws w (n x n) with the tokens on both axes; remembers its geometry on the canvas for readCell.
function drawHeatmap(canvas, data, w, { focus = null, maxCell = 40, area = 420 } = {}) {
  const ctx = canvas.getContext("2d");
  const n = data.tokens.length;
  const cell = Math.max(12, Math.min(maxCell, Math.floor(area / n)));
  const font = `${cell < 16 ? 11 : 13}px system-ui, sans-serif`;  // labels no taller than their row
  ctx.font = font;
  const width = (s) => ctx.measureText(s).width;
  const tagGap = data.tags.length ? Math.max(...data.tags.map(width)) + 10 : 0;  // no tags: word pieces alone
  const left = Math.ceil(Math.max(...data.tokens.map(width)) + tagGap) + 14;
  // a key label that fits in its column is written upright; a longer one upwards
  const upright = data.tokens.map((t) => width(t) <= cell - 3);
  const top = Math.ceil(Math.max(16, ...data.tokens.map((t, j) => (upright[j] ? 16 : width(t))))) + 14;
  const bar = 100;  // the colour scale on the right
  const W = left + n * cell + bar, H = top + n * cell + 12;
  sizeCanvas(canvas, ctx, W, H);
  canvas.geometry = { left, top, cell, n, w, tokens: data.tokens };

  const scale = colourScale(w, state.scale);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      ctx.fillStyle = colour(scale.t(i, j));
      ctx.fillRect(left + j * cell, top + i * cell, cell, cell);
    }
  }
  if (focus) {
    ctx.strokeStyle = "#e4572e"; ctx.lineWidth = 2;
    const k = focus.index;
    if (focus.side === "query") ctx.strokeRect(left + 1, top + k * cell + 1, n * cell - 2, cell - 2);
    else ctx.strokeRect(left + k * cell + 1, top + 1, cell - 2, n * cell - 2);
  }
  drawAxisLabels(ctx, data, { left, top, cell, tagGap, upright, font });
  drawLegend(ctx, scale, left + n * cell + 16, top, n * cell);
}

function sizeCanvas(canvas, ctx, width, height) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr); canvas.height = Math.round(height * dpr);
  canvas.style.width = `${width}px`;  // the height follows from the aspect ratio (CSS height: auto)
  canvas.cssWidth = width;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.fillStyle = "white";
  ctx.fillRect(0, 0, width, height);
}

function drawAxisLabels(ctx, data, { left, top, cell, tagGap, upright, font }) {
  ctx.font = font; ctx.textBaseline = "middle"; ctx.textAlign = "right";
  data.tokens.forEach((t, i) => {  // query tokens and their tags, left of their row
    const y = top + (i + 0.5) * cell;
    ctx.fillStyle = "#2a6fb0";
    ctx.fillText(data.tags[i] || "", left - 8, y);
    ctx.fillStyle = "#1d232a";
    ctx.fillText(t, left - 8 - tagGap, y);
  });
  data.tokens.forEach((t, j) => {  // key tokens above their column
    const x = left + (j + 0.5) * cell;
    ctx.save();
    if (upright[j]) {
      ctx.textAlign = "center"; ctx.textBaseline = "alphabetic";
      ctx.fillText(t, x, top - 8);
    } else {
      ctx.translate(x, top - 8);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      ctx.fillText(t, 0, 0);
    }
    ctx.restore();
  });
}

function drawLegend(ctx, scale, x0, top, h) {
  for (let y = 0; y < h; y++) {
    ctx.fillStyle = colour(1 - y / h);
    ctx.fillRect(x0, top + y, 14, 1);
  }
  ctx.fillStyle = "#1d232a"; ctx.font = "11px system-ui, sans-serif"; ctx.textAlign = "left"; ctx.textBaseline = "middle";
  ctx.fillText(scale.top, x0 + 18, top + 5);
  ctx.fillText("0", x0 + 18, top + h - 5);
}

function readCell(event) {
  const g = $("heatmap").geometry;
  const readout = $("readout");
  if (!g) return;
  const rect = $("heatmap").getBoundingClientRect();
  const k = $("heatmap").cssWidth / rect.width;  // the canvas may be shown smaller than drawn
  const j = Math.floor(((event.clientX - rect.left) * k - g.left) / g.cell);
  const i = Math.floor(((event.clientY - rect.top) * k - g.top) / g.cell);
  if (i < 0 || j < 0 || i >= g.n || j >= g.n) { readout.textContent = ""; return; }
  readout.textContent = `α′(${i + 1} “${g.tokens[i]}” → ${j + 1} “${g.tokens[j]}”) = ${g.w[i][j].toFixed(4)}`;
}

// -- the line view: several heads overlaid, top-k / threshold per query ----------------------------
function renderToggles() {
  const box = $("head-toggles");
  box.replaceChildren();
  for (let h = 0; h < state.data.heads; h++) {
    const label = document.createElement("label");
    label.className = "toggle";
    label.style.setProperty("--head", headColour(h));
    const box1 = document.createElement("input");
    box1.type = "checkbox"; box1.value = String(h); box1.checked = state.overlay.has(h);
    box1.setAttribute("aria-label", `draw head ${h + 1}`);
    box1.addEventListener("change", () => {
      if (box1.checked) state.overlay.add(h); else state.overlay.delete(h);
      renderHead(); writeUrl();
    });
    label.append(box1, ` head ${h + 1}`);
    box.appendChild(label);
  }
}

function svgElement(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// The keys j that query i links to: its top k (0 = all) of at least the threshold.
function keptKeys(row) {
  const k = Number($("topk").value);
  const threshold = Number($("threshold").value) || 0;
  const order = row.map((v, j) => j).sort((a, b) => row[b] - row[a]);
  return (k > 0 ? order.slice(0, k) : order).filter((j) => row[j] >= threshold);
}

function drawLines() {
  const svg = $("lines");
  const n = state.data.tokens.length;
  const row = n > 30 ? 16 : 24, pad = 34, width = 400, xLeft = 150, xRight = 250;
  const height = pad + 12 + n * row;
  svg.setAttribute("width", width); svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.classList.toggle("small", n > 30);
  svg.replaceChildren();
  const y = (i) => pad + (i + 0.5) * row;
  const f = state.focus;
  const heads = [...state.overlay].sort((a, b) => a - b);
  heads.forEach((h, k) => {
    const w = headWeights(state.data, state.layer, h);
    const scale = colourScale(w, state.scale);
    const shift = (k - (heads.length - 1) / 2) * 2;  // heads side by side, not on top of each other
    const links = svgElement("g", { stroke: headColour(h), "stroke-width": 2.5, "stroke-linecap": "round", "data-head": h });
    for (let i = 0; i < n; i++) {
      for (const j of keptKeys(w[i])) {
        if (f && ((f.side === "query" && f.index !== i) || (f.side === "key" && f.index !== j))) continue;
        links.appendChild(svgElement("line", {
          x1: xLeft + 6, y1: y(i) + shift, x2: xRight - 6, y2: y(j) + shift,
          "stroke-opacity": (0.15 + 0.85 * Math.min(scale.t(i, j), 1)).toFixed(3),
        }));
      }
    }
    svg.appendChild(links);
  });
  svg.appendChild(svgElement("text", { x: xLeft, y: 16, "text-anchor": "end", class: "tag" }, "query i"));
  svg.appendChild(svgElement("text", { x: xRight, y: 16, "text-anchor": "start", class: "tag" }, "key j"));
  for (const side of ["query", "key"]) drawLineLabels(svg, side, y, { xLeft, xRight, width });
}

function drawLineLabels(svg, side, y, { xLeft, xRight, width }) {
  const isLeft = side === "query", f = state.focus;
  state.data.tokens.forEach((t, i) => {
    const focused = f && f.side === side && f.index === i;
    const label = svgElement("text", {
      x: isLeft ? xLeft : xRight, y: y(i), "text-anchor": isLeft ? "end" : "start",
      "dominant-baseline": "middle", class: focused ? "focus" : "", "data-side": side,
    }, t);
    label.addEventListener("mouseenter", () => setFocus({ side, index: i }));
    label.addEventListener("mouseleave", () => setFocus(null));
    svg.appendChild(label);
    svg.appendChild(svgElement("text", {
      x: isLeft ? 8 : width - 8, y: y(i), "text-anchor": isLeft ? "start" : "end",
      "dominant-baseline": "middle", class: "tag",
    }, state.data.tags[i] || ""));
  });
}

// What the token under the pointer attends to and what attends to it, in each head drawn.
function describeFocus() {
  const box = $("hover-info");
  const f = state.focus;
  if (!f) { box.textContent = "Point at a token to see what it attends to and what attends to it."; return; }
  const tokens = state.data.tokens;
  const top3 = (pairs) => pairs.sort((a, b) => b[1] - a[1]).slice(0, 3)
    .map(([j, v]) => `${tokens[j]} ${v.toFixed(2)}`).join(", ");
  box.replaceChildren();
  const title = document.createElement("b");
  title.textContent = `${f.index + 1} “${tokens[f.index]}”`;
  box.appendChild(title);
  for (const h of [...state.overlay].sort((a, b) => a - b)) {
    const w = headWeights(state.data, state.layer, h);
    const line = document.createElement("span");
    line.className = "focus-line"; line.dataset.head = String(h);
    line.style.color = headColour(h);
    line.textContent = `head ${h + 1}: attends to ${top3(w[f.index].map((v, j) => [j, v]))}; ` +
                       `attended by ${top3(w.map((row, i) => [i, row[f.index]]))}`;
    box.appendChild(line);
  }
}

// -- the model view: every layer x head ---------------------------------------------------------
function renderModel() {
  const box = $("thumbs");
  box.replaceChildren();
  const d = state.data, n = d.tokens.length;
  const cell = Math.max(2, Math.floor(110 / n));
  for (let l = 0; l < d.layers; l++) {
    const row = document.createElement("div");
    row.className = "thumb-row";
    row.style.gridTemplateColumns = `4.2rem repeat(${d.heads}, minmax(0, ${n * cell + 8}px))`;
    const name = document.createElement("span");
    name.className = "thumb-layer"; name.textContent = `layer ${l + 1}`;
    row.appendChild(name);
    for (let h = 0; h < d.heads; h++) row.appendChild(thumbnail(l, h, cell));
    box.appendChild(row);
  }
}

function thumbnail(l, h, cell) {
  const w = headWeights(state.data, l, h), n = w.length;
  const canvas = document.createElement("canvas");
  canvas.className = "thumb" + (l === state.layer && h === state.head ? " current" : "");
  Object.assign(canvas.dataset, { layer: String(l), head: String(h) });
  canvas.title = `layer ${l + 1}, head ${h + 1}: click to look at it`;
  canvas.setAttribute("role", "button");
  canvas.setAttribute("aria-label", `layer ${l + 1} head ${h + 1}`);
  const ctx = canvas.getContext("2d");
  sizeCanvas(canvas, ctx, n * cell, n * cell);
  const scale = colourScale(w, state.scale);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      ctx.fillStyle = colour(scale.t(i, j));
      ctx.fillRect(j * cell, i * cell, cell, cell);
    }
  }
  canvas.tabIndex = 0;
  const focusHead = () => {
    state.layer = l; state.head = h; state.view = "head"; state.overlay = new Set([h]);
    $("layer").value = String(l); $("head").value = String(h);
    renderToggles();
    render();
  };
  canvas.addEventListener("click", focusHead);
  canvas.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); focusHead(); } });
  const figure = document.createElement("figure");
  figure.className = "thumb-cell";
  const caption = document.createElement("figcaption");
  caption.textContent = `head ${h + 1}`;
  figure.append(canvas, caption);
  return figure;
}

// -- the seed's steps for one head and one query word ---------------------------------------------
async function stepsOf(layer, head) {
  const key = `${layer},${head}`;
  if (!state.steps.has(key)) {
    state.steps.set(key, await api("/api/steps", { text: state.text, layer, head }));
  }
  return state.steps.get(key);
}

async function renderSteps() {
  const s = await stepsOf(state.layer, state.head);
  const i = state.query, tokens = s.tokens;
  const panel = $("steps-panel");
  panel.replaceChildren();
  const para = (html) => { const p = document.createElement("p"); p.className = "step"; p.innerHTML = html; panel.appendChild(p); return p; };
  const word = (j) => `<b>${j + 1} “${escapeHtml(tokens[j])}”</b>`;
  para(`Layer ${state.layer + 1}, head ${state.head + 1}, query word ${word(i)}: ` +
       `q<sup>i</sup> = W<sup>q</sup>a<sup>i</sup>, k<sup>j</sup> = W<sup>k</sup>a<sup>j</sup>, ` +
       `v<sup>j</sup> = W<sup>v</sup>a<sup>j</sup> (d = ${s.d}, √d = ${Math.sqrt(s.d).toFixed(4)})`);
  panel.appendChild(vectorRow("q", i, s.q[i]));
  para(`α<sub>i,j</sub> = q<sup>i</sup> · k<sup>j</sup> / √d, then ${NORMALIZER_HTML[s.normalize].formula}:`);
  panel.appendChild(stepsTable(s, i));
  const lz = s.normalizer[i];
  const extra = s.normalize === "softmax" ? ` (Z<sub>i</sub> = ${Math.exp(lz).toPrecision(5)})` : "";
  para(`Normalizer of query ${i + 1}: ${NORMALIZER_HTML[s.normalize].name} = ` +
       `<span id="steps-normalizer">${lz.toFixed(4)}</span>${extra}`);
  para("b<sup>i</sup> = Σ<sub>j</sub> α′<sub>i,j</sub> v<sup>j</sup> (the head's output for this word):");
  panel.appendChild(vectorRow("b", i, s.b[i]));
  const chart = document.createElement("canvas");
  chart.id = "steps-chart";
  chart.setAttribute("role", "img");
  chart.setAttribute("aria-label", `α′ of query ${i + 1} over every key`);
  panel.appendChild(chart);
  drawStepsChart(chart, s, i);
}

// how alpha' follows from alpha, as the page writes it (the API's normalizer_formula in HTML)
const NORMALIZER_HTML = {
  softmax: { name: "log Z<sub>i</sub>", formula: "α′<sub>i,j</sub> = exp(α<sub>i,j</sub> − log Z<sub>i</sub>), " +
             "log Z<sub>i</sub> = log Σ<sub>j</sub> exp(α<sub>i,j</sub>)" },
  relu: { name: "c<sub>i</sub>", formula: "α′<sub>i,j</sub> = max(α<sub>i,j</sub>, 0) / c<sub>i</sub>, " +
          "c<sub>i</sub> = the keys word i may attend to" },
  sigmoid: { name: "log c<sub>i</sub>", formula: "α′<sub>i,j</sub> = sigmoid(α<sub>i,j</sub> − log c<sub>i</sub>), " +
             "c<sub>i</sub> = the keys word i may attend to" },
};

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// A vector (q^i, k^j, v^j, b^i) as a row of numbered cells coloured by sign and size.
function vectorRow(name, index, values) {
  const box = document.createElement("div");
  box.className = "vector";
  box.dataset.name = name;
  const label = document.createElement("span");
  label.className = "vector-name";
  label.innerHTML = `${name}<sup>${index + 1}</sup>`;
  box.appendChild(label);
  box.appendChild(vectorCells(values));
  return box;
}

function vectorCells(values) {
  const cells = document.createElement("span");
  cells.className = "cells";
  const top = Math.max(1e-9, ...values.map(Math.abs));
  for (const v of values) {
    const c = document.createElement("span");
    c.className = "num"; c.textContent = v.toFixed(3); c.dataset.value = String(v);
    c.style.background = diverging(v / top);
    cells.appendChild(c);
  }
  return cells;
}

function stepsTable(s, i) {
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  const table = document.createElement("table");
  table.id = "steps-table";
  const head = table.createTHead().insertRow();
  for (const h of ["j", "key word", "k<sup>j</sup>", "α<sub>i,j</sub>", "α′<sub>i,j</sub>", "v<sup>j</sup>"]) {
    const th = document.createElement("th"); th.innerHTML = h; head.appendChild(th);
  }
  const body = table.createTBody();
  const top = Math.max(1e-9, ...s.alpha_prime[i]);
  s.tokens.forEach((t, j) => {
    const tr = body.insertRow();
    tr.dataset.key = String(j);
    if (j === i) tr.className = "query";
    const cell = (cls, content) => {
      const td = tr.insertCell(); td.className = cls;
      if (content instanceof Node) td.appendChild(content); else td.textContent = content;
      return td;
    };
    cell("j", String(j + 1)); cell("word", t);
    cell("k", vectorCells(s.k[j]));
    cell("alpha", s.alpha[i][j].toFixed(4)).dataset.value = String(s.alpha[i][j]);
    const ap = cell("alpha-prime", s.alpha_prime[i][j].toFixed(4));
    ap.dataset.value = String(s.alpha_prime[i][j]);
    ap.style.background = `linear-gradient(to right, rgba(42,111,176,0.35) ${(100 * s.alpha_prime[i][j] / top).toFixed(1)}%, transparent 0)`;
    cell("v", vectorCells(s.v[j]));
  });
  wrap.appendChild(table);
  return wrap;
}

// alpha_(i,j) (grey) and alpha'_(i,j) (blue) of one query as bars over the keys j.
function drawStepsChart(canvas, s, i) {
  const ctx = canvas.getContext("2d");
  const n = s.tokens.length, bar = Math.max(10, Math.min(36, Math.floor(560 / n)));
  const left = 40, top = 24, h = 120, labels = 70;
  const W = left + n * bar + 20, H = top + 2 * h + labels;
  sizeCanvas(canvas, ctx, W, H);
  const alpha = s.alpha[i], ap = s.alpha_prime[i];
  const span = Math.max(1e-9, ...alpha.map(Math.abs));
  const zero = top + h / 2;
  ctx.font = "11px system-ui, sans-serif"; ctx.fillStyle = "#1d232a"; ctx.textBaseline = "middle";
  ctx.fillText(`α  (q·k/√d) of query ${i + 1} “${s.tokens[i]}”`, left, 10);
  ctx.fillText("α′ (normalized)", left, top + h + 10);
  for (let j = 0; j < n; j++) {
    const x = left + j * bar + 2;
    ctx.fillStyle = "#8a949e";
    const a = (alpha[j] / span) * (h / 2 - 4);
    ctx.fillRect(x, Math.min(zero, zero - a), bar - 4, Math.abs(a));
    ctx.fillStyle = "#2a6fb0";
    const b = ap[j] * (h - 24);
    ctx.fillRect(x, top + 2 * h - b, bar - 4, b);
    if (bar >= 26) {
      ctx.fillStyle = "#1d232a"; ctx.textAlign = "center";
      ctx.fillText(ap[j].toFixed(2), x + bar / 2 - 2, top + 2 * h - b - 8);
      ctx.textAlign = "left";
    }
    ctx.save();
    ctx.fillStyle = "#1d232a";
    ctx.translate(x + bar / 2 - 2, top + 2 * h + 6);
    ctx.rotate(Math.PI / 3);
    ctx.fillText(s.tokens[j], 0, 0);
    ctx.restore();
  }
  ctx.strokeStyle = "#d5dae0";
  ctx.beginPath(); ctx.moveTo(left, zero); ctx.lineTo(W - 10, zero); ctx.stroke();
}

// -- two sentences side by side --------------------------------------------------------------------
async function renderCompare() {
  const text = $("sentence2").value.trim();
  if (!text) return;
  if (!state.other || state.other.text !== text) {
    try {
      state.other = { text, data: await api("/api/attention", { text }) };
      showError("");
    } catch (err) {
      state.other = null;
      showError(`second sentence: ${err.message}`);
    }
  }
  const panes = [[state.data, "a"], [state.other && state.other.data, "b"]];
  for (const [data, side] of panes) {
    const canvas = $(`heatmap-${side}`);
    canvas.hidden = !data;
    if (!data) continue;
    drawHeatmap(canvas, data, headWeights(data, state.layer, state.head), { maxCell: 32, area: 300 });
    canvas.dataset.layer = String(state.layer); canvas.dataset.head = String(state.head);
    $(`caption-${side}`).textContent = `“${data.tokens.join(" ")}”: ` +
      (data.no_tags ? data.tokens : data.tokens.map((t, i) => `${t}/${data.tags[i]}`)).join(" ");
  }
}

// -- export -------------------------------------------------------------------------------------------
// A picture of the current view: one canvas, or several drawn side by side on a new one.
function viewCanvas() {
  if (state.view === "head") return $("heatmap");
  if (state.view === "steps") return $("steps-chart");
  const parts = state.view === "model" ? [...document.querySelectorAll("#thumbs canvas")]
    : [$("heatmap-a"), $("heatmap-b")].filter((c) => !c.hidden);
  const perRow = state.view === "model" ? state.data.heads : parts.length;
  const gap = 10;
  const cw = Math.max(...parts.map((c) => c.width)), ch = Math.max(...parts.map((c) => c.height));
  const out = document.createElement("canvas");
  out.width = perRow * (cw + gap) + gap;
  out.height = Math.ceil(parts.length / perRow) * (ch + gap) + gap;
  const ctx = out.getContext("2d");
  ctx.fillStyle = "white"; ctx.fillRect(0, 0, out.width, out.height);
  parts.forEach((c, k) => ctx.drawImage(c, gap + (k % perRow) * (cw + gap), gap + Math.floor(k / perRow) * (ch + gap)));
  return out;
}

function viewJson() {
  const d = state.data, base = { tokens: d.tokens, tags: d.tags, normalize: d.normalize };
  const at = { layer: state.layer + 1, head: state.head + 1 };
  if (state.view === "model") return { ...base, layers: d.layers, heads: d.heads, weights: d.weights };
  if (state.view === "steps") return { ...at, query: state.query + 1, steps: state.steps.get(`${state.layer},${state.head}`) };
  if (state.view === "compare" && state.other) {
    const o = state.other.data;
    return { ...at, sentences: [d, o].map((x) => ({ tokens: x.tokens, tags: x.tags, weights: headWeights(x, state.layer, state.head) })) };
  }
  return { ...base, ...at, weights: headWeights(d, state.layer, state.head) };
}

function exportName(ext) { return `attention-${state.view}-layer${state.layer + 1}-head${state.head + 1}.${ext}`; }

function exportPng() {
  const link = $("export-png");
  link.href = viewCanvas().toDataURL("image/png");
  link.download = exportName("png");
}

function exportJson() {
  const link = $("export-json");
  link.href = "data:application/json;charset=utf-8," + encodeURIComponent(JSON.stringify(viewJson(), null, 1));
  link.download = exportName("json");
}

// -- the URL holds the view ----------------------------------------------------------------------------
function writeUrl() {
  const p = new URLSearchParams();
  const text = $("sentence").value.trim();
  if (text) p.set("text", text);
  p.set("view", state.view); p.set("layer", state.layer + 1); p.set("head", state.head + 1);
  p.set("scale", state.scale);
  if (state.view === "steps") p.set("query", state.query + 1);
  if (state.view === "compare") p.set("compare", $("sentence2").value.trim());
  if (state.view === "why") { p.set("word", state.word + 1); p.set("tag", state.tagLayer); }
  if (state.view === "head") p.set("heads", [...state.overlay].sort((a, b) => a - b).map((h) => h + 1).join(","));
  try { history.replaceState(null, "", `#${p.toString()}`); } catch (err) { /* a page without a URL of its own */ }
}

function readUrl(hash) {
  const p = new URLSearchParams(hash.replace(/^#/, ""));
  const number = (name) => Math.max(0, (parseInt(p.get(name), 10) || 1) - 1);
  if (p.has("text")) $("sentence").value = p.get("text");
  if (p.has("compare")) $("sentence2").value = p.get("compare");
  state.view = VIEWS.includes(p.get("view")) ? p.get("view") : "head";
  state.scale = SCALES.includes(p.get("scale")) ? p.get("scale") : "row";
  $("scale").value = state.scale;
  state.layer = number("layer"); state.head = number("head"); state.query = number("query");
  state.word = number("word"); state.tagLayer = (p.get("tag") || "UPOS").toUpperCase();
  const heads = (p.get("heads") || "").split(",").map((h) => parseInt(h, 10) - 1).filter((h) => h >= 0);
  state.overlay = new Set(heads.length ? heads : [state.head]);
  return p.has("text");
}

// -- wiring ----------------------------------------------------------------------------------------------
function wire() {
  $("sentence-form").addEventListener("submit", submit);
  $("compare-form").addEventListener("submit", (e) => { e.preventDefault(); render(); });
  $("layer").addEventListener("change", () => { state.layer = Number($("layer").value); render(); });
  $("head").addEventListener("change", () => {
    state.head = Number($("head").value); state.overlay = new Set([state.head]);
    renderToggles(); render();
  });
  $("query").addEventListener("change", () => { state.query = Number($("query").value); render(); });
  $("scale").addEventListener("change", () => { state.scale = $("scale").value; render(); });
  for (const id of ["topk", "threshold"]) {
    for (const kind of ["input", "change"]) $(id).addEventListener(kind, () => renderHead());
  }
  document.querySelectorAll("#view-tabs button").forEach((b) => {
    b.addEventListener("click", () => { state.view = b.dataset.view; render(); });
  });
  $("heatmap").addEventListener("mousemove", readCell);
  $("heatmap").addEventListener("mouseleave", () => { $("readout").textContent = ""; });
  $("export-png").addEventListener("click", exportPng);
  $("export-json").addEventListener("click", exportJson);
  window.addEventListener("hashchange", () => { if (readUrl(location.hash)) submit(); });
}

async function start() {
  wire();
  await loadHealth();
  const embed = window.ATTNLAB_EMBED;
  if (readUrl(location.hash || (embed ? embed.hash : ""))) await submit();
}

start();
