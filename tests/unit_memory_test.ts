/**
 * Unit tests in one module: guest memory: the machine, RAM layout and parsing, dirty log, snapshot,
 * huge pages, device state, workloads, a wasm guest's stdin. Pure tests (no agent process) live
 * in tests/unit/ and run as a few modules like this one, not one module each: `deno test` spends
 * ~0.3 s of CPU starting every test module (a fresh runtime), which for these small files was a
 * sixth of the suite's CPU. One runs alone with `deno test -A tests/unit/<name>.ts`.
 *
 * @module
 */
import "./unit/disk_drive.ts";
import "./unit/output_log_hold.ts";
import "./unit/memory_device_state.ts";
import "./unit/memory_dirty_log.ts";
import "./unit/memory_huge_pages.ts";
import "./unit/memory_machine.ts";
import "./unit/memory_parse.ts";
import "./unit/memory_prefault.ts";
import "./unit/memory_snapshot.ts";
import "./unit/memory_wasm_stdin.ts";
import "./unit/memory_workload.ts";
import "./unit/wasm_drives.ts";
