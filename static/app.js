// The page's behaviour: presets, reading parameters, streaming output, side-by-side runs (the token view
// is static/inspect.js).
// Everything the model or the user wrote goes into the page with textContent, never innerHTML,
// so a prompt like <img onerror=...> shows as text.
"use strict";

const CONFIG = JSON.parse(document.getElementById("config").textContent);
const PRESET_KNOBS = ["do_sample", "num_beams", "top_k", "top_p", "temperature", "repetition_penalty",
                      "no_repeat_ngram_size", "num_return_sequences", "penalty_alpha"];  // length and seed stay as set
const FINISH = { stop: "</s>에서 끝남", length: "최대 길이까지", time: "시간 제한으로 멈춤" };
const columns = { a: document.getElementById("col-a"), b: document.getElementById("col-b") };
const controllers = new Set();

function input(col, name) {
  return col.querySelector(`[name="${name}"]`);
}

function applyPreset(col, key) {
  const preset = CONFIG.presets[key];
  for (const p of CONFIG.params) {
    if (!PRESET_KNOBS.includes(p.name)) continue;
    const value = p.name in preset.params ? preset.params[p.name] : p.default;
    if (p.kind === "bool") input(col, p.name).checked = value;
    else input(col, p.name).value = value;
  }
  col.querySelectorAll(".preset").forEach(b => b.classList.toggle("active", b.dataset.preset === key));
  col.querySelector(".preset-help").textContent = preset.help;
}

// Values go to the server as typed (strings are fine): the server validates and explains.
function readParams(col) {
  const out = {};
  for (const p of CONFIG.params) {
    const el = input(col, p.name);
    if (p.kind === "bool") out[p.name] = el.checked;
    else if (el.value.trim() !== "") out[p.name] = el.value.trim();
  }
  return out;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function showError(col, err) {
  const field = err.field ? `${err.field}: ` : "";
  col.querySelector(".error").textContent = field + err.message;
  const bad = err.field === "prompt" ? document.getElementById("prompt") : err.field && input(col, err.field);
  if (bad) bad.classList.add("invalid");
}

function showStats(col, started, summary) {
  const secs = (performance.now() - started) / 1000;
  const tps = summary.tokens_per_s === null ? "-" : summary.tokens_per_s;
  col.querySelector(".stats").textContent =
    `시간 ${secs.toFixed(2)}초 · 새 토큰 ${summary.new_tokens}개 · ${tps} 토큰/초 · ${FINISH[summary.finish_reason] || ""}`;
}

// The safety classifier's view of an output (kogen serve --safety flag|block|regenerate): a badge.
const HATE = { none: "문제없음", offensive: "공격적", hate: "혐오" };
function showSafety(col, safety) {
  const badge = col.querySelector(".safety");
  const verdict = safety && safety.outputs && safety.outputs[0];
  badge.hidden = !verdict;
  if (!verdict) return;
  const risky = verdict.score >= 0.5;
  badge.className = "safety " + (risky ? "risky" : "ok");
  badge.textContent = `안전 검사: ${HATE[verdict.label] || verdict.label} · 유해 점수 ${verdict.score.toFixed(2)}` +
    (verdict.bias !== "none" ? ` · 편향(${verdict.bias})` : "") + (risky ? " — 주의가 필요한 글입니다" : "");
}

// Server-sent events over fetch (EventSource cannot POST): blocks end with a blank line.
async function readEvents(resp, onEvent) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(event, JSON.parse(data));
    }
  }
}

// Step 5 serves the student's inference_fn on ratsnlp's /api: the page then calls it, so the student sees
// their own function at work (no streaming, no token view: /api returns only the text).
async function callStudentApi(col, prompt, params, signal) {
  const body = { prompt, top_p: params.top_p, top_k: params.top_k, repetition_penalty: params.repetition_penalty,
                 no_repeat_ngram_size: params.no_repeat_ngram_size, temperature: params.temperature,
                 // ratsnlp's lengths count the prompt too; one character is at most about one token here
                 min_length: Number(params.min_new_tokens || 0),
                 max_length: Math.min(512, Number(params.max_new_tokens || 20) + prompt.length) };
  return apiFetch("/api", { method: "POST", headers: { "Content-Type": "application/json" },
                         body: JSON.stringify(body), signal });
}

async function run(col) {
  const prompt = document.getElementById("prompt").value;
  const params = readParams(col);
  const output = col.querySelector(".output");
  output.replaceChildren();
  col.querySelector(".stats").textContent = "";
  showSafety(col, null);
  kogenInspect.hideTip(col);
  col.querySelector(".error").textContent = "";
  document.querySelectorAll(".invalid").forEach(n => n.classList.remove("invalid"));
  // the server streams one sequence at a time; beam search and several results come at once
  const stream = Number(params.num_beams || 1) === 1 && Number(params.num_return_sequences || 1) === 1;
  // token probabilities exist for token-by-token decoding (greedy, sampling), not beams or contrastive search
  const traced = Number(params.num_beams || 1) === 1 && Number(params.penalty_alpha || 0) === 0;
  const controller = new AbortController();
  controllers.add(controller);
  col.classList.add("busy");
  document.getElementById("stop").disabled = false;
  const started = performance.now();
  try {
    if (CONFIG.inference_fn) {
      const resp = await callStudentApi(col, prompt, params, controller.signal);
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok) { showError(col, body.error || { message: `서버 오류 ${resp.status}` }); return; }
      const seq = el("div", "seq");
      const text = String(body.result ?? "");
      seq.append(el("span", "prompt-part", prompt), el("span", "new", text.startsWith(prompt) ? text.slice(prompt.length) : text));
      output.append(seq);
      col.querySelector(".stats").textContent = `시간 ${((performance.now() - started) / 1000).toFixed(2)}초 · /api (inference_fn)`;
      return;
    }
    const resp = await apiFetch("/api/generate", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prompt, ...params, stream, ...(traced ? { top_tokens: kogenInspect.TOP_TOKENS } : {}) }),
      signal: controller.signal,
    });
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({}));
      showError(col, body.error || { message: `서버 오류 ${resp.status}` });
      return;
    }
    if (stream) {
      const seq = el("div", "seq");
      const generated = el("span", "new", "");
      seq.append(el("span", "prompt-part", prompt), generated);
      output.append(seq);
      await readEvents(resp, (event, data) => {
        if (event === "done") {
          if (data.tokens) kogenInspect.renderTokens(col, generated, data.tokens[0], true);  // every token, in order
          showStats(col, started, data); showSafety(col, data.safety);
        }
        else if (event === "blocked") { generated.textContent = ""; showError(col, data.error); }
        else if (event === "error") showError(col, data.error);
        else if (data.tokens) kogenInspect.renderTokens(col, generated, data.tokens, false);
        else generated.textContent += data.text;
      });
    } else {
      const data = await resp.json();
      data.completions.forEach((text, i) => {
        const seq = el("div", "seq");
        const generated = el("span", "new", data.tokens ? "" : text);
        if (data.tokens) kogenInspect.renderTokens(col, generated, data.tokens[i], true);
        seq.append(el("span", "prompt-part", prompt), generated);
        output.append(seq);
      });
      showStats(col, started, data);
      showSafety(col, data.safety);
    }
  } catch (e) {
    if (e.name !== "AbortError") showError(col, { message: `서버에 연결할 수 없습니다: ${e.message}` });
    else col.querySelector(".error").textContent = "멈췄습니다.";
  } finally {
    controllers.delete(controller);
    col.classList.remove("busy");
    document.getElementById("stop").disabled = controllers.size === 0;
  }
}

for (const col of Object.values(columns)) {
  col.querySelectorAll(".preset").forEach(b => b.addEventListener("click", () => applyPreset(col, b.dataset.preset)));
  // a hand-edited knob no longer matches the highlighted preset
  col.querySelectorAll(".params input").forEach(i => i.addEventListener("input", () => {
    if (PRESET_KNOBS.includes(i.name)) col.querySelectorAll(".preset").forEach(b => b.classList.remove("active"));
  }));
}
document.getElementById("run-a").addEventListener("click", () => run(columns.a));
document.getElementById("run-both").addEventListener("click", () => Promise.all([run(columns.a), run(columns.b)]));
document.getElementById("stop").addEventListener("click", () => controllers.forEach(c => c.abort()));
document.getElementById("prompt").addEventListener("keydown", e => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(columns.a);
});
applyPreset(columns.a, "recommended");
applyPreset(columns.b, "greedy");
