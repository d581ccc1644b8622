/**
 * Unit tests in one module: the contract and the domain around it: options, errors, events, seed
 * answers, ETags, the state machine, progress, the dashboard model, access checks, the import
 * graph, the bench helpers. Pure tests (no agent process) live in tests/unit/ and run as a few
 * modules like this one, not one module each: `deno test` spends ~0.3 s of CPU starting every test
 * module (a fresh runtime), which for these small files was a sixth of the suite's CPU. One runs
 * alone with `deno test -A tests/unit/<name>.ts`.
 *
 * @module
 */
import "./unit/api_access.ts";
import "./unit/api_token.ts";
import "./unit/bench_clients.ts";
import "./unit/bench_measure.ts";
import "./unit/bounded_input.ts";
import "./unit/cold_start.ts";
import "./unit/contract_blockers.ts";
import "./unit/contract_colo.ts";
import "./unit/contract_errors.ts";
import "./unit/contract_etag.ts";
import "./unit/contract_migrations.ts";
import "./unit/contract_openapi.ts";
import "./unit/convergence_policy.ts";
import "./unit/dashboard_colo.ts";
import "./unit/dashboard_model.ts";
import "./unit/dashboard_views.ts";
import "./unit/errors_by_code.ts";
import "./unit/events_catalogue.ts";
import "./unit/events_stream.ts";
import "./unit/import_graph.ts";
import "./unit/migration_watch.ts";
import "./unit/no_return.ts";
import "./unit/options_checks.ts";
import "./unit/contract_drive_bitmaps.ts";
import "./unit/progress.ts";
import "./unit/seed_answers.ts";
import "./unit/seed_failures.ts";
import "./unit/seed_sizes.ts";
import "./unit/state_machine.ts";
