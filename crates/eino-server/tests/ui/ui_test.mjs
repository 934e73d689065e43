// Drives the web UI in headless Chromium (playwright-core): chat with history, a trace,
// a session after a reload, a knowledge base upload and search, a tool approval.
// Usage: node ui_test.mjs BASE_URL FIXTURE_FILE   (run by tests/web_ui.rs)
import { createRequire } from "node:module";

const require = createRequire(process.env.PLAYWRIGHT_DIR + "/node_modules/");
const { chromium } = require("playwright-core");

const [base, fixture] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const problems = [];
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  // Script errors and CSP violations show up here.
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push("console: " + m.text()); });

  await page.goto(base + "/");
  await page.waitForSelector("#app option[value=assistant]", { state: "attached" });
  await page.selectOption("#app", "assistant");

  const ask = async (text) => {
    const before = await page.locator(".msg.assistant").count();
    await page.fill("#message", text);
    await page.press("#message", "Enter");
    await page.waitForFunction(
      (n) => document.querySelectorAll(".msg.assistant .meta").length > n, before);
    return (await page.locator(".msg.assistant").last().textContent()).trim();
  };

  let a = await ask("hello");
  if (!a.startsWith("echo(2): hello")) throw new Error("first answer: " + a);
  a = await ask("again");
  if (!a.startsWith("echo(4): again")) throw new Error("history not kept: " + a);
  await page.waitForSelector("#sessions li");

  await page.locator(".msg.assistant .meta a").last().click();
  await page.waitForFunction(() => document.querySelector("#run").textContent.includes("retrieve"));

  // The session survives a reload.
  await page.reload();
  await page.waitForSelector("#sessions li");
  await page.locator("#sessions li .title").first().click();
  await page.waitForFunction(() => document.querySelectorAll("#messages .msg").length === 4);

  // A knowledge base: create, upload with progress, documents, search.
  await page.fill("#kb-name", "notes");
  await page.click("#kb-form button");
  await page.locator("#kbs li", { hasText: "notes" }).click();
  await page.setInputFiles("#files", fixture);
  await page.click("#upload-form button");
  await page.waitForFunction(() => document.querySelector("#upload-status").textContent.startsWith("done"));
  await page.waitForSelector("#documents li");
  const doc = await page.locator("#documents li").first().textContent();
  if (!doc.includes("rust.md")) throw new Error("documents: " + doc);
  await page.fill("#query", "What does Cargo do?");
  await page.click("#search-form button");
  await page.waitForSelector("#hits li");

  // A tool that needs approval: the card, Allow, the resumed answer.
  await page.selectOption("#app", "agent");
  await page.fill("#message", "pay it");
  await page.press("#message", "Enter");
  await page.waitForSelector(".approval button.allow");
  await page.waitForSelector("#waiting li");
  await page.click(".approval button.allow");
  await page.waitForFunction(() => [...document.querySelectorAll(".msg.assistant")]
    .some((m) => m.textContent.startsWith("tool said: paid inv-7")));
  await page.waitForFunction(() => document.querySelectorAll("#waiting li").length === 0);
} catch (e) {
  problems.push(String(e && e.stack || e));
} finally {
  await browser.close();
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("ui ok");
