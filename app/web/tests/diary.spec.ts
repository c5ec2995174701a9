// The web client end to end, in Chromium, against the real server with the
// real mood model: two people sign up (one browser in English, one in
// Russian), write entries in both languages, see their moods arrive
// without a reload, see the timeline chart, find each other in matches;
// bad input and an edit that lost a race show the right message; one
// erases the account and leaves
// the other's matches. Every page is checked with axe (WCAG A/AA) and for
// Content-Security-Policy violations; the main screens are photographed.
//
// With METACHAT_UPDATE_SCREENSHOTS=1 the photographs go to docs/screenshots
// (the README shows them); otherwise to test-results/screenshots.

import AxeBuilder from "@axe-core/playwright";
import { type Browser, type BrowserContext, expect, type Page, test } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";

const SHOTS = process.env.METACHAT_UPDATE_SCREENSHOTS === "1"
  ? resolve(import.meta.dirname, "../../../docs/screenshots")
  : resolve(import.meta.dirname, "../test-results/screenshots");
mkdirSync(SHOTS, { recursive: true });

const RUN = Date.now().toString(36);
const anna = { email: `anna.${RUN}@example.org`, password: "correct horse battery", name: "Anna" };
const boris = { email: `boris.${RUN}@example.org`, password: "another long secret", name: "Борис" };

/** Browser-side problems: CSP violations, uncaught errors, failed scripts. */
const problems: string[] = [];

async function open(browser: Browser, locale: string, phone = false): Promise<{ ctx: BrowserContext; page: Page }> {
  const ctx = await browser.newContext({
    locale,
    timezoneId: "Europe/Berlin",
    viewport: phone ? { width: 390, height: 844 } : { width: 1100, height: 900 },
    deviceScaleFactor: 1,
  });
  const page = await ctx.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error" && /Content.Security.Policy|Refused to/i.test(msg.text())) {
      problems.push(`console: ${msg.text()}`);
    }
  });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  return { ctx, page };
}

/** No WCAG 2.x A or AA violation on the page as it is now. */
async function accessible(page: Page, what: string): Promise<void> {
  const result = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  const found = result.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  expect(found, `accessibility of ${what}`).toEqual([]);
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true, animations: "disabled" });
}

async function signUp(page: Page, who: typeof anna, labels: { signup: RegExp; email: RegExp; name: RegExp; password: RegExp }) {
  await page.goto("/");
  await page.getByRole("link", { name: labels.signup }).click();
  await page.getByLabel(labels.email).fill(who.email);
  await page.getByLabel(labels.name).fill(who.name);
  await page.getByLabel(labels.password).fill(who.password);
  await page.locator("form button[type=submit]").click();
}

/** Writes an entry and waits until it is listed. */
async function write(page: Page, text: string, field: RegExp, save: RegExp): Promise<void> {
  await page.getByLabel(field).fill(text);
  await page.getByRole("button", { name: save }).click();
  await expect(page.getByTestId("entry").filter({ hasText: text.slice(0, 40) })).toHaveCount(1);
}

/** The session's access token, read from the page's storage (to ask the API what the page shows). */
async function token(page: Page): Promise<string> {
  const raw = await page.evaluate(() => localStorage.getItem("metachat.session"));
  expect(raw, "a session is kept").not.toBeNull();
  return (JSON.parse(raw as string) as { token: string }).token;
}

test.describe.configure({ mode: "serial" });

let annaPage: Page;
let borisPage: Page;

test.afterAll(() => {
  expect(problems, "no CSP violation or script error in any page").toEqual([]);
});

test("Anna signs up in English and writes entries whose moods arrive without a reload", async ({ browser }) => {
  const { page } = await open(browser, "en-US");
  annaPage = page;
  await page.goto("/");
  await expect(page.getByRole("heading", { level: 1, name: "Log in" })).toBeVisible();
  await accessible(page, "the login screen");
  await shot(page, "login");

  await signUp(page, anna, { signup: /create an account/i, email: /^email$/i, name: /your name/i, password: /^password$/i });
  await expect(page.getByRole("heading", { level: 1, name: "Diary" })).toBeVisible();
  await expect(page.getByText("No entries yet")).toBeVisible();

  const field = /what happened today/i;
  const save = /save entry/i;
  await write(page, "Ran my first marathon today, I am so happy and proud of myself!", field, save);
  await write(page, "Сегодня гуляли с друзьями по набережной, было тепло и очень радостно.", field, save);
  await write(page, "My grandfather passed away last night. I cannot stop crying.", field, save);

  // The worker reads each entry; the page asks again until every mood is there.
  await expect(page.getByTestId("mood")).toHaveCount(3, { timeout: 90_000 });
  await expect(page.getByTestId("mood-pending")).toHaveCount(0);
  const marathon = page.getByTestId("entry").filter({ hasText: "marathon" });
  await expect(marathon.getByTestId("mood")).toHaveAttribute("data-valence", "positive");
  const grief = page.getByTestId("entry").filter({ hasText: "grandfather" });
  await expect(grief.getByTestId("mood")).toHaveAttribute("data-valence", "negative");

  // The moods come from the real model, not the lexicon fallback.
  const listed = await page.request.get("/v1/entries", { headers: { authorization: `Bearer ${await token(page)}` } });
  const body = (await listed.json()) as { entries: { mood: { model_id: string } | null }[] };
  for (const e of body.entries) expect(e.mood?.model_id).toMatch(/e5/);

  await accessible(page, "the diary");
  await shot(page, "diary");
});

test("bad input shows a message a person understands", async () => {
  const page = annaPage;
  const field = page.getByLabel(/what happened today/i);
  const save = page.getByRole("button", { name: /save entry/i });

  await field.fill("   ");
  await save.click();
  await expect(page.getByRole("alert")).toHaveText(/the entry is empty/i);

  // Over the entry limit but under the body limit: 422 from the server.
  await field.fill("a".repeat(20_000));
  await expect(page.getByText("20,000 of 16,384 bytes")).toBeVisible();
  await save.click();
  await expect(page.getByRole("alert")).toHaveText(/too long: at most 16,384 bytes/i);

  // Over the body limit: 413 from the server.
  await field.fill("б".repeat(40_000));
  await save.click();
  await expect(page.getByRole("alert")).toHaveText(/too long: at most 16,384 bytes/i);
  await expect(page.getByTestId("entry")).toHaveCount(3);
  await field.fill("");
});

test("an entry is edited (its mood read again) and another deleted", async () => {
  const page = annaPage;
  await page.getByTestId("entry").filter({ hasText: "marathon" }).getByRole("button", { name: "Edit" }).click();
  const edit = page.getByLabel("Edit the entry");
  await edit.fill("I missed the marathon start, lost my wallet and had a terrible fight with my brother. I am furious and miserable.");
  await page.getByRole("button", { name: "Save changes" }).click();
  const edited = page.getByTestId("entry").filter({ hasText: "furious" });
  await expect(edited.getByText(/edited/)).toBeVisible();
  await expect(edited.getByTestId("mood")).toHaveAttribute("data-valence", "negative", { timeout: 90_000 });

  // An edit that lost the race with another device: 409, said in words, and the entry reloads.
  const walk = page.getByTestId("entry").filter({ hasText: "набережной" });
  const walkId = await walk.getAttribute("data-entry-id");
  await walk.getByRole("button", { name: "Edit" }).click();
  const auth = { authorization: `Bearer ${await token(page)}` };
  const current = (await (await page.request.get(`/v1/entries/${walkId}`, { headers: auth })).json()) as {
    revision: number;
  };
  const elsewhere = await page.request.put(`/v1/entries/${walkId}`, {
    headers: auth,
    data: { text: "Гуляли с друзьями по набережной (исправлено на телефоне).", expected_revision: current.revision },
  });
  expect(elsewhere.status()).toBe(200);
  const item = page.locator(`[data-entry-id="${walkId}"]`);
  await item.getByLabel("Edit the entry").fill("My version from this window.");
  await item.getByRole("button", { name: "Save changes" }).click();
  await expect(item.getByRole("alert")).toHaveText(/changed in another window or device/);
  await page.getByRole("button", { name: "Reload the entry" }).click();
  await expect(page.getByLabel("Edit the entry")).toHaveValue(/исправлено на телефоне/);
  await page.getByRole("button", { name: "Cancel" }).click();
  await expect(page.getByTestId("entry").filter({ hasText: "исправлено на телефоне" })).toHaveCount(1);

  await write(page, "Just a test entry that I will delete.", /what happened today/i, /save entry/i);
  page.once("dialog", (d) => d.accept());
  await page.getByTestId("entry").filter({ hasText: "I will delete" }).getByRole("button", { name: "Delete" }).click();
  await expect(page.getByTestId("entry").filter({ hasText: "I will delete" })).toHaveCount(0);
  await page.reload();
  await expect(page.getByTestId("entry")).toHaveCount(3);
  await expect(page.getByText("I will delete")).toHaveCount(0);
});

test("Boris signs up in Russian, from the keyboard, and writes in both languages", async ({ browser }) => {
  const { page } = await open(browser, "ru-RU", true);
  borisPage = page;
  await page.goto("/");
  await expect(page.getByRole("heading", { level: 1, name: "Войти" })).toBeVisible();
  await expect(page.locator("html")).toHaveAttribute("lang", "ru");

  await page.getByRole("link", { name: /создайте аккаунт/i }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Зарегистрироваться" })).toBeVisible();
  // Keyboard only: the fields in order, Enter submits.
  await page.getByLabel("Электронная почта").focus();
  await page.keyboard.type(boris.email);
  await page.keyboard.press("Tab");
  await page.keyboard.type(boris.name);
  await page.keyboard.press("Tab");
  await page.keyboard.type(boris.password);
  await page.keyboard.press("Enter");
  await expect(page.getByRole("heading", { level: 1, name: "Дневник" })).toBeVisible();

  const field = /что случилось сегодня/i;
  const save = /сохранить запись/i;
  await write(page, "Пробежал сегодня свой первый марафон, я счастлив и горжусь собой!", field, save);
  await write(page, "A sunny walk with friends along the river, warm and joyful.", field, save);
  await write(page, "Вчера умер мой дедушка. Не могу перестать плакать.", field, save);
  await expect(page.getByTestId("mood")).toHaveCount(3, { timeout: 90_000 });
  await expect(page.getByTestId("mood").first()).toContainText(/хорошее|ровное|плохое/);

  // Dates in the Russian locale: "5 дек. 2026 г." and the like.
  await expect(page.locator("time").first()).toHaveText(/[а-я]/);
  await accessible(page, "the diary on a phone, in Russian");
  await shot(page, "diary-phone-ru");
});

test("the timeline chart shows one point per day with entries", async () => {
  const page = annaPage;
  const listed = await page.request.get("/v1/entries", { headers: { authorization: `Bearer ${await token(page)}` } });
  const body = (await listed.json()) as { entries: { created_at: string }[] };
  const days = new Set(body.entries.map((e) => e.created_at.slice(0, 10))).size;

  await page.getByRole("link", { name: "Mood timeline" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Your mood over time" })).toBeVisible();
  await expect(page.getByTestId("valence-chart")).toHaveAttribute("data-points", String(days));
  await expect(page.getByTestId("emotion-chart")).toHaveAttribute("data-points", String(days));
  // The axis spans the whole range (30 days by default), gaps included.
  await expect(page.getByTestId("valence-chart")).toHaveAttribute("data-days", "30");
  await expect(page.getByTestId("day-count")).toHaveText(days === 1 ? "1 day with entries" : `${days} days with entries`);
  await page.getByText("The same data as a table").click();
  await expect(page.getByTestId("timeline-table").locator("tbody tr")).toHaveCount(days);
  // The chart really drew something: the canvas is not blank.
  const inked = await page.getByTestId("valence-chart").evaluate((c) => {
    const canvas = c as HTMLCanvasElement;
    const px = canvas.getContext("2d")?.getImageData(0, 0, canvas.width, canvas.height).data ?? [];
    let n = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
    return n;
  });
  expect(inked).toBeGreaterThan(100);

  // A range with no entries: the chart gives way to a sentence.
  await page.getByTestId("range").selectOption("custom");
  await page.getByLabel("From").fill("2001-01-01");
  await page.getByLabel("To").fill("2001-01-31");
  await expect(page.getByText("No analysed entries in this range yet.")).toBeVisible();
  await page.getByTestId("range").selectOption("7");
  await expect(page.getByTestId("valence-chart")).toHaveAttribute("data-days", "7");
  await expect(page.getByTestId("valence-chart")).toHaveAttribute("data-points", String(days));
  await accessible(page, "the timeline");
  await shot(page, "timeline");
});

test("each sees the other in matches, explained in words", async () => {
  for (const [page, other, link, heading] of [
    [annaPage, boris.name, "People like you", "People who feel alike"],
    [borisPage, anna.name, "Похожие люди", "Люди, которые чувствуют похоже"],
  ] as const) {
    await page.getByRole("link", { name: link }).click();
    await expect(page.getByRole("heading", { level: 1, name: heading })).toBeVisible();
    // The matching index follows the moods: ask again until the other is there.
    await expect(async () => {
      await page.reload();
      await expect(page.getByTestId("match").filter({ hasText: other })).toHaveCount(1, { timeout: 2_000 });
    }).toPass({ timeout: 60_000 });
  }
  const match = annaPage.getByTestId("match").filter({ hasText: boris.name });
  await expect(match.getByRole("listitem")).toHaveCount(3);
  await expect(match).toContainText(/You both often feel|You rarely feel the same/);
  await expect(match).toContainText(/You write about/);
  await expect(match).toContainText(/Your moods over time/);
  await accessible(annaPage, "the matches");
  await shot(annaPage, "matches");
});

test("the language switches, and a reload keeps the session", async () => {
  const page = annaPage;
  await page.getByTestId("lang").selectOption("ru");
  await expect(page.getByRole("link", { name: "Дневник" })).toBeVisible();
  await page.reload();
  await expect(page.getByRole("link", { name: "Дневник" })).toBeVisible();
  await page.getByTestId("lang").selectOption("en");
  await page.getByRole("link", { name: "Diary" }).click();
  await expect(page.getByTestId("entry")).toHaveCount(3);
});

test("the diary shows 20 entries at a time and older ones on request", async () => {
  const page = annaPage;
  const auth = { authorization: `Bearer ${await token(page)}` };
  for (let i = 1; i <= 19; i++) {
    const made = await page.request.post("/v1/entries", { headers: auth, data: { text: `Short note number ${i}.` } });
    expect(made.status()).toBe(201);
  }
  await page.reload();
  await expect(page.getByTestId("entry")).toHaveCount(20);
  await expect(page.getByTestId("entry").first()).toContainText("Short note number 19.");
  await page.getByRole("button", { name: "Show older entries" }).click();
  await expect(page.getByTestId("entry")).toHaveCount(22);
  await expect(page.getByTestId("entry").last()).toContainText("marathon");
  await expect(page.getByRole("button", { name: "Show older entries" })).toHaveCount(0);
});

test("Boris erases his account after reading what is destroyed, and leaves Anna's matches", async () => {
  const page = borisPage;
  await page.getByRole("link", { name: "Аккаунт" }).click();
  await expect(page.getByTestId("me-email")).toHaveText(boris.email);
  await page.getByRole("button", { name: "Удалить аккаунт" }).click();
  const dialog = page.getByRole("dialog", { name: "Удалить аккаунт навсегда?" });
  await expect(dialog).toBeVisible();
  await expect(dialog.getByRole("listitem")).toHaveCount(5);
  await expect(dialog).toContainText("все ваши записи и их настроение");
  await expect(dialog).toContainText("ваше место в чужих совпадениях");
  await accessible(page, "the erasure dialog");
  await shot(page, "erase-ru");

  await dialog.getByLabel(/введите свой адрес почты/i).fill("someone.else@example.org");
  await dialog.getByRole("button", { name: "Удалить всё" }).click();
  await expect(dialog.getByRole("alert")).toHaveText("Это не ваш адрес почты.");

  await dialog.getByLabel(/введите свой адрес почты/i).fill(boris.email);
  await dialog.getByRole("button", { name: "Удалить всё" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Аккаунт удалён" })).toBeVisible();
  expect(await page.evaluate(() => localStorage.getItem("metachat.session"))).toBeNull();

  // His login no longer works.
  await page.goto("/#/login");
  await page.getByLabel("Электронная почта").fill(boris.email);
  await page.getByLabel("Пароль").fill(boris.password);
  await page.locator("form button[type=submit]").click();
  await expect(page.getByRole("alert")).toHaveText("Неверная почта или пароль.");

  // And Anna no longer sees him.
  await annaPage.getByRole("link", { name: "People like you" }).click();
  await expect(async () => {
    await annaPage.reload();
    await expect(annaPage.getByRole("heading", { level: 1, name: "People who feel alike" })).toBeVisible();
    await expect(annaPage.getByTestId("match").filter({ hasText: boris.name })).toHaveCount(0, { timeout: 2_000 });
  }).toPass({ timeout: 30_000 });
});

test("a wrong password, an expired session and logging out", async ({ browser }) => {
  const { ctx, page } = await open(browser, "en-GB");
  await page.goto("/");
  await page.getByLabel(/^email$/i).fill(anna.email);
  await page.getByLabel(/^password$/i).fill("not the password");
  await page.locator("form button[type=submit]").click();
  await expect(page.getByRole("alert")).toHaveText("Wrong email or password.");

  await page.getByLabel(/^password$/i).fill(anna.password);
  await page.locator("form button[type=submit]").click();
  await expect(page.getByRole("heading", { level: 1, name: "Diary" })).toBeVisible();
  // en-GB writes the day before the month.
  await expect(page.locator("time").first()).toHaveText(/^\d{1,2} [A-Z][a-z]{2} \d{4}/);

  // A session the server no longer honours (revoked elsewhere, or expired): the page says so.
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem("metachat.session") as string);
    s.token = "v4.public.bogus";
    s.refresh_token = "bogus";
    localStorage.setItem("metachat.session", JSON.stringify(s));
  });
  await page.reload();
  await expect(page.getByRole("alert")).toHaveText("Your session has expired. Please log in again.");
  await expect(page.getByRole("heading", { level: 1, name: "Log in" })).toBeVisible();

  await page.getByLabel(/^password$/i).fill(anna.password);
  await page.getByLabel(/^email$/i).fill(anna.email);
  await page.locator("form button[type=submit]").click();
  await expect(page.getByRole("heading", { level: 1, name: "Diary" })).toBeVisible();
  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page.getByRole("heading", { level: 1, name: "Log in" })).toBeVisible();
  expect(await page.evaluate(() => localStorage.getItem("metachat.session"))).toBeNull();
  await page.reload();
  await expect(page.getByRole("heading", { level: 1, name: "Log in" })).toBeVisible();
  await ctx.close();
});
