/**
 * Run as its own process by browser.ts with TMPDIR set to the cache directory:
 * npm:@sparticuz/chromium unpacks into os.tmpdir(), and a test process's environment is
 * shared by every test module running in it, so it is not changed there. Prints the path.
 *
 * @module
 */
import chromium from "@sparticuz/chromium";

console.log(await chromium.executablePath());
