/**
 * Issue 23, item 4: a drive's dirty bitmaps through the real app of an in-process agent:
 * `GET /drives` lists them with their counts, `POST /drives/{id}/bitmaps` makes one (201, 409
 * when it exists, 404 for an unknown drive, 400 for a bad name), `DELETE` removes one (204,
 * 404); a bitmap counts the blocks written after it was made, and only those.
 */
import assert from "node:assert/strict";
import { DriveFile } from "../../adapters/disk/drive.ts";
import { withAgent } from "../contract_fixture.ts";

const BLOCK = 65536;
/** The drive's last block is short: 4 KiB less. */
const LAST = BLOCK - 4096;

Deno.test("drives: dirty bitmaps made, listed with their counts, removed; problems", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await withAgent(async ({ agent, request }) => {
      const [drive] = agent.machine.shared.drives!;
      const file = new DriveFile(drive);
      try {
        file.guestWrite(0, new Uint8Array(4096)); // before any bitmap: counted by none
        const made = await request("POST", "/drives/disk0/bitmaps", { name: "b0" });
        assert.equal(made.status, 201, made.text);
        assert.deepEqual(made.body, { name: "b0", count: 0, granularity: BLOCK });
        assert.equal(made.headers.get("location"), "/drives/disk0/bitmaps/b0");
        // A write across a block boundary marks two blocks; the last block is short.
        file.guestWrite(BLOCK - 100, new Uint8Array(200));
        file.guestWrite(3 * BLOCK + 10, new Uint8Array(10));
        const later = await request("POST", "/drives/disk0/bitmaps", { name: "b1" });
        assert.equal(later.status, 201);
        file.guestWrite(3 * BLOCK, new Uint8Array(1));
        const list = await request("GET", "/drives");
        assert.equal(list.status, 200);
        assert.deepEqual(list.body[0]["dirty-bitmaps"], [
          { name: "b0", count: 2 * BLOCK + LAST, granularity: BLOCK },
          { name: "b1", count: LAST, granularity: BLOCK },
        ]);

        const again = await request("POST", "/drives/disk0/bitmaps", { name: "b0" });
        assert.equal(again.status, 409);
        assert.equal(again.headers.get("content-type"), "application/problem+json");
        assert.equal(again.body.detail, "Bitmap already exists: b0");
        const noDrive = await request("POST", "/drives/nope/bitmaps", { name: "x" });
        assert.equal(noDrive.status, 404);
        assert.equal(noDrive.body.detail, "Cannot find device='nope'");
        for (const name of ["", "has space", "x".repeat(65)]) {
          const bad = await request("POST", "/drives/disk0/bitmaps", { name });
          assert.equal(bad.status, 400, `name '${name}'`);
        }
        for (let i = 2; i < 8; i++) {
          assert.equal(
            (await request("POST", "/drives/disk0/bitmaps", { name: `b${i}` })).status,
            201,
          );
        }
        const full = await request("POST", "/drives/disk0/bitmaps", { name: "b8" });
        assert.equal(full.status, 409);
        assert.match(full.body.detail, /has 8 dirty bitmaps already/);

        assert.equal((await request("DELETE", "/drives/disk0/bitmaps/b0")).status, 204);
        const gone = await request("DELETE", "/drives/disk0/bitmaps/b0");
        assert.equal(gone.status, 404);
        assert.equal(gone.body.detail, "Dirty bitmap 'b0' not found");
        assert.equal((await request("DELETE", "/drives/nope/bitmaps/b1")).status, 404);
        const names = (await request("GET", "/drives")).body[0]["dirty-bitmaps"].map(
          (b: { name: string }) => b.name,
        );
        assert.deepEqual(names, ["b1", "b2", "b3", "b4", "b5", "b6", "b7"]);
        // A slot made again starts empty.
        assert.deepEqual(
          (await request("POST", "/drives/disk0/bitmaps", { name: "b0" })).body,
          { name: "b0", count: 0, granularity: BLOCK },
        );
      } finally {
        file.close();
      }
    }, { drives: [{ id: "disk0", file: `${dir}/d.img`, size: 3 * BLOCK + LAST }] });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
