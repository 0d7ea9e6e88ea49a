// The API key of a server started with `kogen serve --api-key`: asked for once, on the first 401, and kept
// in sessionStorage (this tab only, gone when it closes). An instructor's link may carry it in the fragment
// (http://host:9001/#key=...): a fragment never reaches the server or a Referer, and is removed at once.
"use strict";

const KEY_STORE = "kogen-api-key";

(function keyFromLink() {
  const m = location.hash.match(/(?:^#|&)key=([^&]*)/);
  if (!m) return;
  sessionStorage.setItem(KEY_STORE, decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
})();

// fetch with the key; on a 401 ask once, then try again with what was typed
async function apiFetch(url, options = {}) {
  for (let asked = false; ; asked = true) {
    const key = sessionStorage.getItem(KEY_STORE);
    const headers = { ...(options.headers || {}), ...(key ? { Authorization: `Bearer ${key}` } : {}) };
    const resp = await fetch(url, { ...options, headers });
    if (resp.status !== 401 || asked) return resp;
    const typed = window.prompt("이 서버는 API 키가 필요합니다. 강사에게 받은 키를 입력하세요.");
    if (!typed || !typed.trim()) return resp;
    sessionStorage.setItem(KEY_STORE, typed.trim());
  }
}
