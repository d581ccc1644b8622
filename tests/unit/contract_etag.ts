/**
 * Issue 3, item 4: strong ETags on GET/PATCH /parameters and /capabilities, and If-Match
 * honoured on PATCH (412 problem on a stale tag, nothing changed).
 */
import assert from "node:assert/strict";
import { withAgent } from "../contract_fixture.ts";

const CASES = [
  { path: "/parameters", change: { "downtime-limit": 500 }, back: { "downtime-limit": 300 } },
  { path: "/capabilities", change: { events: true }, back: { events: false } },
];

for (const { path, change, back } of CASES) {
  Deno.test(`${path}: ETag follows the content; If-Match guards PATCH`, async () => {
    await withAgent(async ({ request }) => {
      const first = await request("GET", path);
      const tag = first.headers.get("etag")!;
      assert.match(tag, /^"[A-Za-z0-9_-]+"$/, "a strong tag");
      assert.equal((await request("GET", path)).headers.get("etag"), tag, "stable while unchanged");

      const patched = await request("PATCH", path, change, { "if-match": tag });
      assert.equal(patched.status, 200, patched.text);
      const newTag = patched.headers.get("etag")!;
      assert.notEqual(newTag, tag);
      assert.equal((await request("GET", path)).headers.get("etag"), newTag);

      const stale = await request("PATCH", path, back, { "if-match": tag });
      assert.equal(stale.status, 412);
      assert.equal(stale.headers.get("content-type"), "application/problem+json");
      assert.match(stale.body.detail, /^If-Match does not match the current/);
      assert.deepEqual(
        (await request("GET", path)).body,
        patched.body,
        "a stale PATCH changes nothing",
      );

      const weak = await request("PATCH", path, back, { "if-match": `W/${newTag}` });
      assert.equal(weak.status, 412, "If-Match uses the strong comparison");
      const listed = await request("PATCH", path, back, { "if-match": `"other", ${newTag}` });
      assert.equal(listed.status, 200, "any tag of a list may match");
      assert.equal(listed.headers.get("etag"), tag, "equal content, equal tag");
      const any = await request("PATCH", path, change, { "if-match": "*" });
      assert.equal(any.status, 200);
      const none = await request("PATCH", path, back);
      assert.equal(none.status, 200, "without If-Match the PATCH is unconditional");
    });
  });
}
