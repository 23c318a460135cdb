// The operators' console driven in Debian's Chromium with playwright-core,
// as an operator would, while this script plays Meta: it posts signed
// webhooks (customer messages, a delivery receipt) to the engine. Called by
// tests/it/console.rs; prints one line per step; exits non-zero on the
// first failure. Screenshots go to $SHOTS.
import { createHmac } from "node:crypto";
import { join } from "node:path";
import { env, launch, shots, step } from "./common.mjs";

const engine = env("ENGINE");

async function meta(page, messaging) {
  const body = JSON.stringify({ object: "page", entry: [{ id: page, time: Date.now(), messaging }] });
  const sig = "sha256=" + createHmac("sha256", env("APP_SECRET")).update(body).digest("hex");
  const r = await fetch(`${engine}/webhooks/meta/main`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": sig },
    body,
  });
  if (r.status !== 200) throw new Error(`webhook answered ${r.status}`);
}
let seq = 0;
const says = (page, psid, text) => meta(page, [{
  sender: { id: psid }, recipient: { id: page }, timestamp: Date.now(),
  message: { mid: `console-${psid}-${++seq}`, text },
}]);
const delivered = (psid) => meta(env("PAGE"), [{
  sender: { id: psid }, recipient: { id: env("PAGE") }, timestamp: Date.now(),
  delivery: { watermark: Date.now() },
}]);
async function api(path, token) {
  const r = await fetch(`${engine}/api/v1${path}`, { headers: { authorization: `Bearer ${token}` } });
  return r.json();
}
const expect = (ok, what) => { if (!ok) throw new Error(what); };


const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log(`page error: ${e.message}`));
  await page.goto(`${engine}/console/`);

  // A wrong key is refused in words; the right one signs in, and the key
  // is in the tab's session, never in the address.
  await page.getByLabel("API key", { exact: true }).fill("sbk_wrong");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("That key is not accepted.").waitFor({ timeout: 10000 });
  await page.getByLabel("API key", { exact: true }).fill(env("TENANT_KEY"));
  await page.getByLabel("API key", { exact: true }).press("Enter");
  await page.getByRole("heading", { name: "Inbox" }).waitFor({ timeout: 10000 });
  await page.getByText("alice").waitFor({ timeout: 10000 });
  expect(!page.url().includes("sbk_"), "the key is in the address");
  expect((await page.getByText("gina").count()) === 0, "another tenant's conversation is listed");
  step("signed in with a tenant key: its conversations only");

  // A customer writes: the conversation appears without a reload; another
  // tenant's customer never does.
  await page.getByText("Live", { exact: true }).waitFor({ timeout: 10000 });
  await says(env("OTHER_PAGE"), "gus", "hello globex again");
  await says(env("PAGE"), "bob", "what are your hours?");
  await page.locator('li[data-id="acme-fb:bob"]').waitFor({ timeout: 10000 });
  const first = await page.locator("ul.rows li").first().getAttribute("data-id");
  expect(first === "acme-fb:bob", `the newest conversation is not first: ${first}`);
  expect((await page.getByText("gus").count()) === 0, "another tenant's customer appeared");
  await page.screenshot({ path: join(shots, "console-inbox.png") });
  step("a customer's message appears live");

  // Keyboard: the conversation opens from the list with Enter.
  await page.locator('li[data-id="acme-fb:bob"] a').focus();
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "bob" }).waitFor({ timeout: 10000 });
  await page.getByText("We're open 9-5.").waitFor({ timeout: 10000 });
  await page.getByText(/24-hour window: \d+ h \d+ min left/).waitFor();
  await page.getByText(/Human window \(7 days\): 6 d 23 h left/).waitFor();
  step("conversation shown with its windows");

  await page.getByLabel("AI resumes by itself after").selectOption("60");
  await page.getByRole("button", { name: "Take over", exact: true }).click();
  await page.getByText(/A person has this conversation \(console\); the AI answers again at/).waitFor({ timeout: 10000 });
  await page.getByLabel("Message", { exact: true }).fill("A person here: how can I help?");
  await page.getByRole("button", { name: "Send", exact: true }).click();
  const mine = page.locator('li.msg[data-author="agent"]', { hasText: "A person here: how can I help?" });
  await mine.waitFor({ timeout: 10000 });
  await delivered("bob");
  await page.locator('li.msg[data-author="agent"][data-status="delivered"]').waitFor({ timeout: 10000 });
  step("taken over; a person's message sent and shown delivered (live)");

  await says(env("PAGE"), "bob", "thanks!");
  await page.locator("li.msg.in", { hasText: "thanks!" }).waitFor({ timeout: 10000 });
  await page.waitForTimeout(2500);
  const ai = await page.locator('li.msg[data-author="ai"]').count();
  expect(ai === 1, `the AI answered during the takeover (${ai} AI lines)`);
  await page.screenshot({ path: join(shots, "console-conversation.png") });
  step("the AI stays silent during the takeover");

  await page.getByRole("button", { name: "Resume", exact: true }).click();
  await page.getByText("The AI answers this conversation.").waitFor({ timeout: 10000 });
  await says(env("PAGE"), "bob", "and your hours on Sunday?");
  await page.locator('li.msg[data-author="ai"]').nth(1).waitFor({ timeout: 10000 });
  step("resumed: the AI answers again");

  // A conversation whose windows have closed: the 409 reason in words.
  await page.goto(`${engine}/console/#/c/${encodeURIComponent("acme-fb:olga")}`);
  await page.getByRole("heading", { name: "olga" }).waitFor({ timeout: 10000 });
  await page.getByText("Human window (7 days): closed").waitFor();
  await page.getByLabel("Message", { exact: true }).fill("Sorry for the wait!");
  await page.getByRole("button", { name: "Send", exact: true }).click();
  const refusal = page.locator("#action-error");
  await refusal.getByText(/^Not possible now: .+/).waitFor({ timeout: 10000 });
  step(`a refused send explained: ${await refusal.textContent()}`);

  // Analytics: today's bars carry the day's counts the API reports.
  await page.getByRole("link", { name: "Analytics" }).click();
  await page.getByRole("heading", { name: "Messages per day" }).waitFor({ timeout: 10000 });
  const stats = await api("/analytics?days=7", env("TENANT_KEY"));
  const today = stats.daily[stats.daily.length - 1];
  expect(today.inbound >= 4 && today.outbound >= 3, `today's counts: ${JSON.stringify(today)}`);
  const bar = (kind) => page.locator(`rect[data-date="${today.date}"][data-${kind}]`).getAttribute(`data-${kind}`);
  expect(Number(await bar("inbound")) === today.inbound, "the inbound bar is not today's count");
  expect(Number(await bar("outbound")) === today.outbound, "the outbound bar is not today's count");
  expect((await page.locator("#s-inbound").textContent()) === String(stats.inbound), "inbound total");
  await page.screenshot({ path: join(shots, "console-analytics.png") });
  step(`the chart shows today's counts (${today.inbound} in, ${today.outbound} out)`);

  await page.getByRole("link", { name: "Integrations" }).click();
  await page.locator('tr[data-id="acme-fb"]').waitFor({ timeout: 10000 });
  expect((await page.locator('tr[data-id="globex-fb"]').count()) === 0, "another tenant's integration is listed");
  await page.locator('tr[data-id="acme-fb"]').getByText("ok", { exact: true }).waitFor();
  step("integrations: its own, with their token status");

  // A phone-sized screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole("link", { name: "Inbox", exact: true }).click();
  await page.locator('li[data-id="acme-fb:bob"]').waitFor({ timeout: 10000 });
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(wide <= 390, `the page is ${wide} px wide on a 390 px screen`);
  await page.screenshot({ path: join(shots, "console-phone.png") });
  step("fits a phone-sized screen");

  // Signed out, then in as the admin: every tenant.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("API key", { exact: true }).fill(env("ADMIN_TOKEN"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator('li[data-id="globex-fb:gina"]').waitFor({ timeout: 10000 });
  step("the admin token sees every tenant");
} finally {
  await browser.close();
}
console.log("ok");
