import assert from "node:assert/strict";
import { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import { ChannelConnectError, connectChannel } from "../../adapters/channels/connect.ts";
import { ChannelClosedError } from "../../adapters/channels/errors.ts";
import { ExecChannel } from "../../adapters/channels/exec.ts";
import { listenChannel } from "../../adapters/channels/listen.ts";
import { drainAndHash, pseudoRandomBytes, readAll, sha256, within } from "../channels_helpers.ts";

const MiB = 1024 * 1024;

/** Shell-quotes a path for `sh -c`. */
function q(path: string): string {
  return `'${path.replaceAll("'", `'\\''`)}'`;
}

Deno.test("exec: write through `cat > FILE`, read back through incoming `cat FILE`", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/guest's stream.bin`;
  try {
    const data = pseudoRandomBytes(8 * MiB + 3, 11);
    const out = await connectChannel(`exec:cat > ${q(file)}`);
    assert.ok(out instanceof ExecChannel);
    try {
      const writer = new ChannelWriter(out);
      for (let off = 0; off < data.length; off += MiB) {
        await writer.write(data.subarray(off, off + MiB));
      }
      await out.closeWrite(); // resolves after cat has exited: the file is complete now
      assert.equal(writer.bytesWritten, data.length);
      assert.equal((await Deno.stat(file)).size, data.length);
      assert.equal((await out.waitExit()).success, true);
    } finally {
      out.close();
      await out.waitExit();
    }

    const listener = await listenChannel(`exec:cat ${q(file)}`);
    try {
      assert.equal(listener.uri, `exec:cat ${q(file)}`);
      const inc = await listener.accept();
      try {
        const got = await drainAndHash(inc);
        assert.equal(got.bytes, data.length);
        assert.equal(got.hash, sha256(data));
        await assert.rejects(inc.write(new Uint8Array(1)), ChannelClosedError);
        // A second accept waits until the listener closes, then rejects.
        const second = listener.accept();
        assert.equal(await within(second, 50), "timeout");
        listener.close();
        await assert.rejects(second, ChannelClosedError);
      } finally {
        inc.close();
        await (inc as ExecChannel).waitExit();
      }
    } finally {
      listener.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec: gzip pipeline is complete when closeWrite resolves", async () => {
  const dir = await Deno.makeTempDir();
  const gz = `${dir}/guest.gz`;
  try {
    const data = pseudoRandomBytes(4 * MiB, 5);
    data.fill(0, MiB, 3 * MiB); // some compressible stretch
    const out = await connectChannel(`exec:gzip -c > ${q(gz)}`);
    try {
      await new ChannelWriter(out).write(data);
      await out.closeWrite();
    } finally {
      out.close();
      await (out as ExecChannel).waitExit();
    }
    const listener = await listenChannel(`exec:gzip -dc ${q(gz)}`);
    const inc = await listener.accept();
    try {
      assert.equal((await drainAndHash(inc)).hash, sha256(data));
    } finally {
      inc.close();
      listener.close();
      await (inc as ExecChannel).waitExit();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec: outgoing reads come from the command's stdout", async () => {
  const ch = new ExecChannel("tr a-z A-Z", "outgoing");
  try {
    await new ChannelWriter(ch).write(new TextEncoder().encode("hello ferry"));
    await ch.closeWrite();
    assert.equal(new TextDecoder().decode(await readAll(ch)), "HELLO FERRY");
  } finally {
    ch.close();
    await ch.waitExit();
  }
});

Deno.test("exec: a failing command makes closeWrite reject with its status and stderr", async () => {
  const dir = await Deno.makeTempDir();
  const ch = new ExecChannel(`cat > ${q(`${dir}/no/such/dir/f`)}`, "outgoing");
  try {
    await ch.write(new Uint8Array(16)).catch(() => {}); // may already see the broken pipe
    await assert.rejects(
      ch.closeWrite(),
      (err: unknown) =>
        err instanceof Error && /^exec command 'cat > .*' exited with status [1-9]\d*: /.test(
          err.message,
        ) && /no\/such\/dir/.test(err.message),
    );
    const exit = await ch.waitExit();
    assert.equal(exit.success, false);
  } finally {
    ch.close();
    await ch.waitExit();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec: a command that stopped reading breaks writes; close kills a hung one", async () => {
  const quitter = new ExecChannel("exit 0", "outgoing");
  try {
    await quitter.waitExit();
    const writer = new ChannelWriter(quitter);
    await assert.rejects(
      writer.write(new Uint8Array(4 * MiB)),
      /^BrokenPipeError: exec command .exit 0. stopped reading its input: exited with status 0$/,
    );
    assert.ok(writer.error instanceof Error);
  } finally {
    quitter.close();
    await quitter.waitExit();
  }

  const hung = new ExecChannel("sleep 30", "outgoing");
  const writing = hung.write(new Uint8Array(4 * MiB)); // sleep never reads: blocks on the pipe
  assert.equal(await within(writing, 100), "timeout");
  hung.close();
  hung.close();
  const exit = await hung.waitExit();
  await assert.rejects(writing, ChannelClosedError);
  assert.equal(exit.signal, "SIGKILL", "killed, not left to sleep its 30 s");
  await assert.rejects(hung.read(new Uint8Array(1)), ChannelClosedError);
});

Deno.test("file: round trip; incoming listener yields one channel", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/guest.mig`;
  try {
    await Deno.writeTextFile(path, "old contents that must be truncated away ".repeat(1000));
    const data = pseudoRandomBytes(5 * MiB + 1, 9);
    const out = await connectChannel(`file:${path}`);
    try {
      const writer = new ChannelWriter(out);
      await writer.write(data.subarray(0, 100));
      await writer.write(data.subarray(100));
      assert.equal(await out.read(new Uint8Array(8)), null); // no return path on a file
      await out.closeWrite();
      await assert.rejects(out.write(new Uint8Array(1)), ChannelClosedError);
    } finally {
      out.close();
      out.close();
    }
    assert.equal((await Deno.stat(path)).size, data.length);

    const listener = await listenChannel(`file:${path}`);
    try {
      assert.equal(listener.uri, `file:${path}`);
      const inc = await listener.accept();
      try {
        assert.equal((await drainAndHash(inc)).hash, sha256(data));
        await assert.rejects(inc.write(new Uint8Array(1)), ChannelClosedError);
      } finally {
        inc.close();
      }
      const second = listener.accept();
      listener.close();
      await assert.rejects(second, ChannelClosedError);
    } finally {
      listener.close();
    }

    // Closing the listener before accepting closes the file it opened (sanitizers check).
    (await listenChannel(`file:${path}`)).close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("file: opening errors are clear", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      listenChannel(`file:${dir}/missing`),
      (err: unknown) =>
        err instanceof ChannelConnectError &&
        err.message === `Failed to open ${dir}/missing: No such file or directory`,
    );
    await assert.rejects(
      connectChannel(`file:${dir}/no/dir/out`),
      (err: unknown) =>
        err instanceof ChannelConnectError &&
        err.message === `Failed to open ${dir}/no/dir/out: No such file or directory`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
