"""`t2t-mtl report`: the HTML page and its Markdown twin for finished, interrupted and unevaluated runs,
checked in a real headless Chromium where the machine has one."""

import base64
import re
import shutil
import signal
from pathlib import Path

import pytest

from t2t_mtl.cli import main
from t2t_mtl.reporting.plots import FIGURES

from conftest import raise_signal_at, train_toy_run

POLY = {"type": "poly", "rank": 2, "n_skills": 2}
SECTIONS = {"train": {"max_steps": 6, "eval_every": 2, "log_every": 1}}
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny_t5: Path) -> Path:
    return train_toy_run(tmp_path_factory.mktemp("report"), tiny_t5, POLY, **SECTIONS)


def embedded_images(page: Path) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page.read_text())]


def test_report_of_a_finished_routed_run_draws_every_figure(finished: Path, capsys):
    assert main(["report", str(finished)]) == 0
    page, twin = finished / "report.html", finished / "report.md"
    assert f"wrote {page}" in capsys.readouterr().out
    images = embedded_images(page)
    assert len(images) == len(FIGURES) and all(image.startswith(b"\x89PNG") for image in images)
    markdown = twin.read_text()
    for name, _ in FIGURES:
        assert f"(plots/{name}.png)" in markdown and (finished / "plots" / f"{name}.png").stat().st_size > 0
    assert "finished: 6 of 6 steps" in markdown and "Not drawn" not in markdown
    assert "| toy/unseen | held-out | accuracy |" in markdown  # the scores table has the held-out task
    assert "http" not in page.read_text()  # nothing to fetch: the page is the whole report


def test_report_of_an_interrupted_run_and_of_one_not_evaluated_yet(tmp_path: Path, tiny_t5: Path, monkeypatch,
                                                                   capsys):
    raise_signal_at(monkeypatch, 4, signal.SIGTERM)  # after the evaluation of step 4
    with pytest.raises(SystemExit) as stopped:
        train_toy_run(tmp_path, tiny_t5, POLY, train={"max_steps": 40, "eval_every": 4, "log_every": 1})
    assert stopped.value.code == 143
    run = tmp_path / "run"
    assert not (run / "final").exists()
    assert main(["report", str(run)]) == 0
    markdown = (run / "report.md").read_text()
    assert "not finished (still training, or interrupted): step 5 of 40 logged" in markdown
    assert len(embedded_images(run / "report.html")) == len(FIGURES) and "Not drawn" not in markdown

    early = tmp_path / "early"  # the same run as it was before its first evaluation
    shutil.copytree(run, early)
    lines = (early / "log.jsonl").read_text().splitlines(keepends=True)
    (early / "log.jsonl").write_text("".join(lines[:2]))
    assert main(["report", str(early)]) == 0
    markdown = (early / "report.md").read_text()
    assert "No evaluation yet" in markdown
    assert "*Not drawn: no evaluation yet: the run evaluates every train.eval_every steps" in markdown
    assert "![Training loss](plots/loss.png)" in markdown


def test_report_of_two_runs_side_by_side_and_bad_folders(finished: Path, tmp_path: Path, tiny_t5: Path, capsys):
    lora = train_toy_run(tmp_path, tiny_t5, {"type": "lora", "rank": 2}, **SECTIONS)
    assert main(["report", str(finished), str(lora)]) == 2
    assert "a report of several runs needs --out DIR" in capsys.readouterr().err
    out = tmp_path / "both"
    assert main(["report", str(finished), str(lora), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    assert f"t2t-mtl report: {finished.name}, run" in markdown or f"{finished}, {lora}" in markdown
    assert len(embedded_images(out / "report.html")) == len(FIGURES)  # the routing of the one routed run

    (tmp_path / "notarun").mkdir()
    assert main(["report", str(tmp_path / "notarun")]) == 2
    assert "is not a run folder (no recipe.yaml)" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "is not a folder; give a run folder" in capsys.readouterr().err


def chromium_driver():
    """A headless Chromium under Selenium (Debian's chromium and chromium-driver), or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).is_file():
            pytest.skip(f"{binary} is missing: install Debian's chromium and chromium-driver (.ci/run does, as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1100,1400"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))


def test_report_page_loads_in_headless_chromium(finished: Path, tmp_path: Path):
    assert main(["report", str(finished), "--out", str(tmp_path / "page")]) == 0
    driver = chromium_driver()
    try:
        driver.get((tmp_path / "page/report.html").as_uri())
        state = driver.execute_script("return document.readyState")
        images = driver.execute_script(
            "return Array.from(document.images, i => [i.complete, i.naturalWidth, i.naturalHeight,"
            " i.getBoundingClientRect().width, i.getBoundingClientRect().height])")
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        screenshot = tmp_path / "report.png"
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    assert state == "complete" and errors == []
    assert len(images) == len(FIGURES)
    assert all(complete and width > 0 and height > 0 and shown_w > 0 and shown_h > 0
               for complete, width, height, shown_w, shown_h in images)
    assert screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 10_000
