// attnlab explorer, the Why view: why did the tagger give a word its tag? For the chosen word
// and tag layer, /api/why answers with integrated gradients (Sundararajan et al. 2017) of the
// tag's logit over every input word, with the completeness check (the attributions sum to the
// logit at the input minus the logit at the baseline), and row t of attention rollout (Abnar &
// Zuidema 2020). Drawn as one row per input word: a signed bar (red raises the logit, blue
// lowers it) and a rollout bar. Uses app.js's state, $, api and showError; loaded after it.
"use strict";

const whyAnswers = new Map();  // "text|word|layer" -> the answer of /api/why
const WHY_POSITIVE = "#b2182b", WHY_NEGATIVE = "#2166ac", WHY_ROLLOUT = "#5b6570";

async function whyAnswer(word, layer) {
  const key = `${state.text}|${word}|${layer}`;
  if (whyAnswers.has(key)) return whyAnswers.get(key);
  let answer;
  const embed = window.ATTNLAB_EMBED;
  if (embed) {  // a notebook page: the answers attnlab.viz.show saved, by sentence
    const saved = (embed.sentences[state.text] || {}).why;
    if (!saved) throw new Error("this page was saved without the Why view's answers; call attnlab.viz.show with why_steps > 0 (by default only a sentence of at most 12 words has them)");
    answer = saved[`${word},${layer}`];
    if (!answer) throw new Error(`this page holds no answer for word ${word + 1} on ${layer}`);
  } else {
    answer = await api("/api/why", { text: state.text, word, layer });
  }
  whyAnswers.set(key, answer);
  return answer;
}

function whyLayers() {
  return (state.data.annotations || []).map((a) => a.name);
}

async function renderWhy() {
  const d = state.data;
  if (!d) return;
  const layers = whyLayers();
  if (d.no_tags || !layers.length) {
    $("why-summary").textContent = `No tags to explain${d.no_tags ? `: ${d.no_tags}` : ""}.`;
    $("why-chart").replaceChildren();
    return;
  }
  state.word = fillSelect($("why-word"), d.tokens.map((t, i) => `${i + 1}: ${t}`), state.word);
  if (!layers.includes(state.tagLayer)) state.tagLayer = layers[0];
  fillSelect($("why-layer"), layers, layers.indexOf(state.tagLayer));
  writeUrl();
  const text = state.text, word = state.word, layer = state.tagLayer;
  $("why-summary").textContent = "computing…";
  let w;
  try {
    w = await whyAnswer(word, layer);
  } catch (err) {
    $("why-summary").textContent = "";
    $("why-chart").replaceChildren();
    throw err;
  }
  if (text !== state.text || word !== state.word || layer !== state.tagLayer) return;  // chosen again meanwhile
  drawWhy(w);
}

function drawWhy(w) {
  const t = w.word, pct = (x) => `${(100 * x).toFixed(2)} %`;
  $("why-summary").textContent = `Word ${t + 1} “${w.tokens[t]}” is tagged ${w.layer} ${w.tag} ` +
    `(P = ${w.probability.toFixed(3)}). Its ${w.score_name} is ${w.score.toFixed(3)} here and ` +
    `${w.baseline_score.toFixed(3)} at the baseline: a difference of ${w.difference.toFixed(3)}.`;
  const check = $("why-check");
  check.textContent = `Completeness: the attributions sum to ${w.sum.toFixed(3)}; gap ${w.gap.toFixed(4)} ` +
    `(${pct(w.relative_gap)} of the difference, ${w.steps} gradient evaluations, ${w.rule}).`;
  check.dataset.gap = String(w.gap);
  check.dataset.sum = String(w.sum);
  $("why-legend").textContent = "Attribution: integrated gradients of the tag's logit; red raises it, blue lowers it, " +
    "bars scaled to the largest |attribution|. Rollout: the share of the word's top vector that traces back to each " +
    "input word through the attention layers (grey, scaled to the largest)." + (w.note ? ` Note: ${w.note}.` : "");
  $("why-method").textContent = `Baseline: ${w.baseline}. Share: attribution / sum of |attributions|.` +
    (w.no_rollout ? ` No rollout: ${w.no_rollout}.` : "");

  const chart = $("why-chart");
  chart.replaceChildren();
  const head = whyRow(chart, "why-head", "columnheader");
  for (const label of ["i", "word", "attribution", "share", "rollout"]) whyCell(head, label, label);
  const top = Math.max(1e-12, ...w.attributions.map(Math.abs));
  const topRoll = w.rollout ? Math.max(1e-12, ...w.rollout) : 1;
  w.tokens.forEach((token, i) => {
    const row = whyRow(chart, i === t ? "why-row chosen" : "why-row", "cell");
    row.dataset.index = String(i);
    row.dataset.attribution = String(w.attributions[i]);
    row.dataset.rollout = w.rollout ? String(w.rollout[i]) : "";
    whyCell(row, "i", String(i + 1));
    whyCell(row, "word", token).title = token;
    const a = w.attributions[i];
    const ig = whyCell(row, "attribution", "");
    const bar = document.createElement("span");
    bar.className = "bar signed";
    const half = (50 * Math.abs(a) / top).toFixed(2);
    bar.style.background = a >= 0
      ? `linear-gradient(to right, transparent 50%, ${WHY_POSITIVE} 50%, ${WHY_POSITIVE} ${50 + Number(half)}%, transparent 0)`
      : `linear-gradient(to right, transparent ${50 - Number(half)}%, ${WHY_NEGATIVE} 0, ${WHY_NEGATIVE} 50%, transparent 0)`;
    bar.dataset.width = half;
    const num = document.createElement("span");
    num.className = "value"; num.textContent = a.toFixed(3);
    ig.append(bar, num);
    whyCell(row, "share", w.share[i].toFixed(3));
    const roll = whyCell(row, "rollout", "");
    if (w.rollout) {
      const rb = document.createElement("span");
      rb.className = "bar";
      rb.style.background = `linear-gradient(to right, ${WHY_ROLLOUT} ${(100 * w.rollout[i] / topRoll).toFixed(2)}%, transparent 0)`;
      const rv = document.createElement("span");
      rv.className = "value"; rv.textContent = w.rollout[i].toFixed(3);
      roll.append(rb, rv);
    } else {
      roll.textContent = "–";
    }
  });
}

function whyRow(chart, cls, role) {
  const row = document.createElement("div");
  row.className = cls; row.setAttribute("role", "row");
  row.dataset.role = role;
  chart.appendChild(row);
  return row;
}

function whyCell(row, cls, text) {
  const cell = document.createElement("span");
  cell.className = cls; cell.textContent = text;
  cell.setAttribute("role", row.dataset.role);
  row.appendChild(cell);
  return cell;
}

function wireWhy() {
  $("why-word").addEventListener("change", () => { state.word = Number($("why-word").value); render(); });
  $("why-layer").addEventListener("change", () => { state.tagLayer = whyLayers()[Number($("why-layer").value)]; render(); });
  $("why-chart").addEventListener("click", (event) => {  // a word's row: explain that word's tag
    const row = event.target.closest(".why-row");
    if (row) { state.word = Number(row.dataset.index); render(); }
  });
}

window.renderWhy = renderWhy;
wireWhy();
if (state.data && state.view === "why") render();  // the page asked for this view before this file was read
