"""The screenshots in docs/: the triage page routing one ticket, and a run's report, in Debian's headless chromium.

    python benchmarks/screenshots.py --model outputs/shots/model --run outputs/shots --output docs

Starts `ticket-classifier serve` on --model, routes the ticket below on the page, and opens <run>/reports/index.html.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

TICKET = ("Outlook keeps asking for my password", "Since this morning Outlook prompts for my password every few "
          "minutes and my shared mailbox does not sync. Webmail works. Thanks, Anna")


def main(argv=None) -> None:
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--output", default="docs")
    args = parser.parse_args(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "ticket_router.cli", "serve", "--model", args.model,
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1500"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        driver.get(f"http://127.0.0.1:{port}/")
        driver.find_element(By.ID, "subject").send_keys(TICKET[0])
        driver.find_element(By.ID, "description").send_keys(TICKET[1])
        driver.find_element(By.ID, "route-ticket").click()
        driver.find_element(By.ID, "decision")
        driver.save_screenshot(str(Path(args.output) / "triage_page.png"))
        driver.get((Path(args.run) / "reports" / "index.html").resolve().as_uri())
        driver.set_window_size(1100, 3000)
        driver.save_screenshot(str(Path(args.output) / "run_report.png"))
    finally:
        driver.quit()
        server.terminate()
    print(f"written: {Path(args.output) / 'triage_page.png'}, {Path(args.output) / 'run_report.png'}")


if __name__ == "__main__":
    main()
