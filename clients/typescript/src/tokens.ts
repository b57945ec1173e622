/** The tokens of a signed-in session, as the API issues them. */
export interface TokenPair {
  access: string;
  refresh: string;
}

/**
 * Where the client keeps its tokens. Methods may be sync or async, so a store can be
 * memory, localStorage, a cookie read on the server, or anything else.
 */
export interface TokenStore {
  get(): TokenPair | null | Promise<TokenPair | null>;
  set(tokens: TokenPair): void | Promise<void>;
  clear(): void | Promise<void>;
}

/** Tokens in memory: server-side use, scripts, tests. */
export function memoryTokenStore(initial: TokenPair | null = null): TokenStore {
  let tokens = initial;
  return {
    get: () => tokens,
    set: (next) => {
      tokens = next;
    },
    clear: () => {
      tokens = null;
    },
  };
}

interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * Tokens in the browser's localStorage, shared by every tab: when two tabs refresh at
 * once, the one that loses finds the winner's tokens here (see createRaptorFlowClient).
 */
export function localStorageTokenStore(key = "raptorflow.tokens", storage?: StorageLike): TokenStore {
  const backend = (): StorageLike => {
    const found = storage ?? (globalThis as { localStorage?: StorageLike }).localStorage;
    if (!found) throw new Error("localStorageTokenStore needs a browser (or pass a storage)");
    return found;
  };
  return {
    get: () => {
      const raw = backend().getItem(key);
      if (!raw) return null;
      try {
        const parsed = JSON.parse(raw) as Partial<TokenPair>;
        return typeof parsed.access === "string" && typeof parsed.refresh === "string"
          ? { access: parsed.access, refresh: parsed.refresh }
          : null;
      } catch {
        return null;
      }
    },
    set: (tokens) => backend().setItem(key, JSON.stringify({ access: tokens.access, refresh: tokens.refresh })),
    clear: () => backend().removeItem(key),
  };
}
