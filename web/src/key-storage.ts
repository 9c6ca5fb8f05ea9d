const NAME = 'chat-page.api-key';

/** The key kept by this browser: remembered (localStorage) or for this tab only (sessionStorage). */
export function storedKey(): string | null {
  try {
    return window.localStorage.getItem(NAME) ?? window.sessionStorage.getItem(NAME);
  } catch {
    return null; // storage disabled: the key lives in memory only
  }
}

/** Keeps the key for this tab, and across visits only when `remember` is ticked. */
export function storeKey(key: string, remember: boolean): void {
  try {
    forgetKey();
    (remember ? window.localStorage : window.sessionStorage).setItem(NAME, key);
  } catch {
    // storage disabled: the key lives in memory only
  }
}

export function forgetKey(): void {
  try {
    window.localStorage.removeItem(NAME);
    window.sessionStorage.removeItem(NAME);
  } catch {
    // nothing was stored
  }
}
