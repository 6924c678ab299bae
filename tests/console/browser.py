"""The operations console in a real headless Chromium, driven over WebDriver (selenium), one
phase per run: tests/console.rs starts the gateway and the EHR stand-in, prepares what each
phase needs, and runs this script with the phase's name. Screenshots go to SCREENSHOTS.

Environment: CONSOLE (the console's base URL), PASSWORD_ALICE (operator), PASSWORD_PAT (privacy
officer), PASSWORD_VIC (viewer), GOAL (the clinic id of the goal that cannot be sent),
REFERRAL (a received referral's id), PATIENT (a patient id with disclosures), SCREENSHOTS.

Exits non-zero with a message on the first expectation that does not hold.
"""

import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

CONSOLE = os.environ["CONSOLE"].rstrip("/")
SHOTS = os.environ["SCREENSHOTS"]


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1360,900"):
        options.add_argument(arg)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    return driver


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def wait_for(what, check, seconds=60.0, every=0.2):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            value = check()
        except StaleElementReferenceException:
            # A live part was refreshed under us: look again.
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"waited {seconds:.0f} s for {what}")


def shot(driver, name):
    os.makedirs(SHOTS, exist_ok=True)
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def sign_in(driver, name, password):
    driver.get(CONSOLE + "/sign-in")
    driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form.sign-in button").click()
    wait_for("the overview after signing in", lambda: driver.title.startswith("Overview"), 15)


def texts(driver, selector):
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)]


def phase_sign_in(driver):
    """A wrong password is refused; a viewer sees no buttons that act."""
    driver.get(CONSOLE + "/")
    expect("/sign-in" in driver.current_url, f"an anonymous visit goes to sign-in: {driver.current_url}")
    shot(driver, "sign-in")
    driver.find_element(By.NAME, "name").send_keys("alice")
    driver.find_element(By.NAME, "password").send_keys("not-her-password")
    driver.find_element(By.CSS_SELECTOR, "form.sign-in button").click()
    problem = wait_for("the refusal", lambda: texts(driver, ".problem"), 10)
    expect("Wrong name or password" in problem[0], f"refused with a reason: {problem}")
    expect("/sign-in" in driver.current_url, "still at sign-in")

    sign_in(driver, "vic", os.environ["PASSWORD_VIC"])
    driver.get(CONSOLE + "/dead-letters")
    expect(not driver.find_elements(By.CSS_SELECTOR, "form[action='/dead-letters/retry']"),
           "a viewer gets no retry button")
    rows = driver.find_elements(By.CSS_SELECTOR, "tr.letter")
    expect(rows, "the viewer sees the dead letters")
    expect(not driver.find_elements(By.CSS_SELECTOR, "ul.issues li") or
           all(":" not in li.text.split(" at ")[-1] for li in driver.find_elements(By.CSS_SELECTOR, "ul.issues li")),
           "a viewer sees no diagnostics")
    driver.get(CONSOLE + "/referrals/" + os.environ["REFERRAL"])
    expect(not driver.find_elements(By.CSS_SELECTOR, "button[value='accept']"), "a viewer gets no accept button")
    expect(not [a for a in driver.find_elements(By.CSS_SELECTOR, "header nav a") if a.text == "Audit"],
           "a viewer has no audit page")
    driver.get(CONSOLE + "/audit")
    expect("403" in driver.find_element(By.TAG_NAME, "h1").text, "the audit page refuses a viewer")


def phase_push(driver):
    """An operator pushes to the target from its page and watches it run to its end."""
    sign_in(driver, "alice", os.environ["PASSWORD_ALICE"])
    driver.find_element(By.LINK_TEXT, "ehr").click()
    driver.find_element(By.CSS_SELECTOR, "button[value='push']").click()
    wait_for("the push to start", lambda: "push started" in driver.page_source, 10)
    # The run's row updates itself (live.js) while the run goes on.
    # Seen running with resources already sent (the counts so far, refreshed every second).
    def running():
        for row in driver.find_elements(By.CSS_SELECTOR, "tr.run[data-state='running']"):
            progress = row.find_element(By.CSS_SELECTOR, "td.progress").text
            sent = row.find_element(By.CSS_SELECTOR, "td.sent").text
            if " of " in progress and sent not in ("", "—", "0"):
                return progress
        return None
    progress = wait_for("the running push with its progress", running, 60, 0.1)
    shot(driver, "target-push-running")
    print("progress seen:", progress)

    def finished():
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.run[data-state='finished']")
        if not rows:
            return None
        return (rows[0].find_element(By.CSS_SELECTOR, "td.rejected").text,
                rows[0].find_element(By.CSS_SELECTOR, "td.sent").text)
    rejected, sent = wait_for("the push to end", finished, 300, 0.5)
    # The goal, and the plans that hold it, cannot be sent.
    expect(int(rejected) >= 1, f"the unreadable goal is rejected: {rejected}")
    expect(int(sent) > 100, f"the rest was sent: {sent}")
    shot(driver, "target-push-finished")

    driver.get(CONSOLE + "/dead-letters")
    goal = "Goal/" + os.environ["GOAL"]
    row = driver.find_elements(By.CSS_SELECTOR, f"tr.letter[data-resource='{goal}']")
    expect(row, f"{goal} is a dead letter")
    expect("cannot read" in row[0].text, f"and says why: {row[0].text}")
    shot(driver, "dead-letters")


def phase_retry(driver):
    """The goal was fixed at the clinic: retrying its letter sends it; then a referral is accepted."""
    sign_in(driver, "alice", os.environ["PASSWORD_ALICE"])
    driver.get(CONSOLE + "/dead-letters")
    goal = "Goal/" + os.environ["GOAL"]
    row = driver.find_element(By.CSS_SELECTOR, f"tr.letter[data-resource='{goal}']")
    row.find_element(By.CSS_SELECTOR, "form[action='/dead-letters/retry'] button").click()
    wait_for("the retry to start", lambda: "retry started" in driver.page_source, 10)
    wait_for("the retry run to end",
             lambda: len(driver.find_elements(By.CSS_SELECTOR, "tbody tr.run")) >= 2 and
             driver.find_elements(By.CSS_SELECTOR, "tbody tr.run")[0].get_attribute("data-state") == "finished",
             120, 0.5)
    driver.get(CONSOLE + "/dead-letters")
    expect(not driver.find_elements(By.CSS_SELECTOR, f"tr.letter[data-resource='{goal}']"),
           "the letter is gone once the goal went")
    # The plans that hold the goal wait too (they have no new version): retry all of them.
    if driver.find_elements(By.CSS_SELECTOR, "tr.letter"):
        driver.get(CONSOLE + "/dead-letters?target=ehr")
        driver.find_element(By.CSS_SELECTOR, "form.actions button").click()
        wait_for("the retry of all to end",
                 lambda: len(driver.find_elements(By.CSS_SELECTOR, "tbody tr.run")) >= 3 and
                 driver.find_elements(By.CSS_SELECTOR, "tbody tr.run")[0].get_attribute("data-state") == "finished",
                 120, 0.5)
        driver.get(CONSOLE + "/dead-letters")
    expect(not driver.find_elements(By.CSS_SELECTOR, "tr.letter"), "no dead letters are left")

    driver.get(CONSOLE + "/referrals")
    shot(driver, "referrals")
    driver.find_element(By.LINK_TEXT, os.environ["REFERRAL"]).click()
    shot(driver, "referral")
    driver.find_element(By.CSS_SELECTOR, "button[value='accept']").click()
    wait_for("the referral accepted", lambda: "referral accepted" in driver.page_source, 10)
    driver.get(CONSOLE + "/referrals/" + os.environ["REFERRAL"])
    expect(driver.find_element(By.ID, "status").text == "accepted", "its status says accepted")
    driver.get(CONSOLE + "/clients")
    shot(driver, "clients-and-targets")
    driver.get(CONSOLE + "/targets/ehr/capabilities")
    patient = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "table.capabilities tbody tr")
               if r.text.startswith("Patient")]
    expect(patient and "yes" in patient[0], f"the target's statement lists Patient: {patient}")
    shot(driver, "target-capabilities")
    driver.get(CONSOLE + "/")
    shot(driver, "overview")


def phase_audit(driver):
    """A privacy officer finds the operator's actions and a patient's accounting."""
    sign_in(driver, "pat", os.environ["PASSWORD_PAT"])
    driver.find_element(By.LINK_TEXT, "Audit").click()
    driver.find_element(By.NAME, "agent").send_keys("operator:alice")
    driver.find_element(By.CSS_SELECTOR, "select[name='type'] option[value='console']").click()
    driver.find_element(By.CSS_SELECTOR, "form.search button").click()
    # The audit page lists records before the search too: wait for the search's own page, and read
    # the rows inside the wait so a row left over from the page before is looked for again.
    actions = wait_for("the operator's actions",
                       lambda: "agent=" in driver.current_url and
                       " ".join(r.text for r in driver.find_elements(By.CSS_SELECTOR, "tr.record[data-interaction='console']")),
                       10)
    for action in ("action=push", "action=retry-dead-letter", "action=accept-referral"):
        expect(action in actions, f"{action} is audited: {actions}")
    shot(driver, "audit")
    driver.get(CONSOLE + "/audit/accounting?patient=" + os.environ["PATIENT"])
    expect(driver.find_elements(By.CSS_SELECTOR, "table.accounting tbody tr"), "the accounting lists disclosures")
    shot(driver, "accounting")


PHASES = {"sign-in": phase_sign_in, "push": phase_push, "retry": phase_retry, "audit": phase_audit}

if __name__ == "__main__":
    driver = browser()
    try:
        PHASES[sys.argv[1]](driver)
    except Exception:
        shot(driver, "failed-" + sys.argv[1])
        raise
    finally:
        driver.quit()
    print("phase", sys.argv[1], "passed")
