// Drives the dashboard (/admin/ui/) in Debian's Chromium for DashboardTests.cs. One scenario per run:
//   node dashboard.mjs <scenario> '<json options>'
// It does what a person would do on the page and prints one JSON line of what it saw; the C# test checks
// that against what it knows (the connections it opened, the gateway's metrics and logs). Console errors,
// page errors and Content-Security-Policy violations are always reported. Exit 1 with a message on failure.
import { chromium } from "playwright-core";

const [scenario, json] = process.argv.slice(2);
const options = JSON.parse(json ?? "{}");
// Chromium logs every 401 answer as a console error; the key prompt is built on them, so they are counted apart.
const seen = { consoleErrors: [], unauthorizedLoads: 0, violations: [] };
const timeout = 15_000;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  timeout: 60_000,
});

try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(timeout);
  page.on("console", (message) => {
    if (message.type() === "error" && message.text().includes("status of 401")) {
      seen.unauthorizedLoads++;
    } else if (message.type() === "error") {
      seen.consoleErrors.push(message.text());
    }
  });
  page.on("pageerror", (error) => seen.consoleErrors.push(String(error)));
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });

  await page.goto(`${options.url}/admin/ui`);
  seen.url = page.url();
  if (options.key) {
    await enterKey(page);
  }

  await ({ close, browse, markup }[scenario])(page);
  seen.violations = await page.evaluate(() => window.__violations);
  console.log(JSON.stringify({ ok: true, ...seen }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: String(error?.stack ?? error), ...seen }));
  process.exitCode = 1;
} finally {
  await browser.close();
}

async function enterKey(page) {
  const dialog = page.locator("#key-dialog");
  await dialog.waitFor({ state: "visible" });
  if (options.wrongKey) {
    await page.fill("#key-input", options.wrongKey);
    await page.click("#key-submit");
    await page.locator("#key-error").waitFor({ state: "visible" });
    seen.refusedKeyShown = true;
  }

  await page.fill("#key-input", options.key);
  await page.click("#key-submit");
  await dialog.waitFor({ state: "hidden" });
}

function rowOf(page, remote) {
  return page.locator("#connections tbody tr", { has: page.locator("td.remote", { hasText: remote }) });
}

// How many chart canvases have something drawn on them.
async function paintedCharts(page) {
  return page.evaluate(() => [...document.querySelectorAll(".chart canvas")].filter((canvas) => {
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < pixels.length; i += 4) {
      if (pixels[i] !== 0) {
        return true;
      }
    }
    return false;
  }).length);
}

// Sees the connection's row appear, closes it with a reason, sees it leave.
async function close(page) {
  const row = rowOf(page, options.remote);
  await row.waitFor({ state: "visible" });
  seen.row = await row.locator("td").allTextContents();
  await page.waitForFunction(() => document.querySelectorAll(".chart canvas").length === 3);
  seen.paintedCharts = await paintedCharts(page);
  seen.listeners = await page.locator("#listeners tbody tr").allInnerTexts();
  seen.workersShown = await page.locator("#workers-section").isVisible();
  seen.workers = seen.workersShown ? await page.locator("#workers tbody tr").allInnerTexts() : [];
  await page.screenshot({ path: `${options.screenshots}/dashboard.png`, fullPage: true });

  await row.locator("button.close").click();
  await page.locator("#close-dialog").waitFor({ state: "visible" });
  seen.dialogText = await page.locator("#close-dialog").innerText();
  await page.fill("#close-reason", options.reason);
  await page.screenshot({ path: `${options.screenshots}/close-dialog.png` });
  await page.click("#close-confirm");
  await page.locator("#close-dialog").waitFor({ state: "hidden" });
  await row.waitFor({ state: "detached" });
  seen.rowGone = true;
  seen.sessionKey = await page.evaluate(() => sessionStorage.getItem("gateway.adminKey"));
  await page.screenshot({ path: `${options.screenshots}/after-close.png`, fullPage: true });

  if (options.key) {
    // Kept for the tab: a reload asks no more.
    await page.reload();
    await page.locator("#listeners tbody tr").first().waitFor({ state: "visible" });
    seen.keyDialogAfterReload = await page.locator("#key-dialog").isVisible();
  }
}

// Pages, filters and sorts the connection table, reporting what each step shows.
async function browse(page) {
  const info = page.locator("#page-info");
  const rows = page.locator("#connections tbody tr[data-id]");
  const waitForInfo = (text) => page.waitForFunction(
    (expected) => document.getElementById("page-info").textContent === expected, text);
  const remotes = () => page.locator("#connections tbody td.remote").allTextContents();
  const protocols = () => page.locator("#connections tbody tr[data-id] td:nth-child(2)").allTextContents();

  await page.selectOption("#page-size", "25");
  await waitForInfo(`1–25 of ${options.total}`);
  seen.firstPage = { info: await info.textContent(), rows: await rows.count(), previousDisabled: await page.isDisabled("#page-previous") };
  await page.click("#page-next");
  await waitForInfo(`26–${options.total} of ${options.total}`);
  seen.secondPage = { info: await info.textContent(), rows: await rows.count(), nextDisabled: await page.isDisabled("#page-next") };

  await page.selectOption("#filter-protocol", "rpc");
  await waitForInfo(`1–${options.rpc} of ${options.rpc}`);
  seen.rpcOnly = { info: await info.textContent(), protocols: await protocols() };
  await page.selectOption("#filter-protocol", "");
  // The unfiltered page first: the RPC-only page may read the same "1–5 of 5" as the remote filter's.
  await waitForInfo(`1–25 of ${options.total}`);

  await page.fill("#filter-remote", options.remotePrefix);
  await waitForInfo(`1–${options.fromPrefix} of ${options.fromPrefix}`);
  seen.byRemote = { info: await info.textContent(), remotes: await remotes() };
  await page.fill("#filter-remote", "");
  await waitForInfo(`1–25 of ${options.total}`);

  const remoteHeader = page.locator('th[data-sort="remote"]');
  await remoteHeader.locator("button").click();
  await page.waitForFunction(() => document.querySelector('th[data-sort="remote"]').getAttribute("aria-sort") === "ascending");
  seen.ascending = { ariaSort: await remoteHeader.getAttribute("aria-sort"), remotes: await remotes() };
  await remoteHeader.locator("button").click();
  await page.waitForFunction(() => document.querySelector('th[data-sort="remote"]').getAttribute("aria-sort") === "descending");
  await page.waitForFunction(
    (prefix) => document.querySelector("#connections tbody td.remote")?.textContent.startsWith(prefix), options.remotePrefix);
  seen.descending = { ariaSort: await remoteHeader.getAttribute("aria-sort"), remotes: await remotes() };

  // The RPC chart has latency points once the client's pings are in a sample.
  await page.waitForFunction(() => document.querySelectorAll(".chart canvas").length === 3);
  seen.paintedCharts = await paintedCharts(page);
  seen.rpcLegend = await page.locator("#chart-rpc .u-legend").innerText();
  seen.details = await page.locator("#connections tbody td.details").allTextContents();
  await page.screenshot({ path: `${options.screenshots}/browse.png`, fullPage: true });
}

// A client-chosen name with markup in it (an FTP directory) is shown as text: nothing of it runs or renders.
async function markup(page) {
  const cell = page.locator("#connections tbody td.details", { hasText: options.expect });
  await cell.waitFor({ state: "visible" });
  await page.waitForTimeout(2 * 2000); // two more refreshes
  seen.details = await cell.textContent();
  seen.injectedElements = await page.locator("#connections tbody :is(img, svg, b, script)").count();
  seen.injectedScriptRan = await page.evaluate(() => window.__xss === 1);
  await page.screenshot({ path: `${options.screenshots}/markup.png`, fullPage: true });
}
