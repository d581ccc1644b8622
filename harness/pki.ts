/**
 * A throw-away PKI made with openssl when the tests or the bench need one (EC P-256, SANs for
 * 127.0.0.1 and localhost), laid out in QEMU's tls-creds-x509 directories, and loaded as the
 * agent loads its credentials.
 *
 * @module
 */
import { loadTlsCreds, parseTlsObject, type TlsCreds } from "../adapters/channels/tls_creds.ts";

/** Runs openssl (from PATH) in `cwd`; throws with its stderr on failure. */
export async function openssl(cwd: string, ...args: string[]): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
      .output();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new Error(
      "openssl is missing: the TLS tests make their certificates with it " +
        "('apt-get install -y openssl')",
    );
  }
  if (!out.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** Makes a self-signed CA `name`-cert.pem / `name`-key.pem in `dir`. */
export async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(
    dir,
    "req",
    "-x509",
    ...EC,
    "-keyout",
    `${name}-key.pem`,
    "-out",
    `${name}-cert.pem`,
    "-subj",
    `/CN=Ferry test ${name}`,
    "-days",
    "2",
  );
}

let nextSerial = 0;

/** Issues `out`-cert.pem/`out`-key.pem signed by CA `ca`, for the given SANs. */
export async function issue(dir: string, ca: string, out: string, cn: string, sans: string) {
  await openssl(
    dir,
    "req",
    "-new",
    ...EC,
    "-keyout",
    `${out}-key.pem`,
    "-out",
    `${out}.csr`,
    "-subj",
    `/CN=${cn}`,
  );
  await Deno.writeTextFile(
    `${dir}/${out}.ext`,
    `subjectAltName=${sans}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n` +
      "extendedKeyUsage=serverAuth,clientAuth\n",
  );
  await openssl(
    dir,
    "x509",
    "-req",
    "-in",
    `${out}.csr`,
    "-CA",
    `${ca}-cert.pem`,
    "-CAkey",
    `${ca}-key.pem`,
    "-set_serial",
    String(Date.now() * 1000 + nextSerial++ % 1000),
    "-days",
    "2",
    "-extfile",
    `${out}.ext`,
    "-out",
    `${out}-cert.pem`,
  );
}

/** Copies the CA and a leaf pair into a QEMU-layout credentials directory. */
export async function credsDir(root: string, name: string, ca: string, leaf?: [string, string]) {
  const dir = `${root}/${name}`;
  await Deno.mkdir(dir);
  await Deno.copyFile(`${root}/work/${ca}-cert.pem`, `${dir}/ca-cert.pem`);
  if (leaf !== undefined) {
    await Deno.copyFile(`${root}/work/${leaf[0]}-cert.pem`, `${dir}/${leaf[1]}-cert.pem`);
    await Deno.copyFile(`${root}/work/${leaf[0]}-key.pem`, `${dir}/${leaf[1]}-key.pem`);
  }
  return dir;
}

/** Server and client credential directories for a trusted pair and an untrusted client. */
export interface PkiDirs {
  root: string;
  server: string;
  client: string;
  /** A client whose certificate an unknown CA signed. */
  untrustedClient: string;
}

/**
 * Makes `root`/work with CA A (trusted) and CA B (untrusted) and their leaves: from A `srv`
 * (server), `cli` (client) and `named` (only "ferry-dst"); from B `srvB` and `cliB`. All
 * for 127.0.0.1 and localhost but `named`.
 */
export async function makeCas(root: string): Promise<void> {
  const work = `${root}/work`;
  await Deno.mkdir(work);
  await Promise.all([makeCa(work, "caA"), makeCa(work, "caB")]);
  const local = "IP:127.0.0.1,DNS:localhost";
  await Promise.all([
    issue(work, "caA", "srv", "server", local),
    issue(work, "caA", "cli", "client", local),
    issue(work, "caA", "named", "ferry-dst", "DNS:ferry-dst"),
    issue(work, "caB", "srvB", "server", local),
    issue(work, "caB", "cliB", "client", local),
  ]);
}

/** Makes CA A (trusted) and CA B (untrusted), a server, a client and an untrusted client. */
export async function makePkiDirs(): Promise<PkiDirs> {
  const root = await Deno.makeTempDir({ prefix: "ferry-pki-" });
  await makeCas(root);
  return {
    root,
    server: await credsDir(root, "server", "caA", ["srv", "server"]),
    client: await credsDir(root, "client", "caA", ["cli", "client"]),
    untrustedClient: await credsDir(root, "untrusted", "caA", ["cliB", "client"]),
  };
}

/**
 * `make` at most once per test module (each test file runs in its own isolate): the PKI its
 * tests share, so each test does not pay for a dozen openssl runs. `root` is removed when the
 * module unloads.
 */
export function perModule<T extends { root: string }>(make: () => Promise<T>): () => Promise<T> {
  let made: Promise<T> | undefined;
  return () => {
    if (!made) {
      made = make();
      made.then((p) =>
        globalThis.addEventListener("unload", () => {
          try {
            Deno.removeSync(p.root, { recursive: true });
          } catch { /* already gone */ }
        })
      );
    }
    return made;
  };
}

/** This test module's PKI directories (see perModule). */
export const modulePkiDirs: () => Promise<PkiDirs> = perModule(makePkiDirs);

/** A throw-away PKI made with openssl: CA "A" (trusted) and CA "B" (untrusted). */
export interface Pki {
  root: string;
  /** Server creds (CA A, cert for 127.0.0.1/localhost), verify-peer on and off. */
  server: TlsCreds;
  serverNoVerify: TlsCreds;
  /** Server whose certificate names only "ferry-dst". */
  serverNamed: TlsCreds;
  /** Server whose certificate CA B signed. */
  serverUntrusted: TlsCreds;
  client: TlsCreds;
  clientUntrusted: TlsCreds;
  clientNoCert: TlsCreds;
  clientNoVerify: TlsCreds;
}

/** Makes the PKI in a temp dir (the caller removes `root`). */
export async function makePki(): Promise<Pki> {
  const root = await Deno.makeTempDir({ prefix: "ferry-tls-" });
  await makeCas(root);
  const load = async (name: string, ca: string, leaf: [string, string] | undefined, obj: string) =>
    await loadTlsCreds(
      parseTlsObject(
        `tls-creds-x509,id=${name},dir=${await credsDir(root, name, ca, leaf)},${obj}`,
      ),
    );
  return {
    root,
    server: await load("server", "caA", ["srv", "server"], "endpoint=server"),
    serverNoVerify: await load(
      "serverNoVerify",
      "caA",
      ["srv", "server"],
      "endpoint=server,verify-peer=off",
    ),
    serverNamed: await load("serverNamed", "caA", ["named", "server"], "endpoint=server"),
    serverUntrusted: await load("serverUntrusted", "caA", ["srvB", "server"], "endpoint=server"),
    client: await load("client", "caA", ["cli", "client"], "endpoint=client"),
    clientUntrusted: await load("clientUntrusted", "caA", ["cliB", "client"], "endpoint=client"),
    clientNoCert: await load("clientNoCert", "caA", undefined, "endpoint=client"),
    clientNoVerify: await load(
      "clientNoVerify",
      "caA",
      ["cli", "client"],
      "endpoint=client,verify-peer=off",
    ),
  };
}
