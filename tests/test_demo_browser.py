"""`onellm demo` in a real browser: headless Chromium uploads an image, presses Caption and
waits for the streamed answer and the router chart; the page is saved as a screenshot."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow  # a headless browser against the demo

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium chromium-driver)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")

from media_files import bar_clip  # noqa: E402
from PIL import Image  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from onellm import OneLLM  # noqa: E402
from onellm.demo.app import build_app  # noqa: E402
from onellm.registry import get_modality  # noqa: E402

VIEWPORT = (1280, 900)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _picture(path: Path) -> Path:
    img = np.full((240, 320, 3), 235, np.uint8)
    img[40:200, 30:150] = (200, 40, 40)
    yy, xx = np.mgrid[:240, :320]
    img[(yy - 120) ** 2 + (xx - 230) ** 2 < 60**2] = (30, 90, 220)
    Image.fromarray(img).save(path)
    return path


@pytest.fixture
def page():
    torch.manual_seed(0)
    model = OneLLM.from_pretrained("tiny")
    # The tiny LM is random and may end its text at once; keep end-of-text below the best byte.
    with torch.no_grad():
        model.llm.get_output_embeddings().weight[model.processor.tokenizer.eos_token_id] = 0
    demo = build_app(model)
    port = _free_port()
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        yield driver
    finally:
        driver.quit()
        demo.close()


def _text(driver, selector: str) -> str:
    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)).strip()


def test_upload_caption_and_screenshot(page, tmp_path):
    wait = WebDriverWait(page, 30)
    upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#file input[type=file]"))
    upload.send_keys(str(_picture(tmp_path / "shapes.png")))
    # The upload handler guessed the modality and rendered the preview.
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".preview img"))
    assert page.find_element(By.CSS_SELECTOR, "#modality input").get_attribute("value") == "image"

    page.find_element(By.CSS_SELECTOR, "#caption").click()
    wait.until(lambda d: _text(d, "#conversation [data-testid=bot]"))
    # The router chart arrives with the last streamed update, after the answer is complete.
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#router canvas, #router svg .mark-rect"))
    assert get_modality("image").caption_prompt() in _text(page, "#conversation [data-testid=user]")

    shot = tmp_path / "demo.png"
    assert page.save_screenshot(str(shot))
    with Image.open(shot) as img:
        assert img.size == VIEWPORT
        assert np.asarray(img.convert("L")).std() > 10  # a rendered page, not a blank one


def _shown(driver, selector: str) -> list:
    return [e for e in driver.find_elements(By.CSS_SELECTOR, selector) if e.is_displayed()]


def test_a_video_is_asked_about_with_its_sound(page, tmp_path):
    wait = WebDriverWait(page, 30)
    assert not _shown(page, "#sound input[type=checkbox]")  # offered for a video only
    upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#file input[type=file]"))
    upload.send_keys(str(bar_clip(tmp_path / "clip.mp4")))
    box = wait.until(lambda d: _shown(d, "#sound input[type=checkbox]"))[0]
    assert page.find_element(By.CSS_SELECTOR, "#modality input").get_attribute("value") == "video"
    wait.until(lambda d: _shown(d, ".preview video"))
    assert not _shown(page, ".preview img")
    box.click()
    wait.until(lambda d: _shown(d, ".preview img"))  # the soundtrack's spectrogram beside the player

    page.find_element(By.CSS_SELECTOR, "#caption").click()
    wait.until(lambda d: _text(d, "#conversation [data-testid=bot]"))
    assert "video and audio" in _text(page, "#conversation [data-testid=user]")
