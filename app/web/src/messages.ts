// What a person reads for an error, and for a match's explanation.

import { ApiError, MAX_ENTRY_BYTES, type Match } from "./api";
import { type Key, type Translate, wordList } from "./i18n";

/** Where an error happened, for the codes whose meaning depends on it. */
export type Context = "login" | "register" | "entry" | "other";

/** The message of an error, in words a person understands. */
export function errorMessage(t: Translate, err: unknown, context: Context = "other", text = ""): string {
  if (!(err instanceof ApiError)) return t("error.unknown", { code: String(err) });
  const secs = Math.max(1, Math.ceil(err.retryAfterSecs ?? 1));
  switch (err.code) {
    case "network":
      return t("error.network");
    case "session_expired":
    case "unauthorized":
    case "invalid_refresh_token":
      return t("error.session");
    case "invalid_credentials":
      return t("error.credentials");
    case "email_taken":
      return t("error.email_taken");
    case "rate_limited":
      return t("error.rate_limited", { s: secs });
    case "busy":
      return t("error.busy", { s: secs });
    case "unavailable":
      return t("error.unavailable");
    case "not_caught_up":
      return t("error.not_caught_up");
    case "body_too_large":
      return t("error.too_large", { max: MAX_ENTRY_BYTES });
    case "revision_conflict":
      return t("error.conflict");
    case "entry_deleted":
      return t("error.entry_deleted");
    case "not_found":
      return t("error.not_found");
    case "invalid_field":
      return fieldMessage(t, err.field, context, text);
    case "internal":
      return t("error.internal");
    default:
      return t("error.unknown", { code: err.code });
  }
}

function fieldMessage(t: Translate, field: string | undefined, context: Context, text: string): string {
  switch (field) {
    case "text":
      return text.trim() === "" ? t("error.empty") : t("error.too_large", { max: MAX_ENTRY_BYTES });
    case "email":
      return t("error.field.email");
    case "password":
      return context === "login" ? t("error.credentials") : t("error.field.password");
    case "display_name":
      return t("error.field.display_name");
    default:
      return t("error.field", { field: field ?? "?" });
  }
}

/** An emotion's name in the interface language. */
export function emotionName(t: Translate, emotion: string): string {
  const key = `emotion.${emotion}` as Key;
  const name = t(key);
  return name === key ? emotion : name;
}

function level(x: number): "high" | "mid" | "low" {
  if (x >= 0.6) return "high";
  if (x >= 0.3) return "mid";
  return "low";
}

/** A match's explanation as sentences: how close, shared emotions, themes, moods. */
export function explainMatch(t: Translate, m: Match): { headline: string; reasons: string[] } {
  const e = m.explanation;
  const headline = t(`matches.strength.${level(m.score)}` as Key);
  const shared = e.shared_emotions.map((x) => emotionName(t, x));
  const reasons = [
    shared.length > 0 ? t("matches.shared", { list: wordList(t, shared) }) : t("matches.shared.none"),
    t(`matches.theme.${level(e.theme_similarity)}` as Key),
    t(`matches.mood.${level(e.mood_similarity)}` as Key),
  ];
  return { headline, reasons };
}
