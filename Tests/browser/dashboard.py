#!/usr/bin/env python3
"""Drives Debian's headless Chromium through the admin dashboard for DashboardTests.swift.

Opens the dashboard, is sent to the sign-in form, signs in with the admin token through the
form (so the session cookie is the browser's own), then reads what the page shows (the DOM, not
the HTML source), takes a desktop and a phone-sized screenshot and writes everything to
OUT/result.json. The Swift test makes the assertions.

Talks the DevTools protocol over --remote-debugging-pipe (NUL-separated JSON on fds 3 and 4):
Python's standard library only, no Playwright, no websocket package.

usage: dashboard.py --url http://127.0.0.1:PORT --token TOKEN --out DIR [--chromium PATH]
"""
import argparse, base64, json, os, select, shutil, subprocess, sys, tempfile, time

DEADLINE = time.monotonic() + 120

# What the page shows, read in the browser. Sections and cells are found by id and class
# (dashboard.mustache); amounts by <data value>, so the test compares exact nano-USD.
READ_PAGE = r"""(() => {
  const text = (el) => el ? el.textContent.trim() : null;
  const clients = (section) => [...document.querySelectorAll(section + ' tr[data-client]')].map(tr => ({
    attribute: tr.getAttribute('data-client'),
    name: tr.querySelector('td.name').textContent,
    spent: tr.querySelector('td.spent data').value,
    spentText: text(tr.querySelector('td.spent')),
    limit: tr.querySelector('td.limit data').value,
    meter: tr.querySelector('meter').getAttribute('value'),
    used: text(tr.querySelector('td.used .percent')),
    requests: text(tr.querySelector('td.requests')),
    refused: text(tr.querySelector('td.refused-count')),
    loopTrips: text(tr.querySelector('td.loop-trips')),
    downgrades: text(tr.querySelector('td.downgrades')),
    bars: tr.querySelectorAll('svg.chart rect').length,
    barTitles: [...tr.querySelectorAll('svg.chart rect > title')].map(t => t.textContent),
    chartLabel: tr.querySelector('svg.chart') ? tr.querySelector('svg.chart').getAttribute('aria-label') : null,
  }));
  const models = (section) => [...document.querySelectorAll(section + ' tr[data-model]')].map(tr => ({
    attribute: tr.getAttribute('data-model'), name: tr.querySelector('td.name').textContent, spent: tr.querySelector('data').value,
  }));
  return {
    path: location.pathname,
    title: document.title,
    refresh: (document.querySelector('meta[http-equiv="refresh"]') || {}).content || null,
    viewport: (document.querySelector('meta[name="viewport"]') || {}).content || null,
    today: clients('#today'), month: clients('#month'),
    modelsToday: models('#models-today'), modelsMonth: models('#models-month'),
    totals: { requests: text(document.getElementById('total-requests')), refused: text(document.getElementById('total-refused')),
              loopTrips: text(document.getElementById('total-loop-trips')), downgrades: text(document.getElementById('total-downgrades')) },
    alerts: [...document.querySelectorAll('#alerts tr.alert')].map(tr => [...tr.cells].map(td => td.textContent.trim())),
    scripts: document.scripts.length,
    injectedElements: document.querySelectorAll('td.name *, title *, [data-client] td.name b').length,
    xss: window.__xss === true,
  };
})()"""

READ_LAYOUT = r"""(() => ({
  innerWidth: window.innerWidth,
  scrollWidth: document.documentElement.scrollWidth,
  sections: [...document.querySelectorAll('main > section')].map(s => {
    const r = s.getBoundingClientRect(); return { id: s.id, left: Math.round(r.left), top: Math.round(r.top), width: Math.round(r.width) };
  }),
}))()"""


class Browser:
    def __init__(self, chromium, profile):
        to_browser_r, self.to_browser = os.pipe()
        self.from_browser, from_browser_w = os.pipe()

        def wire_fds():
            # Chromium reads commands on fd 3 and writes replies on fd 4. Move both ends above
            # 4 first, so the two dup2 calls cannot overwrite each other.
            a, b = os.dup(to_browser_r), os.dup(from_browser_w)
            a, b = os.dup2(a, 100), os.dup2(b, 101)
            os.dup2(100, 3)
            os.dup2(101, 4)

        args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
                "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"]
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        close_fds=False, preexec_fn=wire_fds)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.buffer, self.next_id, self.events, self.session = b"", 0, [], None

    def send(self, method, params=None, session=True):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.receive()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def receive(self):
        while b"\0" not in self.buffer:
            left = DEADLINE - time.monotonic()
            if left <= 0 or not select.select([self.from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the pipe: " + self.process.stderr.read().decode(errors="replace")[-2000:])
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def wait_for(self, event):
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == event:
                    del self.events[: i + 1]
                    return e
            self.events.append(self.receive())

    def open_tab(self):
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
        self.send("Page.enable")

    def load(self, action):
        """Runs `action` (a navigation, a form submit, a reload) and waits for the page's load event."""
        self.events.clear()
        action()
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def viewport(self, width, height, mobile):
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    def screenshot(self, path):
        """The whole page, not just the viewport."""
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.send("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    result = {}
    with tempfile.TemporaryDirectory(prefix="tollgate-chromium-") as profile:
        browser = Browser(args.chromium, profile)
        try:
            browser.open_tab()
            browser.viewport(1280, 900, False)
            browser.load(lambda: browser.send("Page.navigate", {"url": args.url + "/"}))
            result["firstPath"] = browser.evaluate("location.pathname")
            token = json.dumps(args.token)
            browser.load(lambda: browser.evaluate(
                f"document.querySelector('input[name=token]').value = {token}; document.querySelector('form').requestSubmit(); true"))
            result["page"] = browser.evaluate(READ_PAGE)
            result["desktop"] = browser.evaluate(READ_LAYOUT)
            result["screenshot"] = os.path.join(args.out, "dashboard.png")
            browser.screenshot(result["screenshot"])
            browser.viewport(390, 844, True)
            browser.load(lambda: browser.send("Page.reload"))
            result["phone"] = browser.evaluate(READ_LAYOUT)
            result["phoneScreenshot"] = os.path.join(args.out, "dashboard-phone.png")
            browser.screenshot(result["phoneScreenshot"])
        finally:
            browser.close()
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(os.path.join(args.out, "result.json"))


if __name__ == "__main__":
    try:
        main()
    except Exception as error:
        print(f"dashboard.py: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
