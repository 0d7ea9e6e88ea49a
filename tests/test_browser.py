"""The page in a real browser: Debian's chromium, headless, driven by Playwright (no browser download).
Presets, streamed output, A/B side by side, an HTML-injection prompt shown as text, a server error
shown next to its field, all under the strict Content-Security-Policy (any violation fails the test), and
the API key asked for once. Leaves a screenshot in the test's tmp dir."""
import os

import pytest
import torch

from kogen.web import create_app, start_server, stop_server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
INJECTION = '<img src=x onerror="window.__xss=1"> 오늘 본 영화는'

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="/usr/bin/chromium 없음: apt-get install -y chromium (브라우저를 내려받지 않습니다)")


def watch(page):
    """Every JavaScript error and every Content-Security-Policy violation on `page`, as they happen."""
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    return errors


@pytest.fixture(scope="module")
def url(bundled):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see tests/test_web.py: a second thread on 2 busy cores is ~100x slower
    server = start_server(create_app(*bundled, model_name="bundled", device="cpu"))
    yield f"http://127.0.0.1:{server.effective_port}"
    stop_server(server)
    torch.set_num_threads(threads)


@pytest.fixture
def page(url):
    """The page in headless chromium; any JavaScript error or CSP violation on it fails the test."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors = watch(page)
        page.goto(url)
        yield page
        browser.close()
    assert not errors, errors


def test_page_streams_compares_and_escapes(page, tmp_path):
    from playwright.sync_api import expect
    a, b = page.locator("#col-a"), page.locator("#col-b")
    expect(a.locator(".preset.active")).to_have_text("추천")  # the page starts A on the recommended preset
    assert a.locator('[name="do_sample"]').is_checked() and a.locator('[name="top_p"]').input_value() == "0.92"

    page.fill("#prompt", INJECTION)
    a.locator('[name="max_new_tokens"]').fill("150")
    a.locator('[name="min_new_tokens"]').fill("150")
    a.locator('[name="seed"]').fill("1")
    # count every change to A's output: a stream changes it once per piece
    page.evaluate("""() => { window.__updates = 0; new MutationObserver(r => window.__updates += r.length)
        .observe(document.querySelector('#col-a .output'), {subtree: true, childList: true, characterData: true}); }""")
    page.click("#run-a")
    # streamed: text is on the page while the request is still running (no stats line yet)
    page.wait_for_function("""() => document.querySelector('#col-a .new')?.textContent.length > 0
        && document.querySelector('#col-a .stats').textContent === ''""", timeout=30_000)
    expect(a.locator(".stats")).to_contain_text("토큰/초", timeout=30_000)
    assert page.evaluate("window.__updates") > 10, "output should grow piece by piece"
    assert a.locator(".new").inner_text().strip()
    assert a.locator(".prompt-part").inner_text() == INJECTION, "the prompt must be shown as typed text"
    assert page.locator(".output img").count() == 0 and page.evaluate("window.__xss") is None

    # the same prompt under two settings, side by side
    a.locator('[name="max_new_tokens"]').fill("30")
    a.locator('[name="min_new_tokens"]').fill("0")
    b.locator('[data-preset="beam"]').click()
    b.locator('[name="num_return_sequences"]').fill("2")
    page.fill("#prompt", "오늘 본 영화는 정말")
    page.click("#run-both")
    for col in (a, b):
        expect(col.locator(".stats")).to_contain_text("토큰/초", timeout=30_000)
    expect(b.locator(".seq")).to_have_count(2)
    page.screenshot(path=str(tmp_path / "ui.png"), full_page=True)

    # a bad value: the server's Korean message, next to the field
    a.locator('[name="top_p"]').fill("1.5")
    page.click("#run-a")
    expect(a.locator(".error")).to_contain_text("top_p")
    expect(a.locator(".error")).to_contain_text("(0.0, 1.0]")
    assert "invalid" in a.locator('[name="top_p"]').get_attribute("class")
    print(f"screenshot: {tmp_path / 'ui.png'}")


def test_contrastive_preset_and_sentiment_control_from_the_page(page, bundled):
    from playwright.sync_api import expect

    from kogen.generation import generate
    prompt = "이 영화는"
    a, b = page.locator("#col-a"), page.locator("#col-b")
    page.fill("#prompt", prompt)
    b.locator('[data-preset="contrastive"]').click()
    assert b.locator('[name="penalty_alpha"]').input_value() == "0.6" and b.locator('[name="top_k"]').input_value() == "4"
    a.locator('[data-preset="greedy"]').click()
    a.locator('[name="control"]').select_option("부정")
    a.locator('[name="control_strength"]').fill("4")
    for col in (a, b):
        col.locator('[name="max_new_tokens"]').fill("20")
    page.click("#run-both")
    for col in (a, b):
        expect(col.locator(".stats")).to_contain_text("토큰/초", timeout=30_000)
    model, tok = bundled
    want_b = generate(model, tok, prompt, max_new_tokens=20, penalty_alpha=0.6, top_k=4)[0]
    want_a = generate(model, tok, prompt, max_new_tokens=20, control="부정", control_strength=4.0)[0]
    assert prompt + b.locator(".new").text_content() == want_b
    assert prompt + a.locator(".new").text_content() == want_a
    # a preset resets contrastive search: greedy again on B
    b.locator('[data-preset="greedy"]').click()
    assert b.locator('[name="penalty_alpha"]').input_value() == "0"


def test_tokens_are_tinted_and_a_step_draws_its_distribution(page, url):
    """Sampling + top_k: every token is a tinted span; hovering lists alternatives; clicking draws the step's
    raw and processed distributions with the cut-off line after the tokens top-k kept."""
    import requests
    from playwright.sync_api import expect
    a = page.locator("#col-a")
    page.fill("#prompt", "오늘 본 영화는")
    a.locator('[data-preset="recommended"]').click()
    for name, value in (("max_new_tokens", "12"), ("min_new_tokens", "12"), ("seed", "5"), ("top_k", "3")):
        a.locator(f'[name="{name}"]').fill(value)
    page.click("#run-a")
    expect(a.locator(".stats")).to_contain_text("토큰/초", timeout=30_000)
    sent = page.evaluate("readParams(document.querySelector('#col-a'))")  # what the page sent, minus the trace
    want = requests.post(url + "/api/generate", json=dict(sent, prompt="오늘 본 영화는"), timeout=60).json()
    assert a.locator(".new").text_content() == want["completions"][0], "the token view shows exactly the text"
    assert a.locator(".new .tok").count() == 12
    tints = a.locator(".new .tok").evaluate_all("spans => spans.map(n => n.style.backgroundColor)")
    assert all(t.startswith("rgba") for t in tints) and len(set(tints)) > 1, "tinted by each token's probability"
    a.locator(".new .tok").nth(2).hover()
    expect(a.locator(".tok-tip")).to_be_visible()
    assert a.locator(".tok-tip .tip-row").count() == 5 and "잘림" in a.locator(".tok-tip").inner_text()
    a.locator(".new .tok").nth(2).click()
    expect(a.locator(".dist .dist-svg")).to_be_visible()
    assert a.locator(".dist-svg rect.raw").count() == 20
    assert 1 <= a.locator(".dist-svg rect.after").count() <= 3, "top_k=3 keeps at most three candidates"
    assert a.locator(".dist-svg line.cut").count() == 1
    expect(a.locator(".dist-caption")).to_contain_text("3번째 토큰")


def test_page_calls_the_students_inference_fn_and_says_so(bundled):
    """Step 5: with an inference_fn the page posts to /api (the student's function), not /api/generate."""
    from playwright.sync_api import expect, sync_playwright

    from kogen.web import get_web_service_app
    calls = []

    def inference_fn(prompt, min_length, max_length, top_p, top_k, repetition_penalty, no_repeat_ngram_size,
                     temperature):
        calls.append((min_length, max_length, top_k))
        return prompt + " 학생 함수가 쓴 글"

    model, tok = bundled
    server = start_server(get_web_service_app(inference_fn, model=model, tokenizer=tok, model_name="bundled"))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page()
            errors = watch(page)
            page.goto(f"http://127.0.0.1:{server.effective_port}")
            expect(page.locator("#student-api")).to_contain_text("inference_fn")
            page.fill("#prompt", "이 영화는")
            page.click("#run-a")
            expect(page.locator("#col-a .new")).to_have_text(" 학생 함수가 쓴 글", timeout=30_000)
            expect(page.locator("#col-a .stats")).to_contain_text("/api")
            browser.close()
    finally:
        stop_server(server)
    assert not errors, errors
    assert calls and calls[0][2] == 50 and calls[0][1] >= calls[0][0]


def test_csp_violations_are_caught(url):
    """watch() works: an inline script is refused by the page's policy and reported."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page()
        errors = watch(page)
        page.goto(url)
        page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.__inline = 1';
                                 document.body.append(s); }""")
        page.wait_for_timeout(200)
        assert page.evaluate("window.__inline") is None, "the policy must block inline scripts"
        browser.close()
    assert len(errors) == 1 and "script-src" in errors[0], errors


def test_page_asks_for_the_key_once_and_a_link_can_carry_it(bundled):
    """kogen serve --api-key: the page asks on the first 401, keeps the key for the tab; #key= in a link
    is taken and removed from the address bar."""
    from playwright.sync_api import expect, sync_playwright
    server = start_server(create_app(*bundled, model_name="bundled", security=dict(api_keys=["class-key"])))
    url = f"http://127.0.0.1:{server.effective_port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page, asked = browser.new_page(), []
            errors = watch(page)
            page.on("dialog", lambda d: asked.append(d.message) or d.accept("class-key"))
            page.goto(url)
            page.locator('#col-a [name="max_new_tokens"]').fill("4")
            for _ in range(2):
                page.click("#run-a")
                expect(page.locator("#col-a .stats")).to_contain_text("토큰/초", timeout=30_000)
            assert len(asked) == 1 and "API 키" in asked[0], asked
            link = browser.new_page()  # a new tab: nothing stored, the link brings the key
            errors += watch(link)
            link.on("dialog", lambda d: asked.append(d.message) or d.dismiss())
            link.goto(url + "/#key=class-key")
            assert "#key" not in link.url, "the key leaves the address bar"
            link.locator('#col-a [name="max_new_tokens"]').fill("4")
            link.click("#run-a")
            expect(link.locator("#col-a .stats")).to_contain_text("토큰/초", timeout=30_000)
            assert len(asked) == 1, "no question with the link"
            browser.close()
    finally:
        stop_server(server)
    assert not errors, errors
