// Small pieces every screen uses.

import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { useApp } from "./context";
import { errorMessage } from "./messages";

/** An error for a person to read, announced at once; dismissable. */
export function ErrorBox({ message, onDismiss }: { message: string | null; onDismiss?: () => void }) {
  const { t } = useApp();
  if (!message) return null;
  return (
    <div class="error" role="alert" data-testid="error">
      <span>{message}</span>
      {onDismiss && (
        <button type="button" class="link" onClick={onDismiss}>
          {t("error.dismiss")}
        </button>
      )}
    </div>
  );
}

/** A screen's heading, focused when the screen opens (for keyboards and screen readers). */
export function ScreenTitle({ children }: { children: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    ref.current?.focus();
  }, []);
  return (
    <h1 tabIndex={-1} ref={ref}>
      {children}
    </h1>
  );
}

/**
 * Loads `load()` when the screen opens and again when `deps` change: the
 * value (null until it arrives) and the error as a sentence. An answer
 * that comes after the screen closed or the deps changed is dropped.
 */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): [T | null, string | null] {
  const { t } = useApp();
  const [value, setValue] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    setError(null);
    load()
      .then((v) => live && setValue(v))
      .catch((err) => live && setError(errorMessage(t, err)));
    return () => {
      live = false;
    };
    // `load` is remade every render; `deps` say when it asks something new.
  }, [t, ...deps]);
  return [value, error];
}
