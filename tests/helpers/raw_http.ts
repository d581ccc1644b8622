/**
 * Test helper: one HTTP/1.1 request over a plain TCP connection, with headers exactly as
 * given (fetch replaces `Host`; a DNS-rebinding page's requests carry a foreign one).
 *
 * @module
 */

/** The answer to a raw request. */
export interface RawReply {
  status: number;
  /** Header names in lower case. */
  headers: Map<string, string>;
  body: string;
}

function dechunk(text: string): string {
  let out = "";
  let rest = text;
  for (;;) {
    const eol = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, eol), 16);
    if (eol < 0 || !(size > 0)) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}

/**
 * Sends `method path` to `base` (`http://HOST:PORT`) with `headers` (Host included when
 * given, else the address) and an optional body; reads the whole answer (the connection is
 * closed after it), so never an open event stream: that fails after `timeoutMs`.
 */
export async function rawRequest(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body = "",
  timeoutMs = 30_000,
): Promise<RawReply> {
  const url = new URL(base);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  try {
    const all: Record<string, string> = { host: url.host, ...headers, connection: "close" };
    if (body !== "") all["content-length"] = String(new TextEncoder().encode(body).length);
    const head = Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    await conn.write(new TextEncoder().encode(`${method} ${path} HTTP/1.1\r\n${head}\r\n${body}`));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      conn.close();
    }, timeoutMs);
    const text = await new Response(conn.readable).text().finally(() => clearTimeout(timer));
    if (timedOut) throw new Error(`${method} ${path}: no complete answer within ${timeoutMs} ms`);
    const split = text.indexOf("\r\n\r\n");
    const lines = text.slice(0, split).split("\r\n");
    const status = Number(lines[0].split(" ")[1]);
    const map = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      map.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const raw = text.slice(split + 4);
    return {
      status,
      headers: map,
      body: map.get("transfer-encoding") === "chunked" ? dechunk(raw) : raw,
    };
  } finally {
    try {
      conn.close();
    } catch { /* closed by reading to the end */ }
  }
}
