// The people whose diaries feel alike, each with why, in words.

import { ErrorBox, ScreenTitle, useLoad } from "./components";
import { useApp } from "./context";
import { explainMatch } from "./messages";

export function MatchesScreen() {
  const { api, t } = useApp();
  const [found, error] = useLoad(() => api.matches(10), [api]);
  const matches = found?.matches ?? null;

  return (
    <section>
      <ScreenTitle>{t("matches.title")}</ScreenTitle>
      <p class="muted">{t("matches.intro")}</p>
      <ErrorBox message={error} />
      {matches && matches.length === 0 && <p data-testid="no-matches">{t("matches.empty")}</p>}
      {matches && matches.length > 0 && (
        <ol class="matches">
          {matches.map((m) => {
            const { headline, reasons } = explainMatch(t, m);
            return (
              <li key={m.user_id} class="card match" data-testid="match">
                <h2 class="name">{m.display_name}</h2>
                <p class="strength">{headline}</p>
                <ul>
                  {reasons.map((r) => (
                    <li key={r}>{r}</li>
                  ))}
                </ul>
              </li>
            );
          })}
        </ol>
      )}
    </section>
  );
}
