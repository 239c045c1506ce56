// The served page: loads at `/` and at a deep link without browser errors, carries the
// Content-Security-Policy, and the policy really blocks inline script.
import { test } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, newPerson, shot, startServer } from "./harness";

const CSP =
  "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
  "img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; font-src 'self'; " +
  "manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

test("the client page loads at / and at a deep link, under a live CSP", async () => {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const person = await newPerson(browser);
    const { page } = person;
    for (const path of ["/", "/rooms/some-room/deep/link?x=1"]) {
      const response = await page.goto(server.url + path, { waitUntil: "load" });
      assert.ok(response, `no response for ${path}`);
      assert.equal(response.status(), 200, path);
      const headers = response.headers();
      assert.equal(headers["content-security-policy"], CSP, path);
      assert.equal(headers["x-content-type-options"], "nosniff", path);
      assert.equal(headers["x-frame-options"], "DENY", path);
      assert.equal(await page.title(), "Sotto", path);
      // The bundle ran: the root component rendered something into #app.
      await page.waitForFunction(() => (document.getElementById("app")?.childElementCount ?? 0) > 0);
    }
    await shot(page, "served-deep-link");

    // An inline script is refused by the policy: it does not run, and the browser says so.
    await assert.rejects(
      page.addScriptTag({ content: "window.__inlineRan = true;" }),
      /Content Security Policy/,
    );
    assert.equal(await page.evaluate(() => (window as { __inlineRan?: boolean }).__inlineRan), undefined);
    await page.waitForTimeout(100);
    const errors = person.takeErrors();
    assert.ok(
      errors.some((e) => /Content Security Policy/i.test(e)),
      `expected a CSP violation, got: ${JSON.stringify(errors)}`,
    );
  } finally {
    await browser.close();
    await server.stop();
  }
});
