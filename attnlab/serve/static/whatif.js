// attnlab explorer, the "What if" view: replace or mask one word of the sentence and see what
// changes (POST /api/whatif): every tag layer's probability for every word, before and after,
// biggest changes first, and the chosen head's attention after minus before, in diverging
// colours. Loaded after app.js, whose state, api() and drawGrid() it uses.
"use strict";

// The word choices of the sentence shown ("3: a"), kept on the current word.
function whatifWords() {
  const select = $("whatif-word"), tokens = state.data.tokens;
  const labels = tokens.map((t, i) => `${i + 1}: ${t}`);
  if ([...select.options].map((o) => o.textContent).join("\n") !== labels.join("\n")) {
    select.replaceChildren(...labels.map((l, i) => new Option(l, String(i))));
  }
  state.whatif.position = Math.min(state.whatif.position, tokens.length - 1);
  select.value = String(state.whatif.position);
  $("whatif-kind").value = state.whatif.replacement === null ? "mask" : "replace";
  $("whatif-replacement").value = state.whatif.replacement || "";
}

// What the view asks the server: the word, the change, and the head whose attention is compared.
function whatifRequest() {
  const body = { text: state.text, position: state.whatif.position, layer: state.layer, head: state.head };
  if (state.whatif.replacement === null) body.mask = true; else body.replacement = state.whatif.replacement;
  return body;
}

async function renderWhatif() {
  whatifWords();
  const body = whatifRequest();
  const key = JSON.stringify(body);
  if (!state.whatif.answer || state.whatif.key !== key) {
    state.whatif.answer = null;
    $("whatif-result").hidden = true;
    state.whatif.answer = await api("/api/whatif", body);  // render() shows a failure
    state.whatif.key = key;
    showError("");
  }
  const a = state.whatif.answer;
  const word = `${a.position + 1} “${a.tokens[a.position]}”`;
  $("whatif-note").textContent = a.mask
    ? `word ${word} masked: in its place the model is given ${a.mask_input}.`
    : `word ${word} replaced by “${a.changed[a.position]}”.`;
  $("legend-text").textContent = a.difference
    ? "colour: α′ after minus α′ before, on a scale symmetric around 0 (blue: less attention, red: more, white: no change)"
    : "";
  $("whatif-result").hidden = false;
  drawWhatifMap(a);
  whatifTable(a);
}

// After minus before of the chosen head: rows are the queries, columns the keys.
function drawWhatifMap(a) {
  const canvas = $("whatif-map");
  $("whatif-figure").hidden = !a.difference;
  canvas.geometry = null;
  if (!a.difference) { $("whatif-caption").textContent = ""; return; }
  const d = a.difference;
  const top = Math.max(1e-6, ...d.map((row) => Math.max(...row.map(Math.abs))));
  const labels = a.tokens.map((t, i) => (i === a.position ? `${t}→${a.changed[i]}` : t));
  drawGrid(canvas, {
    rows: labels, cols: labels, width: $("view-whatif").clientWidth || 600, maxCell: 36,
    fill: (i, j) => diverging(d[i][j] / top), legend: differenceLegend(top),
  });
  canvas.dataset.layer = String(a.layer); canvas.dataset.head = String(a.head);
  $("whatif-caption").textContent = `Layer ${a.layer + 1}, head ${a.head + 1}: α′ after minus α′ before ` +
    `(largest change ${top.toFixed(4)}). Point at a cell to read it:`;
}

function readWhatif(event) {
  const a = state.whatif.answer, at = gridCell($("whatif-map"), event);
  const out = $("whatif-readout");
  if (!a || !at) { out.textContent = ""; return; }
  const { i, j } = at, d = a.difference[i][j];
  out.textContent = `α′(${i + 1} “${a.changed[i]}” → ${j + 1} “${a.changed[j]}”): before ${a.before[i][j].toFixed(4)}, ` +
    `after ${a.after[i][j].toFixed(4)}, difference ${d >= 0 ? "+" : "−"}${Math.abs(d).toFixed(4)}`;
}

const WHATIF_ROWS = 20;  // rows shown before "show all"

function signedChange(x) { return `${x > 0 ? "+" : x < 0 ? "−" : "±"}${Math.abs(x).toFixed(3)}`; }

// Every (word, tag layer): the best value before and after with their probabilities, the change of
// the probability of the value chosen before, and the value whose probability moved most.
function whatifTable(a) {
  const table = $("whatif-table");
  [...table.querySelectorAll("thead, tbody")].forEach((el) => el.remove());
  const rows = a.changes, all = state.whatif.all || rows.length <= WHATIF_ROWS;
  $("whatif-all").hidden = rows.length <= WHATIF_ROWS;
  $("whatif-all").textContent = state.whatif.all ? `show the ${WHATIF_ROWS} biggest changes` : `show all ${rows.length} rows`;
  if (!rows.length) {
    table.hidden = true;
    return;
  }
  table.hidden = false;
  const head = table.createTHead().insertRow();
  for (const h of ["word", "layer", "before", "after", "change of P(before)", "largest change"]) {
    const th = document.createElement("th"); th.textContent = h; head.appendChild(th);
  }
  const body = table.createTBody();
  const top = Math.max(1e-9, ...rows.map((r) => Math.abs(r.largest.change)));
  for (const r of all ? rows : rows.slice(0, WHATIF_ROWS)) {
    const tr = body.insertRow();
    tr.dataset.word = String(r.word); tr.dataset.layer = r.layer;
    if (r.word === a.position) tr.className = "changed";
    const cell = (text, cls) => { const td = tr.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; };
    cell(`${r.word + 1} ${a.tokens[r.word]}${r.word === a.position ? `→${a.changed[r.word]}` : ""}`);
    cell(r.layer);
    cell(`${r.before} ${r.p_before.toFixed(3)}`, "p");
    const after = cell(`${r.after} ${r.p_after.toFixed(3)}`, "p" + (r.after !== r.before ? " flip" : ""));
    if (r.after !== r.before) after.title = "the best value changed";
    const change = cell(signedChange(r.change), "p change");
    change.dataset.value = String(r.change);
    change.style.background = diverging(0.6 * r.change / top);
    cell(`${r.largest.tag} ${signedChange(r.largest.change)}`, "p largest").dataset.value = String(r.largest.change);
  }
}

function wireWhatif() {
  const run = () => {
    state.whatif.position = Number($("whatif-word").value);
    const word = $("whatif-replacement").value.trim();
    state.whatif.replacement = $("whatif-kind").value === "replace" && word ? word : null;
    if ($("whatif-kind").value === "replace" && !word) { showError("type the word to put instead, or choose “were masked”"); return; }
    render();
  };
  $("whatif-form").addEventListener("submit", (e) => { e.preventDefault(); run(); });
  $("whatif-word").addEventListener("change", run);
  $("whatif-kind").addEventListener("change", () => { if ($("whatif-kind").value === "mask") run(); else $("whatif-replacement").focus(); });
  $("whatif-replacement").addEventListener("input", () => { $("whatif-kind").value = "replace"; });
  $("whatif-all").addEventListener("click", () => { state.whatif.all = !state.whatif.all; whatifTable(state.whatif.answer); });
  $("whatif-map").addEventListener("mousemove", readWhatif);
  $("whatif-map").addEventListener("mouseleave", () => { $("whatif-readout").textContent = ""; });
}

wireWhatif();
