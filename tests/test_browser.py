"""The course in a real browser: lessons 03 and 07 in JupyterLab (``make lab``) and lesson 07 in
Voilà (``make present``).

Each JupyterLab test runs every cell of a copy of the lesson, moves sliders with the keyboard as a learner
would, and checks that the readout and the figure now show what course_lib computes headless for
the new slider values. Screenshots go to ``$SCREENSHOT_DIR`` (default ``build/screenshots``;
``make screenshots`` writes the README's). Needs chromium (``apt install chromium``); without
it the module is skipped with that reason.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import time
import urllib.request
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from browser_support import (
    ROOT,
    chromium_page,
    find_chromium,
    html_text,
    jupyter_server,
    lab_argv,
    present_argv,
    processes_marked,
    processes_mentioning,
    squash,
)

CHROMIUM = find_chromium()
if CHROMIUM is None and os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
    raise RuntimeError("COURSE_REQUIRE_BROWSER=1 but chromium was not found (set CHROMIUM?)")
if CHROMIUM is None:
    pytest.skip("chromium not found: `apt install chromium` (or set CHROMIUM) to run the browser "
                "tests", allow_module_level=True)

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "build" / "screenshots"))
RUN_ALL_TIMEOUT_MS = 600_000
RUN_ALL_STALL_S = 300                     # the cell timeout nbval runs the lessons with
WIDGET_TIMEOUT_MS = 60_000


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of the lessons: running them in the browser must not touch the committed ones."""
    work = tmp_path_factory.mktemp("course")
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(nb, work / nb.name)
    return work


@pytest.fixture(scope="module")
def lab(workdir, tmp_path_factory):
    with jupyter_server(lambda port, token: lab_argv(workdir, port, token), "api/status",
                        home=tmp_path_factory.mktemp("lab-home")) as server:
        yield server


@pytest.fixture
def page(tmp_path):
    with chromium_page(CHROMIUM, tmp_path / "profile") as page:
        page.set_default_timeout(WIDGET_TIMEOUT_MS)
        yield page


# ------------------------------------------------------------------------------------------
# Driving a panel
# ------------------------------------------------------------------------------------------


def panel_with_readout(page, text: str):
    """The innermost widget box (a course_lib Panel) whose readout contains ``text``."""
    boxes = page.locator(".widget-vbox").filter(
        has=page.locator(".widget-html", has_text=text)
    ).filter(has=page.locator(".widget-slider"))
    boxes.last.wait_for(state="attached")
    return boxes.last


def slider(panel, description: str):
    return panel.locator(".widget-slider").filter(
        has=panel.page.locator(".widget-label", has_text=description)
    )


def move(panel, description: str, key: str, presses: int) -> None:
    """Focus the slider's handle and press ``key`` ``presses`` times, as a learner would."""
    handle = slider(panel, description).locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(presses):
        handle.press(key)


def drag(page, panel, description: str, fraction: float, steps: int) -> tuple[list, bytes]:
    """Press the slider's handle with the mouse, move it by ``fraction`` of the track's width in
    ``steps`` steps, reading the panel's figure after each, then release. Returns the figures
    seen before the release and the one shown before the drag began."""
    s = slider(panel, description)
    handle, track = s.locator(".noUi-handle").first, s.locator(".noUi-base").first
    handle.scroll_into_view_if_needed()
    box, width = handle.bounding_box(), track.bounding_box()["width"]
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    start_png = image_png(panel)
    page.mouse.move(x, y)
    page.mouse.down()
    during = []
    for k in range(1, steps + 1):
        page.mouse.move(x + fraction * width * k / steps, y, steps=4)
        page.wait_for_timeout(300)
        during.append(image_png(panel))
    page.mouse.up()
    return during, start_png


def readout_text(panel) -> str:
    return squash(panel.locator(".widget-html-content").last.inner_text())


def image_png(panel) -> bytes:
    """The bytes behind the panel's figure, read back from the browser's ``<img>``."""
    data = panel.locator("img").first.evaluate(
        """async (img) => {
            const buf = await (await fetch(img.src)).arrayBuffer();
            let s = ''; for (const b of new Uint8Array(buf)) s += String.fromCharCode(b);
            return btoa(s);
        }"""
    )
    return base64.b64decode(data)


def wait_for_readout(page, panel, expected_html: str) -> None:
    """Wait until the readout shows ``expected_html``'s text; fail with both texts otherwise."""
    expected = html_text(expected_html)
    panel.scroll_into_view_if_needed()
    try:
        page.wait_for_function(
            "([el, expected]) => el.innerText.replace(/\\s+/g, ' ').trim() === expected",
            arg=[panel.locator(".widget-html-content").last.element_handle(), expected],
            timeout=WIDGET_TIMEOUT_MS,
        )
    except Exception:
        assert readout_text(panel) == expected
        raise


def expect_count(locator, n: int) -> None:
    """Wait until ``locator`` matches ``n`` elements; fail with the count it had."""
    deadline = time.monotonic() + WIDGET_TIMEOUT_MS / 1000
    while locator.count() != n:
        if time.monotonic() > deadline:
            assert locator.count() == n
        locator.page.wait_for_timeout(250)


def shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def pixels(png: bytes) -> np.ndarray:
    return mpimg.imread(io.BytesIO(png), format="png")


def assert_panel_shows(page, panel, headless) -> None:
    """The browser's readout and figure become the headless panel's for the same values, the
    figure pixel for pixel (the PNG bytes may differ in their metadata). Readout and image are
    two widgets whose updates the browser renders separately, so the image is polled until it
    matches or time runs out."""
    wait_for_readout(page, panel, headless.readout.value)
    expected = pixels(headless.png())
    deadline = time.monotonic() + WIDGET_TIMEOUT_MS / 1000
    while True:
        shown = pixels(image_png(panel))
        if shown.shape == expected.shape and np.array_equal(shown, expected):
            return
        if time.monotonic() > deadline:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            (SCREENSHOTS / "FAILED-figure-shown.png").write_bytes(image_png(panel))
            (SCREENSHOTS / "FAILED-figure-expected.png").write_bytes(headless.png())
            differ = np.mean(shown != expected) if shown.shape == expected.shape else 1.0
            raise AssertionError(f"the figure never matched: {differ:.1%} of pixels differ")
        page.wait_for_timeout(250)


# ------------------------------------------------------------------------------------------
# JupyterLab
# ------------------------------------------------------------------------------------------


def menu(page, *path: str) -> None:
    for name in path:
        page.get_by_role("menuitem", name=name, exact=True).click()


def open_and_run_all(page, lab, notebook: str) -> None:
    """Open a lesson, clear its stored outputs, run all cells and wait for the last one."""
    page.goto(lab.url(f"lab/tree/{notebook}?reset"))  # reset: only this notebook open
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    kernel_idle(page).wait_for(timeout=RUN_ALL_TIMEOUT_MS)
    menu(page, "Edit", "Clear Outputs of All Cells")
    page.wait_for_function("""() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                                    .every(p => !/\\d/.test(p.textContent))""")
    menu(page, "Run", "Run All Cells")
    wait_for_run_all(page, Path(notebook).stem)
    current_tab = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    if current_tab.count():
        current_tab.click()                        # fold the file browser: more room
    assert_no_tracebacks(page)


def kernel_idle(page):
    """The status bar's kernel item once the kernel has started and is idle."""
    return page.locator(".jp-StatusBar-Widget").get_by_text("| Idle")


STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"

# What the page shows of a run: each code cell's prompt, tracebacks, open dialogs, status bar.
RUN_STATE_JS = """(stderr) => ({
    prompts: [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
             .map(p => p.textContent.trim()),
    errors: [...document.querySelectorAll(stderr)].map(e => e.textContent)
            .filter(t => /Traceback|Error/.test(t)),
    dialogs: [...document.querySelectorAll('.jp-Dialog')].map(d => d.innerText),
    status: document.querySelector('.jp-StatusBar-Widget')?.innerText ?? '',
})"""


def wait_for_run_all(page, name: str) -> None:
    """Wait until every code cell shows a new execution count. Fail at once on a traceback or
    a dialog, and when no cell has finished for RUN_ALL_STALL_S; the message says what the
    page showed."""
    last, changed = None, time.monotonic()
    while True:
        state = page.evaluate(RUN_STATE_JS, STDERR)
        prompts = state["prompts"]
        if prompts and all(re.fullmatch(r"\[\d+\]:?", p) for p in prompts):
            return
        now = time.monotonic()
        if prompts != last:
            last, changed = prompts, now
        problem = ("a cell raised" if state["errors"] else
                   "a dialog opened" if state["dialogs"] else
                   f"no cell finished in {RUN_ALL_STALL_S} s"
                   if now - changed > RUN_ALL_STALL_S else None)
        if problem:
            shot(page, f"FAILED-run-all-{name}")
            done = sum(bool(re.fullmatch(r"\[\d+\]:?", p)) for p in prompts)
            raise AssertionError(
                f"Run All of {name}: {problem}; {done} of {len(prompts)} code cells done, "
                f"prompts {prompts}; status bar {squash(state['status'])!r}; "
                f"dialogs {state['dialogs']}; errors {[e[-1500:] for e in state['errors']]}")
        page.wait_for_timeout(1000)


def assert_no_tracebacks(page) -> None:
    errors = page.locator(STDERR)
    assert [e for e in errors.all_text_contents() if "Traceback" in e or "Error" in e] == []


def test_lesson_03_ratio_panel_follows_its_sliders(page, lab):
    from course_lib.widgets.l03_ratio import ratio_panel

    open_and_run_all(page, lab, "03_ratio_and_surrogate.ipynb")
    panel = panel_with_readout(page, "r = π_new / π_old")
    start = ratio_panel(p_old=0.2, p_new=0.8, advantage=5.0, eps=0.2)
    assert_panel_shows(page, panel, start)
    before = image_png(panel)

    # π_old 0.20 -> 0.25 and π_new 0.80 -> 0.50 (steps of 0.01), A +5 -> +3 (steps of 0.5),
    # ε 0.20 -> 0.30.
    label = {name: s.description for name, s in start.sliders.items()}
    move(panel, label["p_old"], "ArrowRight", 5)
    move(panel, label["p_new"], "ArrowLeft", 30)
    move(panel, label["advantage"], "ArrowLeft", 4)
    move(panel, label["eps"], "ArrowRight", 10)
    moved = ratio_panel(p_old=0.25, p_new=0.5, advantage=3.0, eps=0.3)
    assert_panel_shows(page, panel, moved)
    text = readout_text(panel)
    assert "2.000" in text                         # r = 0.5 / 0.25
    assert "3.900 (clipped: no gradient)" in text  # min(2·3, 1.3·3)
    assert image_png(panel) != before
    panel.scroll_into_view_if_needed()
    shot(page, "lab_03_ratio_panel")


def static_panels(page):
    """Panel outputs shown as their stored picture (``Panel.static_html``)."""
    from course_lib.widgets.panel import STATIC_NOTE

    return page.locator(".jp-OutputArea-output").filter(has_text=STATIC_NOTE)


def assert_no_widget_errors(page) -> None:
    assert page.get_by_text("Error displaying widget").count() == 0


def test_lesson_03_after_save_and_reload_its_panel_says_how_to_get_the_sliders_back(page, lab):
    from course_lib.widgets.l03_ratio import ratio_panel

    open_and_run_all(page, lab, "03_ratio_and_surrogate.ipynb")
    panel_with_readout(page, "r = π_new / π_old")
    page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").click()
    page.locator(".jp-mod-dirty").first.wait_for(state="detached")
    page.reload()                                  # the kernel is still running
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    kernel_idle(page).wait_for(timeout=RUN_ALL_TIMEOUT_MS)
    expect_count(static_panels(page), 1)
    assert page.locator(".widget-slider").count() == 0
    assert_no_widget_errors(page)
    start = ratio_panel(p_old=0.2, p_new=0.8, advantage=5.0, eps=0.2)
    assert np.array_equal(pixels(image_png(static_panels(page).first)), pixels(start.png()))
    static_panels(page).first.scroll_into_view_if_needed()
    shot(page, "lab_03_after_reload")

    # What the line says works: run the cell again and the sliders are back.
    cell = page.locator(".jp-CodeCell").filter(has=static_panels(page))
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    panel = panel_with_readout(page, "r = π_new / π_old")
    move(panel, start.sliders["p_new"].description, "ArrowLeft", 30)   # π_new 0.80 -> 0.50
    assert_panel_shows(page, panel, ratio_panel(p_old=0.2, p_new=0.5, advantage=5.0, eps=0.2))
    assert_no_widget_errors(page)


def test_lesson_07_opened_from_disk_shows_its_panels_as_pictures_then_follows_eps(page, lab):
    """Stored: each panel is a picture. Run: the clip panel follows ε moved with the keyboard,
    and follows it while it is dragged with the mouse, not only once it is let go."""
    from course_lib.widgets.l07_ppo_clip import clip_panel

    # The stored lesson (untrusted, no kernel-side models): each panel is its picture and one
    # line saying how to get the sliders back, not a bare PNG nor "model not found".
    page.goto(lab.url("lab/tree/07_ppo_clip.ipynb?reset"))
    kernel_idle(page).wait_for(timeout=RUN_ALL_TIMEOUT_MS)
    expect_count(static_panels(page), 2)
    assert static_panels(page).locator("img").count() == 2
    assert_no_widget_errors(page)
    static_panels(page).first.scroll_into_view_if_needed()
    shot(page, "lab_07_stored_panel")

    open_and_run_all(page, lab, "07_ppo_clip.ipynb")
    panel = panel_with_readout(page, "clip interval")
    assert_panel_shows(page, panel, clip_panel(eps=0.2))
    before = image_png(panel)

    move(panel, clip_panel().sliders["eps"].description, "ArrowRight", 15)  # ε 0.20 -> 0.35
    moved = clip_panel(eps=0.35)
    assert_panel_shows(page, panel, moved)
    assert "[0.65, 1.35]" in readout_text(panel)
    assert image_png(panel) != before
    panel.scroll_into_view_if_needed()
    shot(page, "lab_07_clip_panel")

    # A drag with the mouse: the figure follows the hand, and ends on the value let go at.
    during, start_png = drag(page, panel, clip_panel().sliders["eps"].description, -0.6, 8)
    assert any(png != start_png for png in during), "the figure changed only after the release"
    final = float(slider(panel, clip_panel().sliders["eps"].description)
                  .locator(".widget-readout").inner_text())
    assert final < 0.35
    assert_panel_shows(page, panel, clip_panel(eps=final))


def test_a_failing_test_still_stops_the_server_and_its_kernels(workdir, tmp_path):
    started = None
    with (
        pytest.raises(RuntimeError, match="a failing test"),
        jupyter_server(lambda port, token: lab_argv(workdir, port, token), "api/status",
                       home=tmp_path) as server,
    ):
        request = urllib.request.Request(server.url("api/kernels"), data=b"{}", method="POST")
        with urllib.request.urlopen(request) as r:
            assert r.status == 201
        started = server.processes()
        raise RuntimeError("a failing test")
    assert len(started) >= 2                       # the server and its kernel
    assert processes_marked(server.token) == []


def test_a_failing_test_still_closes_the_browser(tmp_path):
    profile = tmp_path / "profile"
    with pytest.raises(RuntimeError, match="a failing test"), chromium_page(CHROMIUM, profile):
        assert processes_mentioning(str(profile)), "chromium runs with this profile"
        raise RuntimeError("a failing test")
    assert processes_mentioning(str(profile)) == []


def test_lab_shows_no_news_or_update_pop_up(page, lab):
    page.goto(lab.url("lab/tree/00_start_here.ipynb?reset"))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    kernel_idle(page).wait_for(timeout=RUN_ALL_TIMEOUT_MS)
    page.wait_for_timeout(3000)
    assert page.locator(".jp-toast-message, .Toastify__toast").all_inner_texts() == []


# ------------------------------------------------------------------------------------------
# Voilà (make present)
# ------------------------------------------------------------------------------------------


def test_make_present_serves_lesson_07_without_code_and_its_clip_panel_follows_eps(page,
                                                                                  tmp_path):
    from course_lib.widgets.l07_ppo_clip import clip_panel

    with jupyter_server(lambda port, token: present_argv("07_ppo_clip", port, token),
                        "voila/static/voila.js", home=tmp_path / "voila") as voila:
        page.goto(voila.url(""), timeout=RUN_ALL_TIMEOUT_MS)
        panel = panel_with_readout(page, "clip interval")
        assert_panel_shows(page, panel, clip_panel(eps=0.2))
        assert_no_tracebacks(page)
        page.locator(".widget-slider").nth(1).wait_for()   # the ε sweep's panel, near the end
        text = page.locator("body").inner_text()
        assert "clip interval" in text             # the page is there, its code is not:
        assert "from course_lib" not in text and "clip_panel(eps=EPS)" not in text
        assert page.locator(".jp-InputArea-editor, .cm-editor").count() == 0
        # no widget error (the training progress bar left one), no line meant for the notebook
        assert "Error displaying widget" not in text
        for line in ("redraw:", "all claims hold", "mean_return shape", "beta replayed"):
            assert line not in text
        assert "median over 10 agents" in text       # the lesson's printed results stay
        # closed pages' kernels are culled after 2 idle minutes, checked every 30 s
        assert ("Culling kernels with idle durations > 120 seconds at 30 second intervals"
                in voila.log())
        assert "Culling kernels even with connected clients" not in voila.log()

        move(panel, clip_panel().sliders["eps"].description, "ArrowLeft", 10)  # ε 0.20 -> 0.10
        assert_panel_shows(page, panel, clip_panel(eps=0.1))
        assert "[0.90, 1.10]" in readout_text(panel)
        panel.scroll_into_view_if_needed()
        shot(page, "voila_07_clip_panel")


def test_lecture_mode_shuts_down_the_kernel_of_a_closed_page(tmp_path):
    """A tab closed without its unload message reaching the server (a laptop put to sleep, a
    crashed browser) leaves its kernel to the culler; short cull times here, 120 s in class."""
    home = tmp_path / "voila"
    with jupyter_server(lambda port, token: present_argv(
            "07_ppo_clip", port, token, "VOILA_CULL_S=4", "VOILA_CULL_INTERVAL_S=2"),
            "voila/static/voila.js", home=home) as voila:
        with chromium_page(CHROMIUM, tmp_path / "profile") as page:
            page.set_default_timeout(WIDGET_TIMEOUT_MS)
            page.goto(voila.url(""), timeout=RUN_ALL_TIMEOUT_MS)
            panel_with_readout(page, "clip interval")
            kernel_id = page.evaluate("""() => JSON.parse(document.getElementById(
                'jupyter-config-data').textContent).kernelId""")
            assert kernel_id
            page.wait_for_timeout(8000)             # idle past the cull time, still connected
            assert f"Culling 'idle' kernel 'python3' ({kernel_id})" not in voila.log()
            page.close(run_before_unload=False)
        deadline = time.monotonic() + 60
        while f"Culling 'idle' kernel 'python3' ({kernel_id})" not in voila.log():
            assert time.monotonic() < deadline, voila.log()[-3000:]
            time.sleep(1)
