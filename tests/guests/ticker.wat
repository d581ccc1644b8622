;; The acceptance checks' guest (shared/acceptance/guests/ticker.wat), copied here so that the
;; tests build it from source in a clone of this repository alone (wasm_guest_migrate_test.ts).
;; A WASI preview1 command that never ends: it walks an 8 MiB region of its memory,
;; adding 1 to a word in every 4 KiB page, and after each full walk prints one line
;; "tick N\n" to stdout with N = 1, 2, 3, ... Between two lines it makes no call at all
;; (2048 pages per walk, 64 walks per line), so a runtime that can only stop it at a call
;; must find another safe point. Its output lets a reader check continuity: no gap, no
;; repeat, no reordering.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 160)            ;; 10 MiB: 8 MiB walked + scratch below 1 MiB
  (global $tick (mut i64) (i64.const 0))
  ;; scratch: iovec at 0 (ptr, len), nwritten at 8, text at 16..48
  (func $print_tick (param $n i64)
    (local $p i32) (local $len i32)
    ;; digits are written backwards ending at 47, then "tick " is put before them
    (i32.store8 (i32.const 47) (i32.const 10))          ;; '\n'
    (local.set $p (i32.const 47))
    (block $done
      (loop $digits
        (local.set $p (i32.sub (local.get $p) (i32.const 1)))
        (i32.store8 (local.get $p)
          (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $n) (i64.const 10)))))
        (local.set $n (i64.div_u (local.get $n) (i64.const 10)))
        (br_if $digits (i64.ne (local.get $n) (i64.const 0)))))
    (local.set $p (i32.sub (local.get $p) (i32.const 5)))
    (i32.store8 (local.get $p) (i32.const 116))                             ;; t
    (i32.store8 (i32.add (local.get $p) (i32.const 1)) (i32.const 105))     ;; i
    (i32.store8 (i32.add (local.get $p) (i32.const 2)) (i32.const 99))      ;; c
    (i32.store8 (i32.add (local.get $p) (i32.const 3)) (i32.const 107))     ;; k
    (i32.store8 (i32.add (local.get $p) (i32.const 4)) (i32.const 32))     ;; ' '
    (local.set $len (i32.sub (i32.const 48) (local.get $p)))
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (local $addr i32) (local $walk i32)
    (loop $forever
      (local.set $walk (i32.const 0))
      (loop $walks
        (local.set $addr (i32.const 0x100000))             ;; 1 MiB .. 9 MiB
        (loop $pages
          (i32.store (local.get $addr) (i32.add (i32.load (local.get $addr)) (i32.const 1)))
          (local.set $addr (i32.add (local.get $addr) (i32.const 4096)))
          (br_if $pages (i32.lt_u (local.get $addr) (i32.const 0x900000))))
        (local.set $walk (i32.add (local.get $walk) (i32.const 1)))
        (br_if $walks (i32.lt_u (local.get $walk) (i32.const 64))))
      (global.set $tick (i64.add (global.get $tick) (i64.const 1)))
      (call $print_tick (global.get $tick))
      (br $forever))))
