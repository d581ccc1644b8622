/**
 * The agent's usage text (`deno task start --help`, and after a usage error): every flag,
 * its default and examples. tests/contract_cli_test.ts checks that each option cli.ts
 * parses is named here.
 *
 * @module
 */

/** Printed for `--help` and after a command line the agent cannot start with. */
export const USAGE = `usage: deno task start [OPTIONS]

One Ferry agent: a guest (RAM a vCPU keeps writing) and the API to live-migrate it.

the API
  --listen HOST:PORT|unix:PATH   where the API listens (default 127.0.0.1:8080)
  --api-token TOKEN              API requests need "Authorization: Bearer TOKEN" (not /healthz,
                                 the dashboard page or /docs; default $FERRY_API_TOKEN, else
                                 none; required off loopback)
  --api-host NAME                a further name the API answers to in Host (repeatable)
  --api-tls CERT,KEY[,CLIENT_CA] the API over TLS; with CLIENT_CA, clients need a certificate
  --max-sse-subscribers N        event streams open at once (default 256)
  --log-level debug|info|warn|error   JSON log lines on stderr (default info)

the guest
  --ram SIZE                     the pc.ram block (default 128M; suffixes K M G T)
  --ram-block NAME=SIZE          a further RAM block (repeatable)
  --fill zero|random|pattern     what RAM holds at start (default zero)
  --workload idle|increment[,start=1M,end=100M,rate=PAGES_PER_S]|random[,rate=PAGES_PER_S,hot=FRACTION,clock=on|off]
                                 (both take disk=on|off|WRITES_PER_S: 4 KiB writes to the
                                 drives, on = 1000 a second; both write output records,
                                 random's carry the host clock with clock=on)
                                 what the vCPU does (default idle; increment without a rate
                                 runs as fast as it can, as QEMU's migration-test guest)
  --guest wasm:PATH.wasm[,args=A B,env=K=V]
                                 a WebAssembly (WASI preview1) program as the guest instead
                                 of a --workload (default: none)
  --drive id=ID,file=PATH,size=SIZE
                                 a raw disk image (repeatable; created when missing, else
                                 exactly SIZE bytes; SIZE whole 64K blocks, suffixes as --ram)
  -S                             start with the vCPU paused (QEMU's -S)
  --huge-pages on|off|auto       back RAM with transparent huge pages (default auto:
                                 $FERRY_HUGE_PAGES, else by a measurement on this host)

migration
  --incoming URI|defer           be a destination: tcp:HOST:PORT, unix:PATH, exec:CMD,
                                 file:PATH, or defer (then POST /migrations/incoming)
  --allow-exec                   take exec: URIs (they run shell commands; default off)
  --arrival-digest               a destination keeps the digest of RAM as it arrived for
                                 GET /machine/digest (up to a second copy of RAM; default off,
                                 or $FERRY_ARRIVAL_DIGEST=1)
  --global migration.PROPERTY=VALUE   a QEMU migration property (repeatable)
  --object tls-creds-x509,id=ID,dir=DIR,endpoint=server|client,verify-peer=on|off
                                 TLS credentials for the tls-creds parameter (repeatable)
  --colo-arbiter etcd:URL[,key=KEY][,ttl=SECONDS]
                                 COLO: when the two sides lose each other, the one that
                                 claims KEY in etcd (its JSON gateway at URL, e.g.
                                 http://127.0.0.1:2379) with its lease runs on; the other,
                                 and a side whose lease lapses, stops (default: none, a side
                                 that merely lost the link waits for lost-heartbeat; KEY
                                 ferry/colo, the same on both sides; TTL 5)
  --only-migratable              refuse migration blockers
  -h, --help                     this text (exit status 2, as for a usage error)

examples
  deno task start --listen 127.0.0.1:8081 --ram 256M --incoming tcp:127.0.0.1:4444
  deno task start --ram 256M --fill random --workload increment
  FERRY_API_TOKEN=s3cret deno task start --listen 0.0.0.0:8080 --api-host ferry.example`;

/** `--help` or `-h` was given: print {@link USAGE}. */
export class HelpRequested extends Error {
  constructor() {
    super("help requested");
  }
}
