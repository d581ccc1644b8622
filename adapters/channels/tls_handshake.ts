/**
 * What the TLS client and listener share: the handshake error, the server's verdict bytes
 * (see tls.ts), the default handshake deadline, and texts for certificate failures.
 *
 * @module
 */

/** How long a TLS handshake (including the server's verdict) may take by default. */
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** The server's verdict: the client's certificate (if any was asked for) is accepted. */
export const VERDICT_ACCEPTED = 0x01;
/** The server's verdict: refused; the reason text and end of stream follow. */
export const VERDICT_REJECTED = 0x00;
/** Longest refusal reason sent or read. */
export const MAX_REASON_BYTES = 1024;

/** A TLS handshake failed; `message` starts with "TLS handshake failed: ". */
export class TlsHandshakeError extends Error {
  /** @param reason what went wrong; @param cause the runtime's error, if any. */
  constructor(reason: string, cause?: unknown) {
    super(`TLS handshake failed: ${reason}`, { cause });
    this.name = "TlsHandshakeError";
  }
}

/** Whether a node error `code` is a certificate verification failure. */
export function isCertificateCode(code: string): boolean {
  return code === "ERR_TLS_CERT_ALTNAME_INVALID" || /^(UNABLE_TO_|CERT_|HOSTNAME_)/.test(code) ||
    code.includes("SELF_SIGNED") || code === "INVALID_CA" || code === "INVALID_PURPOSE";
}

/** OpenSSL's texts for the verification codes node reports as `authorizationError`. */
const CERT_TEXT: Record<string, string> = {
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "unable to verify the first certificate",
  UNABLE_TO_GET_ISSUER_CERT: "unable to get issuer certificate",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "unable to get local issuer certificate",
  DEPTH_ZERO_SELF_SIGNED_CERT: "self-signed certificate",
  SELF_SIGNED_CERT_IN_CHAIN: "self-signed certificate in certificate chain",
  CERT_HAS_EXPIRED: "certificate has expired",
  CERT_NOT_YET_VALID: "certificate is not yet valid",
  CERT_SIGNATURE_FAILURE: "certificate signature failure",
  CERT_UNTRUSTED: "certificate not trusted",
  CERT_REJECTED: "certificate rejected",
  INVALID_CA: "invalid CA certificate",
  INVALID_PURPOSE: "unsupported certificate purpose",
};

/** `authorizationError` (a code or an Error) as text, e.g. "certificate has expired (CERT_HAS_EXPIRED)". */
export function certificateErrorText(authorizationError: unknown): string {
  const code = authorizationError instanceof Error
    ? String((authorizationError as { code?: unknown }).code ?? authorizationError.message)
    : String(authorizationError);
  const text = CERT_TEXT[code];
  return text === undefined ? code : `${text} (${code})`;
}
