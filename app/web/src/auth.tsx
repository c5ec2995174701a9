// Log in and sign up.

import { useState } from "preact/hooks";
import { ErrorBox, ScreenTitle } from "./components";
import { useApp } from "./context";
import { errorMessage } from "./messages";

export function AuthScreen(props: { mode: "login" | "signup"; expired: boolean; onLoggedIn: () => void }) {
  const { api, t } = useApp();
  const signup = props.mode === "signup";
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(props.expired ? t("error.session") : null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      if (signup) await api.register(email, password, name);
      await api.login(email, password);
      props.onLoggedIn();
    } catch (err) {
      setError(errorMessage(t, err, signup ? "register" : "login"));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="auth card">
      <p class="tagline">{t("app.tagline")}</p>
      <ScreenTitle>{signup ? t("auth.signup") : t("auth.login")}</ScreenTitle>
      <form onSubmit={submit} aria-busy={busy}>
        <label>
          {t("auth.email")}
          <input
            type="email"
            name="email"
            autoComplete="email"
            required
            value={email}
            onInput={(e) => setEmail(e.currentTarget.value)}
          />
        </label>
        {signup && (
          <label>
            {t("auth.display_name")}
            <input
              type="text"
              name="display_name"
              autoComplete="nickname"
              required
              maxLength={64}
              value={name}
              onInput={(e) => setName(e.currentTarget.value)}
            />
          </label>
        )}
        <label>
          {t("auth.password")}
          <input
            type="password"
            name="password"
            autoComplete={signup ? "new-password" : "current-password"}
            required
            minLength={signup ? 8 : undefined}
            aria-describedby={signup ? "password-hint" : undefined}
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {signup && (
          <p id="password-hint" class="hint">
            {t("auth.password.hint")}
          </p>
        )}
        <ErrorBox message={error} />
        <button type="submit" disabled={busy}>
          {busy ? t("auth.working") : signup ? t("auth.signup") : t("auth.login")}
        </button>
      </form>
      <p>
        <a href={signup ? "#/login" : "#/signup"}>{signup ? t("auth.to_login") : t("auth.to_signup")}</a>
      </p>
    </section>
  );
}
