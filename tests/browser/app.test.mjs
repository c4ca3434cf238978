// The web app end to end in Debian's Chromium (driven by playwright-core), against a fresh
// `ww dev`: sign up, home, weather and missions, a photo proof, a coupon claimed when a
// countdown a few seconds away reaches zero, the wallet, the board (with markup that must not
// run), chat between two browsers, and the dashboard's live counts falling while a scripted
// crowd claims. Every page is checked by axe-core; the first pages' JS+CSS weight is measured
// as the browser counts it. Screenshots go to tests/browser/artifacts/.
//
//   node tests/browser/app.test.mjs            (WW_BIN names the ww binary to start)

import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const artifacts = join(here, "artifacts");
mkdirSync(artifacts, { recursive: true });
const WW = process.env.WW_BIN || join(process.env.CARGO_TARGET_DIR || join(process.env.HOME, ".cache/weatherwise/target"), "debug/ww");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const PAGE_BUDGET = 100 * 1024;
const results = { pageWeights: {}, steps: [] };

let stepStarted = Date.now();
function step(name) {
  const now = Date.now();
  if (results.steps.length) results.steps[results.steps.length - 1].ms = now - stepStarted;
  stepStarted = now;
  results.steps.push({ name });
  console.log(`• ${name}`);
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function until(what, check, timeoutMs = 20_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

// ---- campaigns: one opening a few seconds from now, one open for the crowd ---------------------

function localParts(timeZone, date) {
  const f = new Intl.DateTimeFormat("en-CA", {
    timeZone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const p = Object.fromEntries(f.formatToParts(date).map((x) => [x.type, x.value]));
  return { day: `${p.year}-${p.month}-${p.day}`, time: `${p.hour}:${p.minute}:${p.second}`, hour: Number(p.hour) };
}

// A zone where the next two hours stay within today, so a window never crosses midnight.
const now = new Date();
const ZONE = ["UTC", "Asia/Seoul", "America/New_York", "Pacific/Auckland"].find((z) => {
  const h = localParts(z, now).hour;
  return h >= 1 && h <= 20;
});
const OPENS_IN_S = 40;
const flashOpen = localParts(ZONE, new Date(now.getTime() + OPENS_IN_S * 1000));
const crowdOpen = localParts(ZONE, new Date(now.getTime() - 60_000));
const close = localParts(ZONE, new Date(now.getTime() + 2 * 3600_000));
const CROWD_QUANTITY = 40;
const CROWD = 18;

const campaign = (name, display, opens, quantity, mission) => `apiVersion: weatherwise.io/v1alpha1
kind: CouponCampaign
metadata:
  name: ${name}
spec:
  displayName: ${display}
  coupon:
    title: ${display} coupon
    benefit: One free umbrella rental
    validityDays: 3
  schedule:
    timeZone: ${ZONE}
    startDate: ${opens.day}
    endDate: ${close.day}
    opensAt: "${opens.time}"
    closesAt: "${close.time}"
  quota:
    dailyQuantity: ${quantity}
    perUser: 1
  eligibility:
    mission: ${mission}
`;

// ---- the vendored libraries are the npm packages' files -------------------------------------------

step("vendored front-end libraries equal their npm packages");
for (const [vendored, pkg] of [
  ["preact-htm.js", "htm/preact/standalone.module.js"],
  ["uPlot.iife.min.js", "uplot/dist/uPlot.iife.min.js"],
  ["uPlot.min.css", "uplot/dist/uPlot.min.css"],
]) {
  const a = readFileSync(join(root, "services/web/assets/vendor", vendored));
  const b = readFileSync(join(here, "node_modules", pkg));
  assert.ok(a.equals(b), `services/web/assets/vendor/${vendored} differs from node_modules/${pkg}`);
}

// ---- ww dev ------------------------------------------------------------------------------------

const data = mkdtempSync(join(tmpdir(), "ww-browser-"));
const campaigns = join(data, "campaigns");
mkdirSync(campaigns);
writeFileSync(join(campaigns, "flash.yaml"), campaign("flash-pass", "Flash umbrella pass", flashOpen, 100, "VerifiedSameDay"));
writeFileSync(join(campaigns, "crowd.yaml"), campaign("crowd-pass", "Crowd rain pass", crowdOpen, CROWD_QUANTITY, "None"));
const port = await freePort();
const BASE = `http://127.0.0.1:${port}`;
const wwEnv = {
  ...process.env,
  WW_CAMPAIGNS_DIR: campaigns,
  // One address (this machine) signs up a whole crowd here.
  WW_LOGIN_MAX_PER_ADDRESS: "100000",
  WW_ARGON2_MEMORY_KIB: "8192",
};
const logFile = join(data, "ww.log");
const ww = spawn(WW, ["dev", "--listen", `127.0.0.1:${port}`, "--data-dir", data, "--log-format", "json"], {
  env: wwEnv,
  stdio: ["ignore", "pipe", "pipe"],
});
let wwLog = "";
ww.stdout.on("data", (d) => { wwLog += d; });
ww.stderr.on("data", (d) => { wwLog += d; });
let browser;
let failed = false;

async function http(path, { method = "GET", body, token, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h["content-type"] = "application/json";
  const r = await fetch(BASE + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: text ? JSON.parse(text) : null };
}

async function account(name) {
  const email = `${name}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
  const password = "rainy-day-umbrella-42";
  const s = await http("/api/auth/signup", { method: "POST", body: { email, password, nickname: name } });
  assert.equal(s.status, 201, JSON.stringify(s.body));
  const l = await http("/api/auth/login", { method: "POST", body: { email, password } });
  assert.equal(l.status, 200, JSON.stringify(l.body));
  return { email, password, token: l.body.accessToken };
}

const axeSource = readFileSync(join(here, "node_modules/axe-core/axe.min.js"), "utf8");
async function accessible(page, name) {
  // evaluate() runs through the DevTools protocol: the page's CSP stays in force for the page.
  await page.evaluate(axeSource);
  const report = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const violations = report.violations.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
  assert.deepEqual(violations, [], `axe-core on ${name}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
];
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, isMobile: true, hasTouch: true };

try {
  await until("ww dev ready", async () => (await fetch(`${BASE}/readyz`)).ok, 60_000);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });

  // ---- page weight, as the browser counts it (compressed bytes on the wire) ---------------------
  step("first pages weigh at most 100 KB of JS+CSS");
  for (const path of ["/", "/dashboard"]) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const responses = [];
    page.on("response", (r) => responses.push(r));
    await page.goto(BASE + path, { waitUntil: "networkidle" });
    let bytes = 0;
    const files = [];
    for (const r of responses) {
      const type = r.request().resourceType();
      if (type !== "script" && type !== "stylesheet") continue;
      const sizes = await r.request().sizes();
      bytes += sizes.responseBodySize;
      files.push(`${new URL(r.url()).pathname} ${sizes.responseBodySize} B ${r.headers()["content-encoding"] || "identity"}`);
    }
    results.pageWeights[path] = { bytes, files };
    console.log(`  ${path}: ${(bytes / 1024).toFixed(1)} KB of JS+CSS (${files.length} files)`);
    assert.ok(bytes > 0 && bytes <= PAGE_BUDGET, `${path} loads ${bytes} bytes of JS+CSS`);
    const main = responses.find((r) => new URL(r.url()).pathname === path);
    const csp = main.headers()["content-security-policy"] || "";
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    await ctx.close();
  }

  // ---- minji: sign up, home, weather, missions, a photo proof ----------------------------------
  step("sign up in the browser, set home, see weather and missions");
  const minjiContext = await browser.newContext({ ...PHONE, locale: "en-GB" });
  const cspViolations = [];
  const page = await minjiContext.newPage();
  page.on("console", (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
  await page.goto(BASE + "/");
  await page.getByRole("heading", { name: "Log in", exact: true }).waitFor();
  await accessible(page, "sign-in");
  await shot(page, "01-sign-in");
  await page.getByRole("button", { name: "Create an account" }).click();
  const minji = { email: `minji-${Date.now()}@example.com`, password: "rainy-day-umbrella-42" };
  await page.getByLabel("Email").fill(minji.email);
  await page.getByLabel("Password").fill(minji.password);
  await page.getByLabel("Nickname").fill("minji");
  await page.getByRole("button", { name: "Sign up" }).click();
  await page.getByRole("heading", { name: "Where is home?", exact: true }).waitFor({ timeout: 20_000 });
  await page.getByLabel("Latitude").fill("37.5665");
  await page.getByLabel("Longitude").fill("126.978");
  await page.getByRole("button", { name: "Save home" }).click();
  await page.getByRole("heading", { name: "Weather", exact: true }).waitFor();
  await page.locator(".weather .big").waitFor();
  await page.locator(".mission").first().waitFor();
  assert.match(await page.locator(".weather .big").innerText(), /°C/);

  // The tokens: the refresh token is out of the page's reach, nothing is in storage.
  const exposed = await page.evaluate(() => ({ cookie: document.cookie, storage: localStorage.length + sessionStorage.length }));
  assert.doesNotMatch(exposed.cookie, /ww-refresh/, "the refresh cookie is HttpOnly");
  assert.match(exposed.cookie, /__Host-ww-csrf=/, "the CSRF cookie is readable by the page");
  assert.equal(exposed.storage, 0, "no token in web storage");
  const cookies = await minjiContext.cookies();
  const refreshCookie = cookies.find((c) => c.name === "__Host-ww-refresh");
  assert.ok(refreshCookie && refreshCookie.httpOnly && refreshCookie.secure && refreshCookie.sameSite === "Strict", JSON.stringify(cookies));
  assert.equal(refreshCookie.path, "/");

  step("verify a mission with a photo from the device");
  const photo = await page.screenshot({ type: "jpeg", quality: 60, clip: { x: 0, y: 0, width: 320, height: 240 } });
  let verified = false;
  for (const title of await page.locator(".mission.open h3").allInnerTexts()) {
    const m = page.locator(".mission").filter({ has: page.getByRole("heading", { name: title, exact: true }) });
    await m.getByRole("button", { name: "Do it" }).click();
    if ((await m.getByLabel("Photo").count()) === 0) continue;
    await m.getByLabel("Photo").setInputFiles({ name: "sky.jpg", mimeType: "image/jpeg", buffer: photo });
    await m.getByRole("img", { name: "The photo you picked" }).waitFor();
    if (await m.getByLabel("What did you do?").count()) await m.getByLabel("What did you do?").fill("Looked up <b>at the sky</b>");
    await m.getByRole("button", { name: "Send proof" }).click();
    await page.getByText(/Mission done|Proof sent/).waitFor({ timeout: 20_000 });
    verified = /Mission done/.test(await page.locator(".note").innerText());
    // The badge follows the refreshed list of today's missions: waited for, not read at once.
    await m.locator(".badge", { hasText: "Done" }).waitFor({ timeout: 10_000 });
    break;
  }
  assert.ok(verified, "a photo mission was accepted at once");
  await accessible(page, "today");
  await shot(page, "02-today");

  step("a reload keeps the session (refresh cookie + CSRF header), no token kept in the page");
  await page.reload();
  await page.getByRole("heading", { name: "Weather", exact: true }).waitFor();

  // ---- the coupon opening a few seconds away ---------------------------------------------------
  step(`claim the coupon opening ${OPENS_IN_S} s after start, when its countdown reaches zero`);
  await page.goto(BASE + "/#/coupons");
  const flash = page.locator(".campaign").filter({ hasText: "Flash umbrella pass" });
  await flash.waitFor();
  const countdownText = await flash.getByTestId("countdown").innerText();
  assert.match(countdownText, /^in \d+ s$/, `countdown before the opening: ${countdownText}`);
  const claim = flash.getByRole("button", { name: /Claim coupon|Opens/ });
  assert.ok(await claim.isDisabled(), "the claim button waits for the opening");
  await accessible(page, "coupons");
  await shot(page, "03-coupons-countdown");
  await flash.getByRole("button", { name: "Claim coupon" }).waitFor({ timeout: (OPENS_IN_S + 20) * 1000 });
  await until("the claim button enabled", () => flash.getByRole("button", { name: "Claim coupon" }).isEnabled(), 5_000);
  await flash.getByRole("button", { name: "Claim coupon" }).click();
  await flash.getByText(/It's yours|You already have/).waitFor({ timeout: 30_000 });
  const code = await flash.locator(".code").innerText();
  assert.match(code, /^[0-9A-Z-]{10,}$/);
  await shot(page, "04-coupon-claimed");

  step("the coupon is in the wallet and can be redeemed");
  await page.goto(BASE + "/#/wallet");
  await page.getByText(code).waitFor({ timeout: 20_000 });
  await accessible(page, "wallet");
  await shot(page, "05-wallet");
  await page.getByRole("button", { name: /Redeem Flash umbrella pass/ }).click();
  await page.getByText(/Redeemed Flash umbrella pass/).waitFor();

  // ---- the board, with markup that must stay text --------------------------------------------
  step("post on the board: markup and scripts in user content are shown as text and never run");
  await page.goto(BASE + "/#/board");
  const evilTitle = `우산 <script>window.__pwned = 1</script><b>bold</b>`;
  const evilBody = `<img src=x onerror="window.__pwned = 2"> <a href="javascript:window.__pwned=3">click</a>`;
  await page.getByLabel("Title").fill(evilTitle);
  await page.getByLabel("Text").fill(evilBody);
  await page.getByRole("button", { name: "Post", exact: true }).click();
  const post = page.locator(".post").filter({ hasText: "window.__pwned = 1" }).first();
  await post.waitFor({ timeout: 20_000 });
  assert.equal(await post.locator("h2").innerText(), evilTitle);
  assert.equal(await post.locator("script, img, b, a[href^='javascript']").count(), 0, "no element from user content");
  assert.equal(await page.evaluate(() => window.__pwned), undefined, "nothing from user content ran");
  await page.getByLabel("Search posts").fill("우산");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText("Posts with “우산”").waitFor();
  await post.waitFor();
  await accessible(page, "board");
  await shot(page, "06-board");

  // ---- chat between two browsers ---------------------------------------------------------------
  step("chat: two browser contexts exchange messages live; your own are acknowledged");
  const room = `lobby-${Date.now() % 100000}`;
  await page.goto(BASE + "/#/chat");
  await page.getByLabel("Room name").fill(room);
  await page.getByRole("button", { name: "Open room" }).click();
  await page.getByText("connected").waitFor({ timeout: 20_000 });

  const friend = await account("jisoo");
  const friendContext = await browser.newContext({ ...PHONE });
  const friendPage = await friendContext.newPage();
  await friendPage.goto(BASE + "/");
  await friendPage.getByLabel("Email").fill(friend.email);
  await friendPage.getByLabel("Password").fill(friend.password);
  await friendPage.getByRole("button", { name: "Log in" }).click();
  await friendPage.getByRole("link", { name: "Chat" }).waitFor();
  await friendPage.goto(`${BASE}/#/chat/${room}`);
  await friendPage.getByText("connected").waitFor({ timeout: 20_000 });

  await page.getByRole("textbox", { name: "Message" }).fill("비 와요 — bring an umbrella <i>now</i>");
  await page.getByRole("button", { name: "Send" }).click();
  await friendPage.locator(".messages li").filter({ hasText: "bring an umbrella <i>now</i>" }).waitFor({ timeout: 15_000 });
  await until("minji's message acknowledged", async () => (await page.locator(".messages li.pending").count()) === 0, 15_000);
  await friendPage.getByRole("textbox", { name: "Message" }).fill("Got it, thanks!");
  await friendPage.getByRole("button", { name: "Send" }).click();
  await page.locator(".messages li").filter({ hasText: "Got it, thanks!" }).waitFor({ timeout: 15_000 });
  assert.equal(await friendPage.locator(".messages i").count(), 0, "chat markup is text");

  step("chat: history is there after a reload, and a dropped connection resumes");
  await friendPage.reload();
  await friendPage.locator(".messages li").filter({ hasText: "bring an umbrella" }).waitFor({ timeout: 15_000 });
  await friendPage.getByText("connected").waitFor({ timeout: 20_000 });
  // Cut the friend's network, talk meanwhile, and restore it: the page reconnects and resumes.
  await friendContext.setOffline(true);
  await page.getByRole("textbox", { name: "Message" }).fill("Are you still there?");
  await page.getByRole("button", { name: "Send" }).click();
  await new Promise((r) => setTimeout(r, 1500));
  await friendContext.setOffline(false);
  await friendPage.locator(".messages li").filter({ hasText: "Are you still there?" }).waitFor({ timeout: 30_000 });
  await accessible(page, "chat");
  await shot(page, "07-chat");
  await shot(friendPage, "07-chat-friend");
  await friendContext.close();

  assert.deepEqual(cspViolations, [], "no Content-Security-Policy violation on the app's pages");

  // ---- the dashboard, while a crowd claims -----------------------------------------------------
  step("dashboard: a marketer sees the count fall live while a scripted crowd claims");
  const marketer = await account("marketer");
  execFileSync(WW, ["admin", "grant-role", marketer.email, "marketing"], { env: { ...wwEnv, WW_DATABASE_URL: `sqlite://${data}` } });
  const dashContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const dash = await dashContext.newPage();
  dash.on("console", (m) => { if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text()); });
  await dash.goto(BASE + "/dashboard");
  await dash.getByLabel("Email").fill(marketer.email);
  await dash.getByLabel("Password").fill(marketer.password);
  await dash.getByRole("button", { name: "Log in" }).click();
  await dash.getByRole("heading", { name: "Campaigns", exact: true }).waitFor({ timeout: 20_000 });
  const row = dash.locator("tr[data-campaign='crowd-pass']");
  await row.waitFor();
  await dash.getByText("Live: counts arrive every second.").waitFor({ timeout: 20_000 });
  await row.getByRole("button", { name: /Chart/ }).click();

  const crowd = [];
  for (let i = 0; i < CROWD; i++) crowd.push(await account(`crowd${i}`));
  const seen = [];
  const watcher = (async () => {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const text = (await row.getByTestId("left").innerText()).trim();
      if (/^\d+$/.test(text) && seen[seen.length - 1] !== Number(text)) seen.push(Number(text));
      if (Number(text) === CROWD_QUANTITY - CROWD) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  let issued = 0;
  let sawRate = false;
  for (const [i, person] of crowd.entries()) {
    const r = await http("/api/campaigns/crowd-pass/issue", { method: "POST", token: person.token, headers: { "idempotency-key": `crowd-${i}` } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    issued += 1;
    if (i === Math.floor(CROWD / 2)) {
      await dash.waitForTimeout(1200);
      sawRate = Number(await dash.getByTestId("rate").innerText()) > 0;
      await shot(dash, "08-dashboard-live");
    }
    await new Promise((r) => setTimeout(r, 350));
  }
  await watcher;
  console.log(`  'left today' as the dashboard showed it: ${seen.join(" → ")}`);
  assert.equal(seen[seen.length - 1], CROWD_QUANTITY - issued, "the dashboard ends at what is left");
  assert.ok(seen.length >= 4, `the count fell live, in steps (${seen.join(", ")})`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i] < seen[i - 1], `never up: ${seen.join(", ")}`);
  assert.ok(sawRate, "the rate chart showed issuance during the crowd");
  await accessible(dash, "dashboard");

  step("dashboard: a campaign's YAML is checked and previewed");
  const sample = readFileSync(join(root, "config/samples/coupon-campaign-full.yaml"), "utf8");
  await dash.getByLabel("CouponCampaign YAML").fill(sample);
  await dash.getByRole("button", { name: "Check and preview" }).click();
  await dash.getByTestId("check-result").filter({ hasText: "No problems" }).waitFor();
  await shot(dash, "09-dashboard-preview");
  await dash.getByLabel("CouponCampaign YAML").fill(sample.replace("dailyQuantity: 500", "dailyQuantity: 0"));
  await dash.getByRole("button", { name: "Check and preview" }).click();
  await dash.getByTestId("check-result").filter({ hasText: "problem" }).waitFor();
  assert.match(await dash.locator(".problems").innerText(), /spec\.quota\.dailyQuantity/);
  await accessible(dash, "dashboard-editor");
  assert.deepEqual(cspViolations, [], "no Content-Security-Policy violation on the dashboard");

  step("done");
} catch (e) {
  failed = true;
  console.error(`\nbrowser test failed: ${e.stack || e}`);
  try {
    for (const ctx of browser?.contexts() || []) for (const p of ctx.pages()) await p.screenshot({ path: join(artifacts, `failure-${Date.now()}.png`), fullPage: true });
  } catch { /* the browser may be gone */ }
  console.error("--- ww dev log (last 40 lines) ---");
  console.error(wwLog.split("\n").slice(-40).join("\n"));
} finally {
  writeFileSync(join(artifacts, "results.json"), JSON.stringify(results, null, 2));
  await browser?.close();
  ww.kill("SIGTERM");
  await new Promise((r) => (ww.exitCode !== null ? r() : ww.once("exit", r)));
  rmSync(data, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
