// What the browser scripts share: their environment (set by
// tests/it/browser.rs), Debian's Chromium launched by playwright-core with
// the flags this machine's closed network needs, and a step logger.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export const env = (k) => {
  if (!process.env[k]) throw new Error(`${k} is not set`);
  return process.env[k];
};
export const step = (s) => console.log(`step: ${s}`);
export const shots = env("SHOTS");

export async function launch() {
  const { chromium } = await import(
    pathToFileURL(join(env("PLAYWRIGHT_DIR"), "playwright-core", "index.mjs")).href
  );
  return chromium.launch({
    executablePath: env("CHROMIUM"),
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
