"""The explorer page (GET /) in a real browser: headless Chromium driven by Playwright for Python.

The server runs on 127.0.0.1 with a small model trained here on the demo's task (English number words ->
German), so the page shows a real translation and attention that means something. Every check compares the page
with the API's own answer for the same request (/translate, /attention), never with a fixed string.

The browser is Debian's ``chromium`` (found on PATH, or named by ``TRANSFORMER_CHROMIUM``); Playwright's own
browser download is not used. Without Playwright or Chromium these tests skip and say which is missing.
Screenshots go to pytest's temporary directory; where is printed at the end of the module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser tests need Playwright for Python (pip install playwright)"
)

from transformer.data import prepare  # noqa: E402
from transformer.demo.numbers import make_demo_corpus  # noqa: E402
from transformer.run_config import load_config  # noqa: E402
from transformer.training.loop import train  # noqa: E402
from transformer.translator import Translator  # noqa: E402


def chromium_executable() -> str | None:
    """``TRANSFORMER_CHROMIUM``, else the first Chromium on PATH."""
    named = os.environ.get("TRANSFORMER_CHROMIUM")
    if named:
        return named
    return next((path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None)


CHROMIUM = chromium_executable()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium for the browser tests: install Debian's chromium (apt-get install chromium) or set "
    "TRANSFORMER_CHROMIUM to a Chromium executable",
)
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass(frozen=True)
class NumbersRun:
    run_dir: Path
    test_src: list[str]  # held-out English numbers


@pytest.fixture(scope="module")
def numbers_run(tmp_path_factory: pytest.TempPathFactory) -> NumbersRun:
    """A demo-like model (numbers up to 999, 2+2 layers, 4 heads) trained for 300 steps: about 10 s on one
    thread, and it writes most held-out numbers right."""
    root = tmp_path_factory.mktemp("numbers_run")
    files = make_demo_corpus(root / "raw", n_train=900, n_valid=20, n_test=30, max_number=999, seed=1)
    prepare(*files["train"], root / "data", *files["valid"], vocab_size=80, joint=True, model_type="bpe")
    settings = {
        "data.dir": json.dumps(str(root / "data")), "data.max_tokens": 768,
        "model.d_model": 48, "model.n_heads": 4, "model.d_ff": 96, "model.n_encoder_layers": 2,
        "model.n_decoder_layers": 2, "model.dropout": 0.0, "model.share_embeddings": "true",
        "train.max_steps": 300, "train.warmup": 40, "train.lr_scale": 0.5, "train.device": "'cpu'",
        "train.threads": 1, "train.log_every": 300, "train.eval_every": 300, "train.save_every": 300,
        "train.valid_bleu_sentences": 0,
    }
    threads = torch.get_num_threads()
    train(load_config(None, [f"{k}={v}" for k, v in settings.items()]), root / "run")
    torch.set_num_threads(threads)
    return NumbersRun(root / "run", files["test"][0].read_text(encoding="utf-8").splitlines())


@pytest.fixture(scope="module")
def site(serve, numbers_run):
    """The service with the trained model, on 127.0.0.1."""
    translator = Translator.from_checkpoint(numbers_run.run_dir, device="cpu")
    with serve(translator, max_text_tokens=40, max_beam_size=8) as srv:
        yield srv


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Path]:
    """Where the screenshots go; said on the terminal at the end of the module."""
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    saved = sorted(p.name for p in folder.glob("*.png"))
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if saved and capture is not None:
        with capture.global_and_fixture_disabled():
            print(f"\nbrowser screenshots ({len(saved)}): {folder}")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


def open_page(browser, site, viewport: dict) -> tuple[object, list[str]]:
    """A fresh page on the site, and the list its console errors and script errors are gathered in."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    problems: list[str] = []

    def on_console(message) -> None:
        # Chromium logs every 4xx answer as an error; the 422s are the API refusing bad input, as tested.
        if message.type == "error" and "the server responded with a status of 422" not in message.text:
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
    page.goto(site.url + "/")
    page.wait_for_function("() => document.getElementById('beam-size').value !== ''")
    return page, problems


@pytest.fixture
def page(browser, site):
    page, problems = open_page(browser, site, LAPTOP)
    yield page
    page.context.close()
    assert problems == [], problems  # nothing broke, nothing was refused by the page's CSP


def api(site, path: str, body: dict) -> httpx.Response:
    return httpx.post(f"{site.url}/{path}", json=body, timeout=60)


def translate(page, text: str, beam: int | None = None, n_best: int | None = None) -> None:
    """Type ``text`` (and options), click Translate and wait until the answers are in."""
    page.fill("#text", text)
    if beam is not None:
        page.fill("#beam-size", str(beam))
    if n_best is not None:
        page.fill("#n-best", str(n_best))
    page.click("#translate")
    page.wait_for_function("() => !document.getElementById('translate').disabled")


def visible(page, selector: str) -> bool:
    return page.locator(selector).is_visible()


HEATMAP = """() => {
  const svg = document.getElementById('heatmap');
  return {
    kind: svg.dataset.kind,
    cells: [...svg.querySelectorAll('rect.cell')].map((r) => [Number(r.dataset.row), Number(r.dataset.col),
      r.dataset.weight, r.dataset.masked === 'true', r.getAttribute('fill')]),
    rows: [...svg.querySelectorAll('.row-label')].map((t) => t.textContent),
    cols: [...svg.querySelectorAll('.col-label')].map((t) => t.textContent),
  };
}"""
TOKENS = {"encoder": ("source_tokens", "source_tokens"), "decoder": ("target_tokens", "target_tokens"),
          "cross": ("output_tokens", "source_tokens")}


def expected_matrix(answer: dict, kind: str, layer: int, head: str) -> list[list[float]]:
    heads = answer["weights"][kind][layer]
    if head != "mean":
        return heads[int(head)]
    return [[sum(h[r][c] for h in heads) / len(heads) for c in range(len(heads[0][0]))] for r in range(len(heads[0]))]


# -- the tests ----------------------------------------------------------------------------------------------


def test_the_page_translates_as_the_api_does(page, site, numbers_run, shots):
    text = numbers_run.test_src[0]
    translate(page, text)
    beam = int(page.input_value("#beam-size"))
    served = api(site, "translate", {"text": text, "beam_size": beam}).json()["translations"][0]
    assert page.text_content("#translation") == served["text"]
    assert page.text_content("#score") == f"score {served['score']:.4f} ·"
    assert re.fullmatch(r"translated in \d+ ms, attention in \d+ ms \(round trips from this page\)",
                        page.text_content("#timing"))
    assert not visible(page, "#nbest-block") and not visible(page, "#error")
    page.screenshot(path=shots / "translated.png", full_page=True)

    translate(page, numbers_run.test_src[1], beam=5, n_best=3)
    served = api(site, "translate", {"text": numbers_run.test_src[1], "beam_size": 5, "n_best": 3}).json()
    hypotheses = served["translations"][0]["n_best"]
    items = page.locator("#nbest li")
    assert items.count() == 3
    for i, hypothesis in enumerate(hypotheses):
        assert items.nth(i).text_content() == f"{hypothesis['text']}{hypothesis['score']:.4f}"
    assert page.text_content("#translation") == hypotheses[0]["text"]
    page.screenshot(path=shots / "n-best.png", full_page=True)


# (kind, layer, head) in the order the test switches to them: every kind, both layers, single heads and the mean.
VIEWS = [("cross", 1, "mean"), ("cross", 0, "2"), ("encoder", 0, "0"), ("encoder", 1, "mean"), ("decoder", 1, "3"),
         ("decoder", 0, "mean")]


def test_the_heatmap_draws_the_weights_of_the_api(page, site, numbers_run, shots):
    text = numbers_run.test_src[2]
    translate(page, text)
    answer = api(site, "attention", {"text": text, "beam_size": int(page.input_value("#beam-size"))}).json()
    assert page.text_content("#translation") == answer["translation"]
    assert page.locator("#head option").count() == answer["heads"] + 1  # the mean, then each head
    for kind, layer, head in VIEWS:
        page.select_option("#kind", value=kind)
        page.select_option("#layer", value=str(layer))
        page.select_option("#head", value=head)
        drawn = page.evaluate(HEATMAP)
        rows, cols = (answer[name] for name in TOKENS[kind])
        assert drawn["kind"] == kind and (drawn["rows"], drawn["cols"]) == (rows, cols)
        assert len(drawn["cells"]) == len(rows) * len(cols)
        expected = expected_matrix(answer, kind, layer, head)
        for r, c, weight, masked, fill in drawn["cells"]:
            if head == "mean":
                assert float(weight) == pytest.approx(expected[r][c], rel=1e-12, abs=1e-15)
            else:
                assert float(weight) == expected[r][c]  # the very number the API sent
            future = kind == "decoder" and c > r
            assert masked == future
            assert (fill == "url(#hatch)") == future  # the future is hatched, never a colour
            if future:
                assert float(weight) == 0.0
        page.locator("#explorer").screenshot(path=shots / f"heatmap-{kind}-layer{layer}-head{head}.png")


def test_hovering_a_target_token_highlights_its_row(page, site, numbers_run, shots):
    text = numbers_run.test_src[3]
    translate(page, text)
    answer = api(site, "attention", {"text": text, "beam_size": int(page.input_value("#beam-size"))}).json()
    page.select_option("#kind", value="cross")
    layer, head = int(page.input_value("#layer")), page.input_value("#head")
    weights = expected_matrix(answer, "cross", layer, head)
    sources, outputs = answer["source_tokens"], answer["output_tokens"]
    row = 1 if len(outputs) > 2 else 0

    page.hover(f"#heatmap .row-label[data-row='{row}']")
    lit = page.eval_on_selector_all("#heatmap rect.cell.in-row", "cells => cells.map((c) => Number(c.dataset.row))")
    assert lit == [row] * len(sources)
    assert page.eval_on_selector_all("#heatmap .row-label.active", "ts => ts.map((t) => t.textContent)") == [
        outputs[row]
    ]
    best = max(range(len(sources)), key=lambda c: weights[row][c])
    readout = page.text_content("#readout")
    assert readout.startswith(f"{outputs[row]} attends to: {sources[best]} {weights[row][best]:.3f}")
    page.evaluate("window.drawnCell = document.querySelector('#heatmap rect.cell')")
    page.screenshot(path=shots / "hover-row.png", full_page=True)  # an element shot would move the mouse away
    # A full-page shot resizes the window's height only: past the page's 150 ms resize delay, nothing was redrawn.
    page.wait_for_timeout(400)
    assert page.evaluate("document.querySelector('#heatmap rect.cell') === window.drawnCell")
    assert page.text_content("#readout") == readout

    page.hover(f"#heatmap rect.cell[data-row='{row}'][data-col='{best}']")
    cell_readout = f"{outputs[row]} → {sources[best]}: {weights[row][best]:.4f}"
    assert page.text_content("#readout") == cell_readout
    assert page.locator("#heatmap rect.cell.active").count() == 1
    assert page.locator("#heatmap rect.cell.in-col").count() == len(outputs)

    # Narrower: redrawn smaller, and the readout still names the one lit cell (the one now under the pointer).
    page.set_viewport_size({**LAPTOP, "width": LAPTOP["width"] - 200})
    page.wait_for_timeout(400)
    to_pairs = "cells => cells.map((c) => [c.dataset.row, c.dataset.col])"
    active = page.eval_on_selector_all("#heatmap rect.cell.active", to_pairs)
    assert len(active) == 1
    r, c = map(int, active[0])
    assert page.text_content("#readout") == f"{outputs[r]} → {sources[c]}: {weights[r][c]:.4f}"
    page.set_viewport_size(LAPTOP)
    page.wait_for_timeout(400)

    page.hover(f"#alignment .output-token[data-row='{row}']")  # the alignment view: this token's lines
    lines = page.eval_on_selector_all("#alignment .align-line.lit", "ls => ls.map((l) => Number(l.dataset.row))")
    assert lines == [row] * len(sources)


def test_api_errors_show_in_the_page(page, site, numbers_run, shots):
    too_long = " ".join(["seven"] * 300)  # over the server's 256 source tokens
    cases = [("", None, "empty_text"), ("   ", None, "empty_text"), (too_long, None, "text_too_long"),
             (numbers_run.test_src[4], 99, "invalid_request")]
    for text, beam, code in cases:
        translate(page, text, beam=beam)
        body = {"text": text, "n_best": 1, **({"beam_size": beam} if beam is not None else {})}
        error = api(site, "translate", body).json()["error"]
        assert error["code"] == code
        assert visible(page, "#error")
        assert page.text_content("#error-message") == error["message"]
        assert page.text_content("#error-code") == error["code"]
        assert not visible(page, "#result") and not visible(page, "#explorer")
    page.screenshot(path=shots / "error.png", full_page=True)
    translate(page, numbers_run.test_src[4], beam=2)
    assert not visible(page, "#error") and visible(page, "#result")


def test_the_page_fits_a_phone(browser, site, numbers_run, shots):
    page, problems = open_page(browser, site, PHONE)
    try:
        translate(page, numbers_run.test_src[5])
        assert visible(page, "#explorer")
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the page is {width} px wide: it scrolls sideways on a phone"
        box = page.locator("#heatmap-box").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]  # a wide heatmap scrolls in its box
        page.screenshot(path=shots / "phone.png", full_page=True)
    finally:
        page.context.close()
    assert problems == [], problems
