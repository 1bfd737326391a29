"""The console in a real browser (Debian's chromium, headless, driven by
Selenium through chromedriver): the overview lists the queues of the
default config, under load from `batchgate bench` the echo queue's
items/s and its chart change, and a job's progress bar reaches 100%.
Saves a screenshot.

    python check.py --url http://127.0.0.1:9464/ui/ --screenshot out.png
"""
import argparse
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)
parser.add_argument("--screenshot", required=True)
parser.add_argument("--queues", default="echo,sim")
parser.add_argument("--loaded", default="echo", help="a queue under load")
parser.add_argument("--job", help="a job whose bar must reach 100%%")
parser.add_argument("--token", help="the server's control token: check the page's changes instead")
args = parser.parse_args()

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 20)
def text(d, selector):
    """The text of the first element `selector` matches, read in the page in
    one step (the table is rebuilt every second, so an element found
    first and read after may be gone)."""
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


def token_check():
    """Changes from the page: refused without the token and with another
    (the page says why), done with it."""
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


try:
    if args.token:
        token_check()
        driver.save_screenshot(args.screenshot)
        sys.exit(0)
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
    points = driver.execute_script(
        "return document.querySelectorAll('.chart[data-queue=\"%s\"] canvas').length" % args.loaded
    )
    assert points >= 1
    print(f"console: queues {args.queues} listed with charts; {args.loaded} at {first:,.0f} then {second:,.0f} items/s")
    if args.job:
        done = f'tr[data-job="{args.job}"] td.progress[data-percent="100"]'
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, done))
        wait.until(lambda d: "completed" in (text(d, f'tr[data-job="{args.job}"]') or ""))
        print(f"console: job {args.job} shown at 100%, completed")
    driver.save_screenshot(args.screenshot)
finally:
    driver.quit()
sys.exit(0)
