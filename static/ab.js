// The A/B page: the server picks the decoding (this browser's arm) and logs the output as an
// impression; thumbs up/down and copy are sent back as its outcome. Text goes in with textContent.
"use strict";

const $ = sel => document.querySelector(sel);
let impression = null;

function showError(err) {
  $(".error").textContent = (err.field ? `${err.field}: ` : "") + err.message;
}

async function postJSON(path, body) {
  const resp = await apiFetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                   body: JSON.stringify(body) });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) throw data.error || { message: `서버 오류 ${resp.status}` };
  return data;
}

async function run() {
  const prompt = $("#prompt").value;
  $(".output").replaceChildren();
  $(".error").textContent = $(".stats").textContent = $(".thanks").textContent = "";
  $(".feedback").hidden = true;
  $("#run").disabled = true;
  try {
    const data = await postJSON("/ab/generate", { prompt, max_new_tokens: $("#max_new_tokens").value });
    impression = data.impression_id;
    const seq = document.createElement("div");
    const head = document.createElement("span"), tail = document.createElement("span");
    head.className = "prompt-part"; head.textContent = prompt;
    tail.className = "new"; tail.textContent = data.completions[0];
    seq.append(head, tail);
    $(".output").append(seq);
    $(".stats").textContent = `새 토큰 ${data.new_tokens}개 · ${data.seconds}초`;
    document.querySelectorAll(".feedback button").forEach(b => { b.disabled = false; });
    $(".feedback").hidden = false;
  } catch (err) {
    showError(err);
  } finally {
    $("#run").disabled = false;
  }
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {  // no clipboard permission (plain http): select the text so Ctrl+C works
    const range = document.createRange();
    range.selectNodeContents($(".output"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  }
}

async function feedback(button) {
  const kind = button.dataset.kind;
  if (kind === "copy") await copyText($(".output").textContent);
  try {
    await postJSON("/ab/outcome", { impression_id: impression, kind });
    $(".thanks").textContent = kind === "copy" ? "복사했습니다." : "고맙습니다! 의견을 저장했습니다.";
    // one rating per output: both thumbs are done once either is sent
    if (kind === "copy") button.disabled = true;
    else document.querySelectorAll('.feedback [data-kind="up"], .feedback [data-kind="down"]').forEach(b => { b.disabled = true; });
  } catch (err) {
    showError(err);
  }
}

document.querySelectorAll(".feedback button").forEach(b => b.addEventListener("click", () => feedback(b)));
$("#run").addEventListener("click", run);
$("#prompt").addEventListener("keydown", e => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(); });
