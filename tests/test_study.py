"""Human evaluation studies: `kogen study` on the bundled model, the /eval API on a real waitress server
(16 concurrent raters, a SIGKILLed server, double and malformed votes), results, and the rating page in
chromium (system names hidden until the vote). Studies for the load tests are written straight into
the store with short made-up outputs, so only the CLI test spends time generating."""
import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from kogen.cli import main
from kogen.generation import PRESETS, generate
from kogen.serving.store import Store, db_path
from kogen.web import REPO, create_app, start_server, stop_server

ENV = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")  # see test_web.py: one torch thread per process
SYSTEMS = [("알파시스템", "bundled", "greedy"), ("베타시스템", "bundled", "top_p")]


def make_study(store, name, n_prompts=25, systems=SYSTEMS, output=lambda p, s: f" {s}번 출력 {p}"):
    """A study with made-up outputs (no model): n_prompts items when there are two systems."""
    prompts = [f"프롬프트 {i}" for i in range(n_prompts)]
    outputs = [[output(p, s) for s in range(len(systems))] for p in range(n_prompts)]
    pairs = [(s, t) for s in range(len(systems)) for t in range(s + 1, len(systems))]
    return store.create_study(name, dict(max_new_tokens=8, seed=0), systems, prompts, outputs, pairs)


def count_votes(path):
    with sqlite3.connect(path) as con:
        return con.execute("SELECT count(*) FROM votes").fetchone()[0]


def vote_once(session, url, name, rater, choice="A"):
    """GET next, POST a vote: (status, vote json, item id)."""
    item = session.get(f"{url}/eval/{name}/next", params=dict(rater=rater), timeout=60).json()["item"]
    r = session.post(f"{url}/eval/{name}/vote", json=dict(token=item["token"], choice=choice, rater=rater), timeout=60)
    return r.status_code, r.json(), int(item["token"].split(".")[0])


@pytest.fixture
def server(model, tmp_path):
    """(url, store): a real waitress server on loopback with a fresh database and a 25-prompt study."""
    store = Store(tmp_path / "votes.db")
    make_study(store, "비교")
    srv = start_server(create_app(*model, model_name="bundled", device="cpu", db=store), threads=8)
    yield f"http://127.0.0.1:{srv.effective_port}", store
    stop_server(srv)


# --- the store ---------------------------------------------------------------------------------------

def test_database_defaults_to_the_users_data_folder_never_the_repo(monkeypatch, tmp_path):
    monkeypatch.delenv("KOGEN_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert db_path() == tmp_path / "data" / "kogen" / "kogen.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert db_path() == tmp_path / "home" / ".local" / "share" / "kogen" / "kogen.db"
    assert REPO not in db_path().parents
    monkeypatch.setenv("KOGEN_DB", str(tmp_path / "env.db"))
    assert db_path() == tmp_path / "env.db" and db_path(tmp_path / "flag.db") == tmp_path / "flag.db"


def test_store_uses_wal_and_creates_nothing_until_used(tmp_path):
    store = Store(tmp_path / "sub" / "kogen.db")
    assert not store.path.exists(), "opening is lazy: a service nobody votes on writes no file"
    make_study(store, "s", n_prompts=2)
    with sqlite3.connect(store.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with store.read() as con:
        assert con.execute("PRAGMA synchronous").fetchone()[0] == 2, "FULL: every commit is fsynced"


# --- `kogen study` ----------------------------------------------------------------------------------------

def test_kogen_study_create_list_export_end_to_end(model, tmp_path, capsys):
    db, prompts = tmp_path / "cli.db", ["이 영화는", "오늘 본 영화는", "배우들의 연기가"]
    (tmp_path / "prompts.txt").write_text("\n".join(prompts) + "\n\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "kogen", "study", "create", "디코딩", "--system", "A=bundled:greedy",
           "--system", "B=bundled:beam", "--prompts", str(tmp_path / "prompts.txt"), "--max-new-tokens", "8",
           "--db", str(db), "--device", "cpu"]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "디코딩" in done.stdout, done.stderr

    # the stored outputs are what the presets generate, once, after the prompt
    store = Store(db)
    study = store.study("디코딩")
    assert [s["label"] for s in store.systems(study["id"])] == ["A", "B"]
    item, _, total = store.next_item(study["id"], "r")
    assert total == 3
    want = {name: generate(*model, item["prompt"], max_new_tokens=8, **PRESETS[name]["params"])[0]
            for name in ("greedy", "beam")}
    assert item["prompt"] + item["output_a"] == want["greedy"] and item["prompt"] + item["output_b"] == want["beam"]

    app = create_app(*model, db=str(db)).test_client()
    nxt = app.get("/eval/디코딩/next?rater=r1").json["item"]
    assert app.post("/eval/디코딩/vote", json=dict(token=nxt["token"], choice="B", rater="r1")).status_code == 201
    assert main(["study", "list", "--db", str(db)]) == 0
    assert "디코딩\t시스템 A, B\t프롬프트 3\t항목 3\t투표 1" in capsys.readouterr().out
    assert main(["study", "export", "디코딩", "--csv", str(tmp_path / "votes.csv"), "--db", str(db)]) == 0
    rows = list(csv.DictReader(io.StringIO((tmp_path / "votes.csv").read_text(encoding="utf-8-sig"))))
    assert len(rows) == 1 and rows[0]["rater"] == "r1" and rows[0]["prompt"] in prompts
    winner = rows[0]["system_b"] if rows[0]["choice"] == "b" else rows[0]["system_a"]
    assert rows[0]["winner"] == winner and winner in ("A", "B")


@pytest.mark.parametrize("args,message", [
    (["--system", "A=bundled:nope", "--system", "B=bundled:greedy"], "알 수 없는 프리셋"),
    (["--system", "A-bundled-greedy", "--system", "B=bundled:greedy"], "형식"),
    (["--system", "A=bundled", "--system", "B=bundled:greedy"], "형식"),
    (["--system", "A=bundled:greedy"], "2~8개"),
    (["--system", "A=bundled:greedy", "--system", "A=bundled:beam"], "서로 다른"),
    (["--system", "A=bundled:greedy", "--system", "B=bundled:beam", "--prompts", "/nonexistent/p.txt"], "읽을 수 없습니다"),
    (["--system", "A=bundled:greedy", "--system", "B=bundled:beam", "--max-new-tokens", "0"], "[1, 512]"),
    (["--system", "A=bundled:greedy", "--system", "B=./no-such-model:beam"], "찾을 수 없습니다"),
])
def test_bad_study_input_is_one_korean_line_and_exit_2(tmp_path, capsys, args, message):
    rc = main(["study", "create", "연구", *args, "--db", str(tmp_path / "x.db")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_a_taken_study_name_is_refused_before_any_generation(tmp_path, capsys):
    make_study(Store(tmp_path / "x.db"), "연구", n_prompts=1)
    rc = main(["study", "create", "연구", "--system", "A=bundled:greedy", "--system", "B=bundled:beam",
               "--db", str(tmp_path / "x.db")])
    err = capsys.readouterr().err
    assert rc == 2 and "이미 있습니다" in err and err.count("\n") == 1, err
    assert main(["study", "export", "없는연구", "--csv", str(tmp_path / "v.csv"), "--db", str(tmp_path / "x.db")]) == 2
    assert "없습니다" in capsys.readouterr().err
    (tmp_path / "not.db").write_text("SQLite가 아닌 파일", encoding="utf-8")
    for bad in (tmp_path / "not.db", tmp_path / "not.db" / "under-a-file.db"):
        assert main(["study", "list", "--db", str(bad)]) == 2
        err = capsys.readouterr().err
        assert "열 수 없습니다" in err and "Traceback" not in err, err


# --- votes over HTTP ------------------------------------------------------------------------------------

def test_next_item_hides_system_names_and_shuffles_sides(server):
    url, store = server
    seen_first = set()
    for i in range(12):
        body = requests.get(f"{url}/eval/비교/next", params=dict(rater=f"look{i}"), timeout=30).json()
        text = str(body)
        assert not any(name in text for name, _, _ in SYSTEMS) and "greedy" not in text and "top_p" not in text, text
        seen_first.add(body["item"]["outputs"]["A"].split("번")[0])  # " 0" or " 1": which system is on the left
    assert seen_first == {" 0", " 1"}, "each side shows either system: the order is random"


def test_a_second_vote_on_the_same_item_is_409_and_writes_nothing(server):
    url, store = server
    with requests.Session() as s:
        item = s.get(f"{url}/eval/비교/next", params=dict(rater="twice"), timeout=30).json()["item"]
        first = s.post(f"{url}/eval/비교/vote", json=dict(token=item["token"], choice="A", rater="twice"), timeout=30)
        assert first.status_code == 201 and set(first.json()["reveal"]) == {"A", "B"}, first.text
        again = s.post(f"{url}/eval/비교/vote", json=dict(token=item["token"], choice="B", rater="twice"), timeout=30)
    assert again.status_code == 409 and "이미" in again.json()["error"]["message"], again.text
    votes = store.votes(store.study("비교")["id"])
    assert len(votes) == 1 and votes[0]["choice"] in ("a", "b"), "the first vote stands, unchanged"


def test_malformed_votes_are_4xx_json_never_500_and_write_nothing(server):
    url, store = server
    item = requests.get(f"{url}/eval/비교/next", params=dict(rater="bad"), timeout=30).json()["item"]
    good = dict(token=item["token"], choice="A", rater="bad")
    forged = item["token"][:-1] + ("0" if item["token"][-1] != "0" else "1")
    cases = [  # path, raw body or json, status, field
        ("/eval/비교/vote", b"not json", 400, "body"),
        ("/eval/비교/vote", [1, 2], 400, "body"),
        ("/eval/비교/vote", dict(good, choice="C"), 400, "choice"),
        ("/eval/비교/vote", dict(good, choice=None), 400, "choice"),
        ("/eval/비교/vote", {k: v for k, v in good.items() if k != "token"}, 400, "token"),
        ("/eval/비교/vote", dict(good, token=forged), 400, "token"),
        ("/eval/비교/vote", dict(good, token="999.aaaaaaaaaaaa." + "0" * 32), 400, "token"),
        ("/eval/비교/vote", dict(good, token="토큰"), 400, "token"),
        ("/eval/비교/vote", dict(good, token=12), 400, "token"),
        ("/eval/비교/vote", dict(good, rater="someone-else"), 400, "token"),
        ("/eval/비교/vote", dict(good, rater="공백 있음"), 400, "rater"),
        ("/eval/비교/vote", {k: v for k, v in good.items() if k != "rater"}, 400, "rater"),
        ("/eval/비교/vote", dict(good, criteria=["fluency"]), 400, "criteria"),
        ("/eval/비교/vote", dict(good, criteria=dict(speed="A")), 400, "criteria.speed"),
        ("/eval/비교/vote", dict(good, criteria=dict(fluency="left")), 400, "criteria.fluency"),
        ("/eval/비교/vote", dict(good, extra=1), 400, "extra"),
        ("/eval/비교/vote", b"{" + b'"x": "' + b"a" * 100_000 + b'"}', 413, None),
        ("/eval/없는연구/vote", good, 404, None),
    ]
    for path, body, status, field in cases:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = requests.post(url + path, data=raw, headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == status, (path, body if not isinstance(body, bytes) else body[:30], r.text)
        err = r.json()["error"]
        assert err["field"] == field and err["message"] and set(err) == {"field", "message", "param", "type"}, err
    for path, status in [("/eval/비교/next", 400), ("/eval/비교/next?rater=a%20b", 400), ("/eval/없음/next?rater=x", 404),
                         ("/eval/없음", 404), ("/eval/없음/results", 404)]:
        r = requests.get(url + path, timeout=30)
        assert r.status_code == status and "error" in r.json(), (path, r.text)
    assert count_votes(store.path) == 0, "no malformed vote may leave a row"
    assert requests.post(f"{url}/eval/비교/vote", json=good, timeout=30).status_code == 201, "the good vote still works"


def test_16_concurrent_raters_25_votes_each_make_exactly_400_rows(server):
    url, store = server

    def rater(i):
        with requests.Session() as s:
            return [vote_once(s, url, "비교", f"rater{i:02d}", "AB"[k % 2]) for k in range(25)]

    start = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        results = [r for rs in pool.map(rater, range(16)) for r in rs]
    seconds = time.monotonic() - start
    assert [status for status, _, _ in results] == [201] * 400, [r for r in results if r[0] != 201][:3]
    assert count_votes(store.path) == 400, seconds
    votes = store.votes(store.study("비교")["id"])
    assert len({(v["item_id"], v["rater"]) for v in votes}) == 400
    res = requests.get(f"{url}/eval/비교/results?format=json", timeout=30).json()
    assert res["votes"] == 400 and res["raters"] == 16
    assert sum(s["wins"] for s in res["systems"]) == 400, "every vote here picked a side"


def test_results_give_wilson_intervals_bradley_terry_and_votes_to_separate(model, tmp_path):
    store = Store(tmp_path / "r.db")
    three = SYSTEMS + [("감마시스템", "bundled", "contrastive")]
    make_study(store, "셋", n_prompts=10, systems=three)
    client = create_app(*model, db=store).test_client()
    for k in range(30):  # the earlier-listed system always wins, fluency goes the other way
        item = client.get(f"/eval/셋/next?rater=r{k}").json["item"]
        shown = {side: int(text.split("번")[0]) for side, text in item["outputs"].items()}  # " 1번 출력 3" -> 1
        win, lose = ("A", "B") if shown["A"] < shown["B"] else ("B", "A")
        r = client.post("/eval/셋/vote", json=dict(token=item["token"], choice=win, rater=f"r{k}",
                                                   criteria=dict(fluency=lose)))
        assert r.status_code == 201, r.json
    res = client.get("/eval/셋/results?format=json").json
    by = {s["system"]: s for s in res["systems"]}
    assert res["order"] == ["알파시스템", "베타시스템", "감마시스템"] and res["votes"] == 30
    assert by["알파시스템"]["win_rate"] == 1.0 and by["감마시스템"]["win_rate"] == 0.0
    lo, hi = by["알파시스템"]["win_rate_ci"]
    assert 0.7 < lo < 1.0 and hi == 1.0, "Wilson: never the zero-width [1, 1]"
    assert by["알파시스템"]["bt_ci"][0] <= by["알파시스템"]["bt"] <= by["알파시스템"]["bt_ci"][1]
    assert by["알파시스템"]["criteria"]["fluency"]["win_rate"] == 0.0
    lead = res["leaders"]
    assert lead["first"] == "알파시스템" and lead["second"] == "베타시스템" and lead["more_votes"] is not None
    page = client.get("/eval/셋/results").data.decode()
    assert "BT 점수" in page and "Wilson" in page and "알파시스템" in page and "기준별" in page
    rows = list(csv.DictReader(io.StringIO(client.get("/eval/셋/results.csv").data.decode("utf-8-sig"))))
    assert len(rows) == 30 and {r["fluency"] for r in rows} <= {"a", "b"}


def test_a_study_page_gives_a_rater_cookie_and_no_system_names(model, tmp_path):
    store = Store(tmp_path / "p.db")
    make_study(store, "쪽", n_prompts=2)
    client = create_app(*model, db=store).test_client()
    r = client.get("/eval/쪽")
    assert r.status_code == 200 and "kogen_rater=" in r.headers["Set-Cookie"]
    assert not any(name in r.data.decode() for name, _, _ in SYSTEMS)
    assert "kogen_rater=" not in client.get("/eval/쪽").headers.get("Set-Cookie", ""), "the same browser keeps its id"
    assert client.get("/").status_code == 200 and "설정 A" in client.get("/").data.decode(), "the main page is unchanged"


# --- durability: SIGKILL the server mid-storm ----------------------------------------------------------------

def start_serve(port, db):
    cmd = [sys.executable, "-m", "kogen", "serve", "--model", "bundled", "--port", str(port), "--device", "cpu",
           "--db", str(db)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            return proc
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail(f"kogen serve did not start: {proc.communicate()[1][-2000:]}")


def test_every_acknowledged_vote_survives_a_sigkill(tmp_path, free_port):
    db = tmp_path / "kill.db"
    make_study(Store(db), "폭풍", n_prompts=200)
    url = f"http://127.0.0.1:{free_port}"
    proc = start_serve(free_port, db)
    acked, lock = [], threading.Lock()

    def storm(i):
        with requests.Session() as s:
            for k in range(200):
                try:
                    status, body, item = vote_once(s, url, "폭풍", f"storm{i}")
                except (requests.RequestException, ValueError, KeyError, TypeError):
                    return  # the server is gone
                if status == 201:
                    with lock:
                        acked.append((body["vote_id"], item, f"storm{i}"))
    try:
        threads = [threading.Thread(target=storm, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        while len(acked) < 80 and any(t.is_alive() for t in threads):
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # mid-storm: no shutdown, no flush, no atexit
        for t in threads:
            t.join(60)
        proc.communicate(timeout=30)
        assert len(acked) >= 80
        proc = start_serve(free_port, db)  # the same file, a new process
        text = requests.get(f"{url}/eval/폭풍/results.csv", timeout=30).content.decode("utf-8-sig")
        rows = {int(r["vote_id"]): (int(r["item_id"]), r["rater"]) for r in csv.DictReader(io.StringIO(text))}
        missing = [a for a in acked if rows.get(a[0]) != (a[1], a[2])]
        assert not missing, f"{len(missing)} acknowledged votes lost, e.g. {missing[:3]}"
        assert len(set(rows.values())) == len(rows), "no (item, rater) twice"
        with sqlite3.connect(db) as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with requests.Session() as s:
            assert vote_once(s, url, "폭풍", "after")[0] == 201, "the restarted server takes votes"
    finally:
        proc.kill()
        proc.communicate(timeout=30)


# --- the rating page in a real browser ---------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"  # Debian's, as in test_browser.py: nothing is downloaded


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="/usr/bin/chromium 없음: apt-get install -y chromium")
def test_a_rater_sees_system_names_only_after_voting(model, tmp_path):
    from playwright.sync_api import expect, sync_playwright
    from test_browser import ARGS, watch
    store = Store(tmp_path / "browser.db")
    make_study(store, "브라우저", n_prompts=3, output=lambda p, s: f" {s}번 출력 {p} <img src=x onerror=\"window.__xss=1\">")
    srv = start_server(create_app(*model, db=store))
    names = [name for name, _, _ in SYSTEMS] + ["greedy", "top_p"]
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page()
            errors = watch(page)  # JavaScript errors and CSP violations
            page.goto(f"http://127.0.0.1:{srv.effective_port}/eval/브라우저")
            a, b = page.locator("#side-A"), page.locator("#side-B")
            expect(a.locator(".new")).to_contain_text("출력")
            expect(page.locator("#progress")).to_have_text("평가한 항목 0 / 3")
            assert not any(n in page.content() for n in names), "no system name anywhere in the page before the vote"
            assert page.locator(".output img").count() == 0 and page.evaluate("window.__xss") is None, "outputs are text"
            left_system = int(a.locator(".new").text_content().split("번")[0])  # " 1번 출력 ..." -> system 1

            page.click('[data-choice="A"]')
            expect(a.locator(".reveal")).to_contain_text("시스템")
            assert SYSTEMS[left_system][0] in a.locator(".reveal").text_content(), "A's name is the system shown on A"
            assert SYSTEMS[1 - left_system][0] in b.locator(".reveal").text_content()
            expect(page.locator("#status")).to_contain_text("저장했습니다")

            page.click("#next")
            expect(page.locator("#progress")).to_have_text("평가한 항목 1 / 3")
            expect(a.locator(".reveal")).to_have_text("")
            assert not any(n in page.inner_text("body") for n in names), "the next item hides the names again"
            page.reload()  # the cookie keeps the rater: the vote still counts for this browser
            expect(page.locator("#progress")).to_have_text("평가한 항목 1 / 3")
            browser.close()
        assert not errors, errors
    finally:
        stop_server(srv)
    (vote,) = store.votes(store.study("브라우저")["id"])
    assert vote["choice"] == "ab"[left_system], "the stored winner is the system that was on the left"
