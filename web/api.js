/**
 * The dashboard's calls to its own agent: same origin, JSON in and out, the bearer
 * token from sessionStorage when the agent wants one, problem+json turned into errors
 * whose message is the agent's `detail` (QEMU's text).
 *
 * @module
 */

/** Where the pasted API token is kept (for this tab only). */
export const TOKEN_KEY = "ferry-api-token";

/** @returns {string | null} the stored token */
export function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/**
 * Stores (or, with "", forgets) the token.
 * @param {string} token
 */
export function storeToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An answer other than 2xx: `message` is the problem's detail. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

/** @type {(message: string) => void} */
let unauthorized = () => {};

/**
 * Sets what happens on a 401 (the page asks for a token).
 * @param {(message: string) => void} handler
 */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

/**
 * One request to the agent; resolves with the parsed JSON body (null when empty).
 * @param {string} method
 * @param {string} path relative to the page, e.g. "migrations/current"
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function api(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { accept: "application/json" };
  const token = storedToken();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  /** @type {any} */
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (response.ok) return json;
  const detail = json?.detail ?? json?.title ?? (text.slice(0, 200) || response.statusText);
  if (response.status === 401) unauthorized(detail);
  throw new ApiError(response.status, detail);
}
