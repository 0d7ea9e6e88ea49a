"""A/B tests of the live service on a real waitress server: sticky arms per browser (cookie jar), the arm's
preset applied, impressions and outcomes on disk, /ab/results with Wilson intervals and a z-test; the
normal page unchanged without --ab; bad --ab refused before the model loads."""
import os

import pytest
import requests
import torch

from kogen.cli import main
from kogen.generation import PRESETS, generate
from kogen.serving.ab import arm_for, parse_arms
from kogen.serving.store import Store
from kogen.web import create_app, start_server, stop_server

PROMPT = "오늘 본 영화는"
ARMS = {"A": "greedy", "B": "beam"}  # both deterministic, so the text tells which preset ran


@pytest.fixture(scope="module")
def model(bundled):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see tests/test_web.py
    yield bundled
    torch.set_num_threads(threads)


@pytest.fixture
def server(model, tmp_path):
    store = Store(tmp_path / "ab.db")
    srv = start_server(create_app(*model, model_name="bundled", device="cpu", db=store, ab=ARMS))
    yield f"http://127.0.0.1:{srv.effective_port}", store
    stop_server(srv)


def ab_generate(session, url, **body):
    r = session.post(url + "/ab/generate", json=dict(dict(prompt=PROMPT, max_new_tokens=6), **body), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def sessions_for_both_arms(url):
    """Browsers (cookie jars) until each arm has one: the arm comes from the session id's hash."""
    found = {}
    while len(found) < 2:
        s = requests.Session()
        s.get(url + "/", timeout=30)  # the page sets the session cookie
        if found.setdefault(arm_for(s.cookies["kogen_ab"], ARMS), s) is not s:
            s.close()
    return found


def test_each_browser_keeps_its_arm_and_gets_that_arms_preset(server, model):
    url, _ = server
    browsers = sessions_for_both_arms(url)
    for arm, s in browsers.items():
        cookie = s.cookies["kogen_ab"]
        outs = [ab_generate(s, url) for _ in range(3)]
        assert {o["arm"] for o in outs} == {arm}, "sticky: the same browser always gets the same arm"
        assert s.cookies["kogen_ab"] == cookie, "the session id is not replaced"
        want = generate(*model, PROMPT, max_new_tokens=6, **PRESETS[ARMS[arm]]["params"])[0]
        assert all(o["texts"][0] == want for o in outs), (arm, outs[0]["texts"], want)
        assert len({o["impression_id"] for o in outs}) == 3
        s.close()


def test_outcomes_are_logged_and_results_show_rates_intervals_and_a_p_value(server):
    url, store = server
    browsers = sessions_for_both_arms(url)
    a, b = browsers["A"], browsers["B"]
    ia = [ab_generate(a, url)["impression_id"] for _ in range(4)]
    ib = [ab_generate(b, url)["impression_id"] for _ in range(2)]
    for s, imp, kind in [(a, ia[0], "up"), (a, ia[1], "copy"), (a, ia[1], "up"), (a, ia[2], "down"), (b, ib[0], "down")]:
        r = s.post(url + "/ab/outcome", json=dict(impression_id=imp, kind=kind), timeout=30)
        assert r.status_code == 201, r.text
    res = requests.get(url + "/ab/results?format=json", timeout=30).json()
    by = {r["arm"]: r for r in res["arms"]}
    assert (by["A"]["impressions"], by["A"]["up"], by["A"]["down"], by["A"]["copy"], by["A"]["positive"]) == (4, 2, 1, 1, 2)
    assert (by["B"]["impressions"], by["B"]["positive"], by["B"]["rate"]) == (2, 0, 0.0)
    lo, hi = by["A"]["rate_ci"]
    assert by["A"]["rate"] == 0.5 and 0.1 < lo < 0.5 < hi < 0.9, "Wilson 2/4 is about [0.15, 0.85]"
    assert by["B"]["vs"] == "A" and 0 < by["B"]["p_value"] < 1
    a.close(), b.close()
    page = requests.get(url + "/ab/results", timeout=30).text
    assert "A/B 시험 결과" in page and "Wilson" in page and "greedy" in page and "beam" in page


def test_outcome_rules_one_rating_per_output_own_session_only_valid_kinds(server):
    url, store = server
    s, other = requests.Session(), requests.Session()
    imp = ab_generate(s, url)["impression_id"]
    ab_generate(other, url)
    post = lambda sess, body: sess.post(url + "/ab/outcome", json=body, timeout=30)  # noqa: E731
    assert post(s, dict(impression_id=imp, kind="up")).status_code == 201
    assert post(s, dict(impression_id=imp, kind="down")).status_code == 409, "one thumbs per output"
    assert post(other, dict(impression_id=imp, kind="up")).status_code == 404, "another browser's output"
    for body, field in [(dict(impression_id=imp, kind="love"), "kind"), (dict(impression_id="1", kind="up"), "impression_id"),
                        (dict(impression_id=True, kind="up"), "impression_id"), (dict(kind="up"), "impression_id")]:
        r = post(s, body)
        assert r.status_code == 400 and r.json()["error"]["field"] == field, r.text
    assert post(s, dict(impression_id=10**9, kind="up")).status_code == 404
    r = s.post(url + "/ab/generate", json=dict(prompt=PROMPT, num_beams=2), timeout=30)
    assert r.status_code == 400 and r.json()["error"]["field"] == "num_beams", "the arm decides the decoding"
    r = s.post(url + "/ab/generate", data=b"nope", headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["field"] == "body"
    s.close(), other.close()
    counts = {r["arm"]: r for r in store.ab_counts()}
    assert sum(r["impressions"] for r in counts.values()) == 2 and sum(r["up"] or 0 for r in counts.values()) == 1


def test_the_ab_page_replaces_the_home_page_only_with_ab(model, tmp_path):
    with_ab = create_app(*model, db=str(tmp_path / "a.db"), ab=["A=greedy", "B=recommended"]).test_client()
    page = with_ab.get("/")
    assert "A/B 시험 중" in page.data.decode() and "kogen_ab=" in page.headers["Set-Cookie"]
    for client in (create_app(*model).test_client(), create_app(*model, db=str(tmp_path / "b.db")).test_client()):
        html = client.get("/").data.decode()
        assert "설정 A" in html and "A/B 시험" not in html, "without --ab the normal page is unchanged"
        assert client.post("/ab/generate", json=dict(prompt=PROMPT)).status_code == 404
    assert not (tmp_path / "b.db").exists(), "nothing written until a vote or an impression"


@pytest.mark.parametrize("specs,message", [
    (["A=greedy"], "두 번 이상"),
    (["A=greedy", "B=fast"], "알 수 없는 프리셋"),
    (["A=greedy", "B:bundled=beam"], "형식"),
    (["A=greedy", "A=beam"], "두 번"),
])
def test_bad_ab_arms_are_refused_in_korean(specs, message):
    with pytest.raises(ValueError, match=message):
        parse_arms(specs)


def test_kogen_serve_with_a_bad_arm_exits_2_before_loading_the_model(tmp_path, capsys):
    rc = main(["serve", "--model", "no/such-model", "--ab", "A=greedy", "--ab", "B=warp", "--db", str(tmp_path / "x.db")])
    err = capsys.readouterr().err
    assert rc == 2 and "알 수 없는 프리셋" in err and err.count("\n") == 1, err
    assert parse_arms(None) == {} and parse_arms(["x=greedy", "y-2=top_p"]) == {"x": "greedy", "y-2": "top_p"}


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"), reason="/usr/bin/chromium 없음: apt-get install -y chromium")
def test_the_ab_page_logs_thumbs_and_copy_in_a_real_browser(server):
    from playwright.sync_api import expect, sync_playwright
    from test_browser import ARGS, CHROMIUM, watch
    url, store = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page()
        errors = watch(page)  # JavaScript errors and CSP violations
        page.goto(url + "/")
        expect(page.locator(".feedback")).to_be_hidden()  # nothing to rate before an output is shown
        page.fill("#max_new_tokens", "6")
        page.click("#run")
        expect(page.locator(".feedback")).to_be_visible()
        assert page.locator(".output .new").text_content(), "the arm's output is on the page"
        page.click('[data-kind="up"]')
        expect(page.locator(".thanks")).to_contain_text("저장했습니다")
        assert page.locator('[data-kind="down"]').is_disabled(), "one thumbs per output"
        page.click('[data-kind="copy"]')
        expect(page.locator(".thanks")).to_contain_text("복사했습니다")
        browser.close()
    assert not errors, errors
    (row,) = store.ab_counts()
    assert (row["impressions"], row["up"], row["copy"], row["positive"]) == (1, 1, 1, 1), row


def test_ab_outputs_pass_the_services_safety_policy(model, tmp_path):
    from test_safety import CLEAN, INSULT
    store = Store(tmp_path / "safe.db")
    client = create_app(*model, db=store, ab=ARMS, safety="block").test_client()
    ok = client.post("/ab/generate", json=dict(prompt=CLEAN, max_new_tokens=4))
    assert ok.status_code == 200 and ok.json["safety"]["policy"] == "block", ok.json
    refused = client.post("/ab/generate", json=dict(prompt=INSULT, max_new_tokens=4))
    assert refused.status_code == 422 and refused.json["error"]["type"] == "safety_block", refused.json
    assert sum(r["impressions"] for r in store.ab_counts()) == 1, "a refused output is not an impression"
