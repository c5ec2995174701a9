// MetaChat's web client: the shell (header, navigation, language), the
// hash routes of the screens, and what happens when a session expires.

import { render } from "preact";
import { useCallback, useEffect, useMemo, useState } from "preact/hooks";
import { Api } from "./api";
import { AccountScreen, ErasedScreen } from "./account";
import { AuthScreen } from "./auth";
import { AppContext, type Ctx } from "./context";
import { DiaryScreen } from "./diary";
import { initialLang, LANGS, type Lang, saveLang, translator } from "./i18n";
import { MatchesScreen } from "./matches";
import { TimelineScreen } from "./timeline";

type Route = "login" | "signup" | "diary" | "timeline" | "matches" | "account" | "erased";
const PRIVATE: Route[] = ["diary", "timeline", "matches", "account"];

function routeOf(hash: string): Route {
  const name = hash.replace(/^#\/?/, "");
  const all: Route[] = ["login", "signup", "erased", ...PRIVATE];
  return (all as string[]).includes(name) ? (name as Route) : "diary";
}

function go(route: Route): void {
  location.hash = `#/${route}`;
}

const api = new Api();

function App() {
  const [lang, setLang] = useState<Lang>(initialLang);
  const [route, setRoute] = useState<Route>(() => routeOf(location.hash));
  const [loggedIn, setLoggedIn] = useState(api.loggedIn);
  const [notice, setNotice] = useState("");
  const [expired, setExpired] = useState(false);
  const t = useMemo(() => translator(lang), [lang]);

  useEffect(() => {
    document.documentElement.lang = lang;
    document.title = t("app.name");
  }, [lang, t]);

  useEffect(() => {
    const onHash = () => setRoute(routeOf(location.hash));
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);

  useEffect(
    () =>
      api.onSessionExpired(() => {
        setLoggedIn(false);
        setExpired(true);
      }),
    [],
  );

  const announce = useCallback((text: string) => setNotice(text), []);
  const ctx: Ctx = useMemo(() => ({ api, t, announce }), [t, announce]);

  const changeLang = (next: Lang) => {
    saveLang(next);
    setLang(next);
  };

  const logout = async () => {
    await api.logout();
    setLoggedIn(false);
    setExpired(false);
    go("login");
  };

  let screen;
  if (route === "erased") {
    screen = <ErasedScreen />;
  } else if (!loggedIn || route === "login" || route === "signup") {
    screen = (
      <AuthScreen
        key={route === "signup" ? "signup" : "login"}
        mode={route === "signup" ? "signup" : "login"}
        expired={expired && !loggedIn}
        onLoggedIn={() => {
          setLoggedIn(true);
          setExpired(false);
          go("diary");
        }}
      />
    );
  } else if (route === "timeline") {
    screen = <TimelineScreen />;
  } else if (route === "matches") {
    screen = <MatchesScreen />;
  } else if (route === "account") {
    screen = (
      <AccountScreen
        onErased={() => {
          setLoggedIn(false);
          go("erased");
        }}
      />
    );
  } else {
    screen = <DiaryScreen />;
  }
  const shown = loggedIn && PRIVATE.includes(route) ? route : null;

  return (
    <AppContext.Provider value={ctx}>
      <a class="skip" href="#main" onClick={(e) => {
        e.preventDefault();
        document.getElementById("main")?.focus();
      }}>
        {t("nav.skip")}
      </a>
      <header class="top">
        <span class="brand">{t("app.name")}</span>
        {loggedIn && (
          <nav aria-label={t("nav.main")}>
            <ul>
              {(["diary", "timeline", "matches", "account"] as const).map((r) => (
                <li key={r}>
                  <a href={`#/${r}`} aria-current={shown === r ? "page" : undefined}>
                    {t(`nav.${r}`)}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
        )}
        <div class="tools">
          <label class="lang">
            <span class="visually-hidden">{t("lang.label")}</span>
            <select
              value={lang}
              onChange={(e) => changeLang((e.currentTarget as HTMLSelectElement).value as Lang)}
              data-testid="lang"
            >
              {LANGS.map((l) => (
                <option key={l} value={l} lang={l}>
                  {l === "en" ? "English" : "Русский"}
                </option>
              ))}
            </select>
          </label>
          {loggedIn && (
            <button type="button" class="secondary" onClick={logout}>
              {t("nav.logout")}
            </button>
          )}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {screen}
      </main>
      <div class="visually-hidden" aria-live="polite" data-testid="notice">
        {notice}
      </div>
    </AppContext.Provider>
  );
}

const root = document.getElementById("app");
if (root) render(<App />, root);
