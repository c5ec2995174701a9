// The diary: write an entry, the list of entries (newest first, paged),
// edit and delete, and each entry's mood, which appears when the mood
// worker has read it (polled, no reload needed).

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, type Entry, MAX_ENTRY_BYTES, type Mood, utf8Bytes } from "./api";
import { ErrorBox, ScreenTitle } from "./components";
import { useApp } from "./context";
import { formatDateTime } from "./i18n";
import { emotionName, errorMessage } from "./messages";

/** How often an entry without a mood is asked for again, and for how long. */
const MOOD_POLL_MS = 1_500;
const MOOD_POLL_FOR_MS = 180_000;
const PAGE = 20;

export function DiaryScreen() {
  const { api, t } = useApp();
  const [entries, setEntries] = useState<Entry[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);

  const loadPage = useCallback(
    async (from: string | null) => {
      setLoading(true);
      try {
        const page = await api.listEntries(from, PAGE);
        setEntries((old) => {
          const seen = new Set(old.map((e) => e.entry_id));
          return from ? [...old, ...page.entries.filter((e) => !seen.has(e.entry_id))] : page.entries;
        });
        setCursor(page.next_cursor);
        setError(null);
      } catch (err) {
        setError(errorMessage(t, err));
      } finally {
        setLoading(false);
      }
    },
    [api, t],
  );

  useEffect(() => {
    void loadPage(null);
  }, [loadPage]);

  const replace = (entry: Entry) =>
    setEntries((old) => old.map((e) => (e.entry_id === entry.entry_id ? entry : e)));
  const remove = (id: string) => setEntries((old) => old.filter((e) => e.entry_id !== id));

  useMoodPolling(entries, replace);

  return (
    <section>
      <ScreenTitle>{t("nav.diary")}</ScreenTitle>
      <NewEntry onCreated={(entry) => setEntries((old) => [entry, ...old])} />
      <h2>{t("diary.list")}</h2>
      <ErrorBox message={error} onDismiss={() => setError(null)} />
      {!loading && entries.length === 0 && !error && <p class="muted">{t("diary.empty")}</p>}
      <ol class="entries" aria-busy={loading}>
        {entries.map((e) => (
          <EntryItem key={e.entry_id} entry={e} onChanged={replace} onDeleted={remove} />
        ))}
      </ol>
      {loading && <p class="muted">{t("diary.loading")}</p>}
      {cursor && !loading && (
        <button type="button" class="secondary" onClick={() => loadPage(cursor)}>
          {t("diary.more")}
        </button>
      )}
    </section>
  );
}

/** Asks again for each entry without a mood until it has one (or a few minutes passed). */
function useMoodPolling(entries: Entry[], replace: (e: Entry) => void) {
  const { api } = useApp();
  const started = useRef(new Map<string, number>());
  const pending = entries.filter((e) => e.mood === null).map((e) => e.entry_id);
  const key = pending.join(",");
  useEffect(() => {
    if (pending.length === 0) return;
    let stopped = false;
    const timer = setInterval(async () => {
      const now = Date.now();
      for (const id of pending) {
        const since = started.current.get(id) ?? now;
        started.current.set(id, since);
        if (now - since > MOOD_POLL_FOR_MS) continue;
        try {
          const fresh = await api.getEntry(id);
          if (!stopped && fresh.mood) replace(fresh);
        } catch {
          // A passing error: the next tick asks again.
        }
      }
    }, MOOD_POLL_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [key]);
}

function NewEntry({ onCreated }: { onCreated: (e: Entry) => void }) {
  const { api, t, announce } = useApp();
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const bytes = utf8Bytes(text);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const made = await api.createEntry(text);
      const now = made.created_at;
      onCreated({
        entry_id: made.entry_id,
        text: text.trim(),
        revision: made.revision,
        created_at: now,
        updated_at: now,
        mood: null,
      });
      setText("");
      announce(t("diary.saved"));
    } catch (err) {
      setError(errorMessage(t, err, "entry", text));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card new-entry" onSubmit={submit} aria-busy={busy}>
      <h2>{t("diary.new")}</h2>
      <label for="new-entry-text">{t("diary.text")}</label>
      <textarea
        id="new-entry-text"
        name="text"
        rows={5}
        value={text}
        aria-describedby="new-entry-bytes"
        onInput={(e) => setText(e.currentTarget.value)}
      />
      <p id="new-entry-bytes" class={bytes > MAX_ENTRY_BYTES ? "hint over" : "hint"}>
        {t("diary.bytes", { n: bytes, max: MAX_ENTRY_BYTES })}
      </p>
      <ErrorBox message={error} onDismiss={() => setError(null)} />
      <button type="submit" disabled={busy}>
        {busy ? t("diary.saving") : t("diary.save")}
      </button>
    </form>
  );
}

function EntryItem(props: { entry: Entry; onChanged: (e: Entry) => void; onDeleted: (id: string) => void }) {
  const { api, t, announce } = useApp();
  const { entry } = props;
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(entry.text);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [stale, setStale] = useState(false);

  const fail = (err: unknown, text = "") => {
    setError(errorMessage(t, err, "entry", text));
    setStale(err instanceof ApiError && err.code === "revision_conflict");
    if (err instanceof ApiError && (err.code === "entry_deleted" || err.code === "not_found")) {
      props.onDeleted(entry.entry_id);
    }
  };

  const save = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const done = await api.editEntry(entry.entry_id, draft, entry.revision);
      const changed = done.revision !== entry.revision;
      props.onChanged({
        ...entry,
        text: draft.trim(),
        revision: done.revision,
        updated_at: changed ? new Date().toISOString() : entry.updated_at,
        mood: changed ? null : entry.mood,
      });
      setEditing(false);
    } catch (err) {
      fail(err, draft);
    } finally {
      setBusy(false);
    }
  };

  const reload = async () => {
    try {
      const fresh = await api.getEntry(entry.entry_id);
      props.onChanged(fresh);
      setDraft(fresh.text);
      setError(null);
      setStale(false);
    } catch (err) {
      fail(err);
    }
  };

  const del = async () => {
    if (!window.confirm(t("diary.delete.confirm"))) return;
    setBusy(true);
    try {
      await api.deleteEntry(entry.entry_id, entry.revision);
      props.onDeleted(entry.entry_id);
      announce(t("diary.deleted"));
    } catch (err) {
      fail(err);
      setBusy(false);
    }
  };

  const editId = `edit-${entry.entry_id}`;
  return (
    <li class="card entry" data-testid="entry" data-entry-id={entry.entry_id}>
      <p class="meta">
        <time dateTime={entry.created_at}>{formatDateTime(t, entry.created_at)}</time>
        {entry.revision > 0 && (
          <span class="muted"> · {t("diary.edited", { date: formatDateTime(t, entry.updated_at) })}</span>
        )}
      </p>
      {editing ? (
        <form onSubmit={save} aria-busy={busy}>
          <label for={editId}>{t("diary.edit.label")}</label>
          <textarea id={editId} rows={5} value={draft} onInput={(e) => setDraft(e.currentTarget.value)} />
          <ErrorBox message={error} />
          {stale && (
            <button type="button" class="secondary" onClick={reload}>
              {t("diary.reload")}
            </button>
          )}
          <div class="actions">
            <button type="submit" disabled={busy}>
              {t("diary.update")}
            </button>
            <button
              type="button"
              class="secondary"
              onClick={() => {
                setEditing(false);
                setDraft(entry.text);
                setError(null);
              }}
            >
              {t("diary.cancel")}
            </button>
          </div>
        </form>
      ) : (
        <>
          <p class="text">{entry.text}</p>
          <MoodBadge mood={entry.mood} />
          <ErrorBox message={error} onDismiss={() => setError(null)} />
          <div class="actions">
            <button
              type="button"
              class="secondary"
              onClick={() => {
                setDraft(entry.text);
                setEditing(true);
              }}
            >
              {t("diary.edit")}
            </button>
            <button type="button" class="danger" onClick={del} disabled={busy}>
              {t("diary.delete")}
            </button>
          </div>
        </>
      )}
    </li>
  );
}

function MoodBadge({ mood }: { mood: Mood | null }) {
  const { t } = useApp();
  if (!mood) {
    return (
      <p class="mood pending" data-testid="mood-pending">
        <span class="spinner" aria-hidden="true" /> {t("mood.pending")}
      </p>
    );
  }
  const valence = t(`mood.${mood.valence_label}`);
  const summary = t("mood.summary", { valence, emotion: emotionName(t, mood.dominant_emotion) });
  return (
    <p class={`mood ${mood.valence_label}`} data-testid="mood" data-valence={mood.valence_label}>
      <span class="visually-hidden">{t("mood.label")}: </span>
      {summary}
      {mood.valence_probability !== null && (
        <span class="muted"> ({t("mood.sure", { p: Math.min(99, Math.round(mood.valence_probability * 100)) })})</span>
      )}
    </p>
  );
}
