// What every screen needs: the API client, the message function and the
// page's notices.

import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Api } from "./api";
import type { Translate } from "./i18n";

export interface Ctx {
  api: Api;
  t: Translate;
  /** Shows a passing notice (polite) to everyone, screen readers included. */
  announce: (text: string) => void;
}

export const AppContext = createContext<Ctx | null>(null);

export function useApp(): Ctx {
  const ctx = useContext(AppContext);
  if (!ctx) throw new Error("useApp outside the app");
  return ctx;
}
