// The browser tests: Debian's Chromium (no browser download), driven by
// Playwright against the real server binary with the real mood model,
// started here on a loopback port with a fresh data folder and this
// folder's built client (dist/).
//
//   METACHAT_SERVER_BIN   the server binary (default: $CARGO_TARGET_DIR or
//                         ../../target, then debug/metachat-server)
//   METACHAT_MODEL_DIR    the model assets (default: ../../models)
//   METACHAT_WEB_PORT     the port (default 18380)
//   CHROMIUM              the browser (default: /usr/bin/chromium)
import { defineConfig } from "@playwright/test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "../..");
const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, "target");
const server = process.env.METACHAT_SERVER_BIN ?? join(targetDir, "debug/metachat-server");
const models = process.env.METACHAT_MODEL_DIR ?? join(root, "models");
const port = Number(process.env.METACHAT_WEB_PORT ?? 18380);
const data = mkdtempSync(join(tmpdir(), "metachat-web-"));

export default defineConfig({
  testDir: "tests",
  timeout: 300_000,
  expect: { timeout: 20_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: true,
  reporter: [["list"]],
  outputDir: "test-results",
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    browserName: "chromium",
    launchOptions: { executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium" },
    trace: "retain-on-failure",
  },
  webServer: {
    command: [
      JSON.stringify(server),
      `--addr 127.0.0.1:${port}`,
      "--metrics-addr 127.0.0.1:0",
      `--data-dir ${JSON.stringify(join(data, "data"))}`,
      `--model-dir ${JSON.stringify(models)}`,
      `--web-dir ${JSON.stringify(join(import.meta.dirname, "dist"))}`,
      "--durability periodic",
    ].join(" "),
    url: `http://127.0.0.1:${port}/readyz`,
    timeout: 120_000,
    reuseExistingServer: false,
    stdout: "ignore",
    stderr: "pipe",
    gracefulShutdown: { signal: "SIGTERM", timeout: 15_000 },
  },
});
