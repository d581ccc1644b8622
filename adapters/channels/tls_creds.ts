/**
 * TLS credentials objects, as QEMU declares them with
 * `--object tls-creds-x509,id=ID,dir=DIR,endpoint=server|client,verify-peer=on|off`, and
 * the PEM files they name, in QEMU's layout inside DIR:
 *
 * - server endpoint: `ca-cert.pem` (trusted CAs for client certificates), `server-cert.pem`,
 *   `server-key.pem`, all required;
 * - client endpoint: `ca-cert.pem` (trusted CAs for the server's certificate) required,
 *   `client-cert.pem` + `client-key.pem` optional but only as a pair.
 *
 * `verify-peer` defaults to on, as in QEMU. Loading checks that every certificate parses and
 * that the key matches its certificate, so a bad directory fails at start, not mid-migration.
 *
 * @module
 */

// node:crypto loads when credentials are loaded: imported up front it costs every agent start
// ~25 ms of CPU (Deno's Node layer), though most agents never use TLS.
type NodeCrypto = typeof import("node:crypto");
import { osErrorText, TlsCredsError } from "./errors.ts";

/** Which side of the TLS session the credentials are for. */
export type TlsEndpoint = "server" | "client";

/** A parsed `tls-creds-x509` object: what to load, not yet loaded. */
export interface TlsCredsSpec {
  /** The object's id, named by the `tls-creds` migration parameter. */
  readonly id: string;
  /** Directory holding the PEM files. */
  readonly dir: string;
  /** Which side these credentials are for (QEMU's default: client). */
  readonly endpoint: TlsEndpoint;
  /** Server: require and verify a client certificate. Client: verify the server's. */
  readonly verifyPeer: boolean;
}

/** Loaded credentials: PEM text ready for a TLS handshake. */
export interface TlsCreds extends TlsCredsSpec {
  /** `ca-cert.pem`: the CA certificates peers are verified against. */
  readonly caCert: string;
  /** `server-cert.pem` or `client-cert.pem`; absent for a client without a certificate. */
  readonly cert?: string;
  /** The private key matching `cert`. */
  readonly key?: string;
}

export { TlsCredsError } from "./errors.ts";

/** The only object type Ferry knows. */
const OBJECT_TYPE = "tls-creds-x509";
const KEYS = new Set(["id", "dir", "endpoint", "verify-peer"]);

/**
 * Parses the text after `--object`, e.g.
 * `tls-creds-x509,id=tls0,dir=/etc/ferry/pki,endpoint=server,verify-peer=on`
 * (`,,` stands for a comma inside a value, as in QEMU). Throws TlsCredsError naming the
 * problem: missing id or dir, bad endpoint or verify-peer value, unknown or repeated key.
 */
export function parseTlsObject(spec: string): TlsCredsSpec {
  const [typeName, ...pairs] = splitOptions(spec);
  const type = typeName.startsWith("qom-type=") ? typeName.slice("qom-type=".length) : typeName;
  if (type === "" || type.includes("=")) {
    throw new TlsCredsError(`object type missing in '${spec}' (expected ${OBJECT_TYPE},...)`);
  }
  if (type !== OBJECT_TYPE) {
    throw new TlsCredsError(`Invalid object type '${type}' (only ${OBJECT_TYPE} is supported)`);
  }
  const values = new Map<string, string>();
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    const key = eq < 0 ? pair : pair.slice(0, eq);
    if (!KEYS.has(key)) throw new TlsCredsError(`Property '${OBJECT_TYPE}.${key}' not found`);
    if (eq < 0) throw new TlsCredsError(`Expected '=' after parameter '${key}'`);
    if (values.has(key)) throw new TlsCredsError(`Parameter '${key}' is given more than once`);
    values.set(key, pair.slice(eq + 1));
  }
  const id = values.get("id") ?? "";
  if (id === "") throw new TlsCredsError("Parameter 'id' is missing");
  if (!/^[A-Za-z][A-Za-z0-9._-]*$/.test(id)) {
    throw new TlsCredsError(`Parameter 'id' expects an identifier, got '${id}'`);
  }
  const dir = values.get("dir") ?? "";
  if (dir === "") throw new TlsCredsError("Parameter 'dir' is missing");
  const endpoint = values.get("endpoint") ?? "client";
  if (endpoint !== "server" && endpoint !== "client") {
    throw new TlsCredsError(
      `Parameter 'endpoint' does not accept value '${endpoint}' (expected server or client)`,
    );
  }
  return { id, dir, endpoint, verifyPeer: parseBool("verify-peer", values.get("verify-peer")) };
}

/**
 * Reads and checks the PEM files of `spec` from its directory. Errors name the file, e.g.
 * `Unable to access credentials /dir/server-cert.pem: No such file or directory`.
 */
export async function loadTlsCreds(spec: TlsCredsSpec): Promise<TlsCreds> {
  const caPath = credsPath(spec.dir, "ca-cert.pem");
  const caCert = await readRequired(caPath);
  const certPath = credsPath(spec.dir, `${spec.endpoint}-cert.pem`);
  const keyPath = credsPath(spec.dir, `${spec.endpoint}-key.pem`);
  const required = spec.endpoint === "server";
  const cert = required ? await readRequired(certPath) : await readOptional(certPath);
  const key = required || cert !== undefined
    ? await readRequired(keyPath)
    : await readOptional(keyPath);
  if (key !== undefined && cert === undefined) await readRequired(certPath); // names it
  const crypto = await import("node:crypto");
  checkCertificates(crypto, caPath, caCert);
  if (cert !== undefined && key !== undefined) {
    checkKeyPair(crypto, certPath, cert, keyPath, key);
  }
  const creds: TlsCreds = { ...spec, caCert };
  return cert === undefined ? creds : { ...creds, cert, key };
}

/** Loaded credentials by id: what `tls-creds` names. */
export class TlsCredsRegistry {
  readonly #byId = new Map<string, TlsCreds>();

  /** Parses and loads every `--object` text in order; the first failure throws. */
  static async fromObjects(specs: readonly string[]): Promise<TlsCredsRegistry> {
    const registry = new TlsCredsRegistry();
    for (const spec of specs) registry.add(await loadTlsCreds(parseTlsObject(spec)));
    return registry;
  }

  /** Adds `creds`; an id already present throws TlsCredsError. */
  add(creds: TlsCreds): void {
    if (this.#byId.has(creds.id)) {
      throw new TlsCredsError(`attempt to add duplicate object id '${creds.id}'`);
    }
    this.#byId.set(creds.id, creds);
  }

  /** The credentials named `id`; throws TlsCredsError `No TLS credentials with id 'x'`. */
  get(id: string): TlsCreds {
    const creds = this.#byId.get(id);
    if (creds === undefined) throw new TlsCredsError(`No TLS credentials with id '${id}'`);
    return creds;
  }

  /** Whether credentials named `id` exist. */
  has(id: string): boolean {
    return this.#byId.has(id);
  }

  /** Every id, in the order added. */
  ids(): string[] {
    return [...this.#byId.keys()];
  }
}

/** Splits on single commas; `,,` is a literal comma. */
function splitOptions(spec: string): string[] {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < spec.length; i++) {
    const ch = spec[i];
    if (ch !== ",") {
      current += ch;
    } else if (spec[i + 1] === ",") {
      current += ",";
      i++;
    } else {
      parts.push(current);
      current = "";
    }
  }
  parts.push(current);
  return parts;
}

function parseBool(name: string, value: string | undefined): boolean {
  if (value === undefined) return true;
  if (["on", "yes", "true"].includes(value)) return true;
  if (["off", "no", "false"].includes(value)) return false;
  throw new TlsCredsError(`Parameter '${name}' expects 'on' or 'off', got '${value}'`);
}

function credsPath(dir: string, file: string): string {
  return dir.endsWith("/") ? `${dir}${file}` : `${dir}/${file}`;
}

/** Reads `path`; any failure throws a TlsCredsError naming it. */
async function readRequired(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw new TlsCredsError(`Unable to access credentials ${path}: ${osErrorText(err)}`);
  }
}

/** Reads `path`; undefined if there is no such file, any other failure throws. */
async function readOptional(path: string): Promise<string | undefined> {
  try {
    await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
  }
  return await readRequired(path);
}

/** Parses every certificate in a PEM bundle; at least one must be there. */
function checkCertificates(
  crypto: NodeCrypto,
  path: string,
  pem: string,
): InstanceType<NodeCrypto["X509Certificate"]>[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g);
  if (blocks === null) {
    throw new TlsCredsError(`Unable to import certificate ${path}: no PEM certificate in it`);
  }
  return blocks.map((block) => {
    try {
      return new crypto.X509Certificate(block);
    } catch (err) {
      throw new TlsCredsError(`Unable to import certificate ${path}: ${osErrorText(err)}`);
    }
  });
}

function checkKeyPair(
  crypto: NodeCrypto,
  certPath: string,
  cert: string,
  keyPath: string,
  key: string,
): void {
  const [leaf] = checkCertificates(crypto, certPath, cert);
  let privateKey;
  try {
    privateKey = crypto.createPrivateKey(key);
  } catch (err) {
    throw new TlsCredsError(`Unable to import private key ${keyPath}: ${osErrorText(err)}`);
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsCredsError(`Private key ${keyPath} does not match certificate ${certPath}`);
  }
}
