// The account: who is logged in, and erasure, confirmed by typing the
// email address after reading what is destroyed.

import { useRef, useState } from "preact/hooks";
import { ErrorBox, ScreenTitle, useLoad } from "./components";
import { useApp } from "./context";
import { errorMessage } from "./messages";

export function AccountScreen({ onErased }: { onErased: () => void }) {
  const { api, t } = useApp();
  const [me, error] = useLoad(() => api.me(), [api]);
  const dialog = useRef<HTMLDialogElement>(null);

  return (
    <section>
      <ScreenTitle>{t("account.title")}</ScreenTitle>
      <ErrorBox message={error} />
      {me && (
        <dl class="card">
          <dt>{t("account.name")}</dt>
          <dd data-testid="me-name">{me.display_name}</dd>
          <dt>{t("account.email")}</dt>
          <dd data-testid="me-email">{me.email}</dd>
        </dl>
      )}
      <button type="button" class="danger" disabled={!me} onClick={() => dialog.current?.showModal()}>
        {t("account.erase")}
      </button>
      {me && <EraseDialog refEl={dialog} email={me.email} onErased={onErased} />}
    </section>
  );
}

function EraseDialog(props: { refEl: { current: HTMLDialogElement | null }; email: string; onErased: () => void }) {
  const { api, t } = useApp();
  const [typed, setTyped] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const confirm = async (e: Event) => {
    e.preventDefault();
    if (typed.trim().toLowerCase() !== props.email.toLowerCase()) {
      setError(t("account.erase.mismatch"));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api.erase();
      props.refEl.current?.close();
      props.onErased();
    } catch (err) {
      setError(errorMessage(t, err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <dialog ref={props.refEl} aria-labelledby="erase-title" aria-describedby="erase-what">
      <form onSubmit={confirm}>
        <h2 id="erase-title">{t("account.erase.title")}</h2>
        <div id="erase-what">
          <p>{t("account.erase.what")}</p>
          <ul>
            <li>{t("account.erase.entries")}</li>
            <li>{t("account.erase.timeline")}</li>
            <li>{t("account.erase.profile")}</li>
            <li>{t("account.erase.matches")}</li>
            <li>{t("account.erase.sessions")}</li>
          </ul>
          <p>
            <strong>{t("account.erase.final")}</strong>
          </p>
        </div>
        <label>
          {t("account.erase.type")}
          <input
            type="email"
            autoComplete="off"
            value={typed}
            onInput={(e) => setTyped(e.currentTarget.value)}
          />
        </label>
        <ErrorBox message={error} />
        <div class="actions">
          <button type="submit" class="danger" disabled={busy}>
            {t("account.erase.confirm")}
          </button>
          <button type="button" class="secondary" onClick={() => props.refEl.current?.close()}>
            {t("diary.cancel")}
          </button>
        </div>
      </form>
    </dialog>
  );
}

export function ErasedScreen() {
  const { t } = useApp();
  return (
    <section class="card">
      <ScreenTitle>{t("account.erased.title")}</ScreenTitle>
      <p>{t("account.erased.text")}</p>
      <p>
        <a href="#/signup">{t("account.erased.again")}</a>
      </p>
    </section>
  );
}
