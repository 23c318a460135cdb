// The web chat widget driven in Debian's Chromium with playwright-core, as a
// visitor would: called by tests/it/browser.rs with the pages and engine in
// the environment. Prints one line per step; exits non-zero on the first
// failure. Screenshots go to $SHOTS.
import { join } from "node:path";
import { env, launch, shots, step } from "./common.mjs";

const engine = env("ENGINE");
const admin = env("ADMIN_TOKEN");

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  await page.goto(env("PAGE_URL"));
  await page.getByRole("button", { name: "Open chat" }).click();
  const box = page.getByRole("textbox", { name: "Message" });
  await box.fill("what are your hours?");
  await box.press("Enter");
  await page.getByText("typing...").waitFor({ timeout: 10000 });
  step("typing shown");
  await page.getByText("We're open 9-5.").waitFor({ timeout: 15000 });
  await page.screenshot({ path: join(shots, "widget-answered.png") });
  step("answered");

  await page.reload();
  await page.getByRole("button", { name: "Open chat" }).click();
  await page.getByText("We're open 9-5.").waitFor({ timeout: 10000 });
  const asked = await page.getByText("what are your hours?").count();
  if (asked !== 1) throw new Error(`the question shows ${asked} times after a reload`);
  step("history after reload");

  // The socket is cut as the visitor sends: the message waits and goes
  // once the network is back, and is answered once.
  await context.setOffline(true);
  await page.getByText("Reconnecting...").waitFor({ timeout: 10000 });
  await box.fill("and your hours on Saturday?");
  await box.press("Enter");
  await page.waitForTimeout(1000);
  await context.setOffline(false);
  await page.getByText("We're open 9-5.").nth(1).waitFor({ timeout: 20000 });
  await page.waitForTimeout(3000);
  const answers = await page.getByText("We're open 9-5.").count();
  if (answers !== 2) throw new Error(`${answers} answers for two questions`);
  step("cut socket: sent once, answered once");

  const list = await (await fetch(`${engine}/api/v1/conversations?channel=web`, {
    headers: { authorization: `Bearer ${admin}` },
  })).json();
  const id = list.conversations[0].id;
  const sent = await fetch(`${engine}/api/v1/conversations/${encodeURIComponent(id)}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ text: "Hi, Sam here from the team." }),
  });
  if (sent.status !== 200) throw new Error(`a person's message: ${sent.status}`);
  await page.getByText("Hi, Sam here from the team.").waitFor({ timeout: 10000 });
  await page.getByText("A person from the team").waitFor({ timeout: 2000 });
  await page.screenshot({ path: join(shots, "widget-person.png") });
  step("a person's message shown");

  const other = await context.newPage();
  await other.goto(env("BAD_PAGE_URL"));
  await other.getByRole("button", { name: "Open chat" }).click();
  await other.getByText("Reconnecting...").waitFor({ timeout: 10000 });
  await other.screenshot({ path: join(shots, "widget-refused.png") });
  step("other origin refused");

  // A socket that stays open and carries nothing (a network switch, a NAT
  // that forgot the connection): the widget finds it out by its probe and
  // sends on a new socket, answered once.
  const quietContext = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const quiet = await quietContext.newPage();
  let sockets = 0, silenced = false;
  await quiet.routeWebSocket(/\/ws$/, (ws) => {
    const first = ++sockets === 1;
    const server = ws.connectToServer();
    ws.onMessage((m) => { if (!(first && silenced)) server.send(m); });
    server.onMessage((m) => { if (!(first && silenced)) ws.send(m); });
  });
  await quiet.goto(env("PAGE_URL"));
  await quiet.getByRole("button", { name: "Open chat" }).click();
  await quiet.getByText("Hi! Ask us anything.").waitFor({ timeout: 10000 });
  silenced = true;
  const quietBox = quiet.getByRole("textbox", { name: "Message" });
  await quietBox.fill("what are your hours?");
  await quietBox.press("Enter");
  await quiet.getByText("We're open 9-5.").waitFor({ timeout: 30000 });
  await quiet.waitForTimeout(3000);
  const quietAnswers = await quiet.getByText("We're open 9-5.").count();
  if (quietAnswers !== 1) throw new Error(`${quietAnswers} answers on the silenced socket's page`);
  if (sockets < 2) throw new Error("answered without a new socket");
  step("silent socket: found out, sent again, answered once");
} finally {
  await browser.close();
}
console.log("ok");
