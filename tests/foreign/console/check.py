"""The console in a real browser (Debian's chromium, headless, driven by
Selenium through chromedriver).

Without --token (a server on the default config, under load): the
overview lists the queues, the loaded queue's items/s and chart change,
its own page draws every chart with data, a job's bar reaches 100% and
its page downloads its results. With --token (a server with a control
token): a change without the token and with another is refused and the
page says why; with it a pause, a policy change made in the form and a
job's cancel (asked for again in the page) are done. Saves a screenshot
of each page in --shots.

    python check.py --url http://127.0.0.1:9464/ui/ --shots DIR [--job ID]
    python check.py --url ... --shots DIR --token T --cancel-job ID
"""
import argparse
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)
parser.add_argument("--shots", required=True, help="a folder for the screenshots")
parser.add_argument("--queues", default="echo,sim")
parser.add_argument("--loaded", default="echo", help="a queue under load")
parser.add_argument("--job", help="a job whose bar must reach 100%% and whose results download")
parser.add_argument("--job-items", type=int, default=0, help="the job's items (lines in the download)")
parser.add_argument("--token", help="the server's control token: check the page's changes instead")
parser.add_argument("--cancel-job", help="with --token: a running job to cancel from its page")
args = parser.parse_args()
os.makedirs(args.shots, exist_ok=True)
downloads = os.path.join(args.shots, "downloads")
os.makedirs(downloads, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1500"):
    options.add_argument(flag)
options.add_experimental_option(
    "prefs", {"download.default_directory": os.path.abspath(downloads), "download.prompt_for_download": False}
)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 20)


def shot(name):
    path = os.path.join(args.shots, name)
    driver.save_screenshot(path)
    print(f"console: screenshot {path}")


def text(d, selector):
    """The text of the first element `selector` matches, read in the page in
    one step (tables are rebuilt every second, so an element found first
    and read after may be gone)."""
    return d.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null", selector
    )


def click(d, selector):
    """Clicks the first element `selector` matches, in one step."""
    return d.execute_script(
        "const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e", selector
    )


def notice(d):
    return text(d, "#notice") or ""


def charts_with_data(d):
    """How many of the queue page's charts hold at least one point."""
    return d.execute_script(
        "return [...document.querySelectorAll('#queue-charts .chart')]"
        ".filter(c => c.querySelector('canvas')).length"
    )


def token_check():
    """Changes from the page: refused without the token and with another
    (the page says why), done with it: a pause, a policy change made in
    the form, a job's cancel."""
    driver.get(args.url)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-queue="echo"] button[data-action="pause"]'))
    box = driver.find_element(By.ID, "token")
    assert box.is_displayed()
    pause = lambda: click(driver, 'tr[data-queue="echo"] button[data-action="pause"]')
    pause()
    wait.until(lambda d: "refused" in notice(d))
    assert "needs authorization" in notice(driver), notice(driver)
    box.send_keys("guess")
    pause()
    wait.until(lambda d: "wrong control token" in notice(d))
    box.clear()
    box.send_keys(args.token)
    pause()
    wait.until(lambda d: "pause done" in notice(d))
    wait.until(lambda d: text(d, 'tr[data-queue="echo"] td:nth-child(2)') == "paused")
    print("console: without the token and with another the change is refused and the page says why; with it echo is paused")

    # The policy form: max_delay_us of echo to 7000 (sent as UpdateQueue);
    # a value that is not a number is refused in the page first.
    driver.get(args.url + "#/queue/echo")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#policy-field option[value="max_delay_us"]'))
    wait.until(lambda d: text(d, 'tr[data-field="max_delay_us"] td.value'))
    driver.execute_script("document.getElementById('policy-field').value = 'max_delay_us'")
    value = driver.find_element(By.ID, "policy-value")
    value.send_keys("7ms")
    click(driver, "#policy-form button[type=submit]")
    wait.until(lambda d: "not a whole number" in notice(d))
    value.clear()
    value.send_keys("7000")
    click(driver, "#policy-form button[type=submit]")
    wait.until(lambda d: "max_delay_us done" in notice(d))
    wait.until(lambda d: text(d, 'tr[data-field="max_delay_us"] td.value') == "7000")
    print("console: echo's max_delay_us set to 7000 from the form, shown in its policy")
    shot("policy.png")

    if args.cancel_job:
        driver.get(args.url + "#/job/" + args.cancel_job)
        wait.until(lambda d: "in_progress" in (text(d, "#job-title") or "") or "queued" in (text(d, "#job-title") or ""))
        click(driver, 'button[data-action="cancel"]')
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'button[data-action="confirm"]'))
        assert "in_progress" in text(driver, "#job-title") or "queued" in text(driver, "#job-title"), "cancelled before confirming"
        click(driver, 'button[data-action="confirm"]')
        wait.until(lambda d: "cancel done" in notice(d))
        wait.until(lambda d: "cancelled" in (text(d, "#job-title") or ""))
        print(f"console: job {args.cancel_job} cancelled from its page after confirming")
        shot("job-cancelled.png")


def overview_check():
    driver.get(args.url)
    # Every queue of the config has its row and its chart.
    for name in args.queues.split(","):
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-queue="{name}"]'))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'.chart[data-queue="{name}"] canvas'))
    wait.until(lambda d: (text(d, "#status") or "").startswith("live"))

    # Under load the loaded queue's rate is above zero, then its chart has
    # points: its numbers change from one second to the next.
    def rate(d):
        try:
            return float(text(d, f'tr[data-queue="{args.loaded}"] td.rate') or "")
        except ValueError:
            return 0.0

    wait.until(lambda d: rate(d) > 0)
    first = rate(driver)
    time.sleep(2.5)
    second = rate(driver)
    print(f"console: queues {args.queues} listed with charts; {args.loaded} at {first:,.0f} then {second:,.0f} items/s")
    if args.job:
        done = f'tr[data-job="{args.job}"] td.progress[data-percent="100"]'
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, done))
        wait.until(lambda d: "completed" in (text(d, f'tr[data-job="{args.job}"]') or ""))
        print(f"console: job {args.job} shown at 100%, completed")
    shot("overview.png")

    # The loaded queue's page: every chart drawn, its histogram has bars,
    # the trigger chart a point, the summary its counts.
    click(driver, f'tr[data-queue="{args.loaded}"] td:first-child a')
    wait.until(lambda d: (text(d, "#queue-title") or "").endswith(args.loaded))
    wait.until(lambda d: charts_with_data(d) >= 5)
    bars = lambda d: d.execute_script(
        "const q = (window.bg.snapshot.queues || []).find(q => q.name === arguments[0]);"
        "return ((q.stats || {}).batch_size_histogram || []).reduce((a, b) => a + b.batches, 0)", args.loaded)
    wait.until(lambda d: bars(d) > 0)
    wait.until(lambda d: "batches" in (text(d, "#queue-summary") or ""))
    time.sleep(2)
    print(f"console: {args.loaded}'s page draws {charts_with_data(driver)} charts, {bars(driver)} recent batches in its histogram")
    shot("queue.png")

    if args.job:
        driver.get(args.url + "#/job/" + args.job)
        wait.until(lambda d: "completed" in (text(d, "#job-title") or ""))
        click(driver, 'button[data-action="download"]')
        path = os.path.join(downloads, f"{args.job}.jsonl")
        WebDriverWait(driver, 30).until(lambda d: os.path.exists(path) and not os.path.exists(path + ".crdownload"))
        with open(path) as f:
            lines = sum(1 for _ in f)
        assert lines == args.job_items, f"{lines} result lines, expected {args.job_items}"
        print(f"console: job {args.job}'s page downloaded its {lines} results")
        shot("job.png")


try:
    if args.token:
        token_check()
        shot("token.png")
    else:
        overview_check()
finally:
    driver.quit()
sys.exit(0)
