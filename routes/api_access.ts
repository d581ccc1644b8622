/**
 * Who may reach the API, decided from where it listens: the `--listen` address, the Host
 * names a request may carry (loopback names for a loopback listener, the listen address,
 * `--api-host` names), and whether the agent may start at all without a token (not off
 * loopback). Pure functions of the command line and the host's names; the middleware that
 * applies them is routes/host_guard.ts.
 *
 * @module
 */

/** Where the API listens (`--listen HOST:PORT` or `--listen unix:PATH`). */
export type ApiListen =
  | { kind: "tcp"; /** As given, unbracketed (`::1`). */ hostname: string; port: number }
  | { kind: "unix"; path: string };

/** The Host names the API answers to (URL hostname form: lower case, `[::1]`). */
export interface HostNames {
  /** Any Host (a unix socket: browsers cannot reach it, its file mode guards it). */
  any: boolean;
  /** Loopback names and addresses: `localhost`, `127.x.y.z`, `[::1]`. */
  loopback: boolean;
  /** Further names (the listen address, `--api-host`, a wildcard listener's addresses). */
  names: ReadonlySet<string>;
}

/** The host's own names, for a listener on every address (`0.0.0.0`, `::`). */
export interface LocalNames {
  hostname: string;
  addresses: readonly string[];
}

/** Parses `--listen`; throws an Error whose message names the flag. */
export function parseListen(text: string): ApiListen {
  if (text.startsWith("unix:")) {
    if (text.length === 5) throw new Error(`--listen unix: needs a path`);
    return { kind: "unix", path: text.slice(5) };
  }
  const m = /^(\[[^\]]*\]|[^:]*):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535) {
    throw new Error(`--listen expects HOST:PORT or unix:PATH, got '${text}'`);
  }
  return { kind: "tcp", hostname: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) };
}

/**
 * `name` as a URL spells its hostname (lower case, IPv6 in brackets, IPv4 canonical);
 * throws an Error for anything that is not a bare host name or address.
 */
export function normalizeHostName(name: string): string {
  const bare = name.replace(/^\[|\]$/g, "");
  if (/[/?#@\\\s]/.test(bare)) throw new Error(`'${name}' is not a host name or address`);
  const text = bare.includes(":") ? `[${bare}]` : bare;
  let url: URL | undefined;
  try {
    url = new URL(`http://${text}/`);
  } catch { /* reported below */ }
  if (url === undefined || bare === "" || url.host !== url.hostname || url.username !== "") {
    throw new Error(`'${name}' is not a host name or address`);
  }
  return url.hostname;
}

/** True for a loopback name or address (URL hostname form). */
export function isLoopbackName(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

function isWildcard(hostname: string): boolean {
  return hostname === "" || hostname === "0.0.0.0" || hostname === "[::]";
}

/** True when `listen` can only be reached from this host (loopback or a unix socket). */
export function isLocalListen(listen: ApiListen): boolean {
  if (listen.kind === "unix") return true;
  try {
    return isLoopbackName(normalizeHostName(listen.hostname));
  } catch {
    return false;
  }
}

/**
 * The Host names the API answers to: a unix socket takes any; a loopback listener the
 * loopback names; a listener on one address that address; a listener on every address
 * (`0.0.0.0`, `::`) the loopback names, the host name and every interface address
 * (`local`); all of them the `--api-host` names too.
 */
export function hostNamesFor(
  listen: ApiListen,
  apiHosts: readonly string[],
  local: () => LocalNames,
): HostNames {
  const names = new Set(apiHosts.map((h) => flagged("--api-host", () => normalizeHostName(h))));
  if (listen.kind === "unix") return { any: true, loopback: true, names };
  const host = listen.hostname === ""
    ? ""
    : flagged("--listen", () => normalizeHostName(listen.hostname));
  if (isLoopbackName(host)) return { any: false, loopback: true, names };
  if (!isWildcard(host)) return { any: false, loopback: false, names: names.add(host) };
  const { hostname, addresses } = local();
  for (const name of [hostname, ...addresses]) {
    try {
      names.add(normalizeHostName(name));
    } catch { /* a scoped IPv6 address (fe80::1%eth0) is not a Host a client can send */ }
  }
  return { any: false, loopback: true, names };
}

/** Runs `f`; an Error it throws gets `flag` in front of its message. */
function flagged<T>(flag: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new Error(`${flag}: ${(e as Error).message}`);
  }
}

/** True when `hostname` (URL hostname form) is one of `allowed`. */
export function hostAllowed(allowed: HostNames, hostname: string): boolean {
  return allowed.any || allowed.names.has(hostname) ||
    (allowed.loopback && isLoopbackName(hostname));
}

/**
 * Why the API must not start as configured, or null: off loopback every request must be
 * authenticated, by the bearer token or by a client certificate (`--api-tls` with a CA).
 */
export function exposureProblem(
  listen: ApiListen,
  guarded: { token: boolean; clientCertificates: boolean },
): string | null {
  if (isLocalListen(listen) || guarded.token || guarded.clientCertificates) return null;
  const where = listen.kind === "tcp"
    ? `${listen.hostname.includes(":") ? `[${listen.hostname}]` : listen.hostname}:${listen.port}`
    : "";
  return `--listen ${where} is not a loopback address: anyone who can reach it could drive ` +
    "the agent; give it --api-token TOKEN (or FERRY_API_TOKEN), or require client " +
    "certificates with --api-tls CERT,KEY,CLIENT_CA (see docs/security.md)";
}
