// Runs test/e2e/*.test.ts one file at a time with Node's test runner, against the real
// `sotto` binary (SOTTO_BIN, default ../target/debug/sotto) and Chromium at
// /usr/bin/chromium (see test/e2e/harness.ts).
//   node scripts/test-e2e.mjs [FILTER]   only the files whose name contains FILTER
import { runSuite } from "./run-tests.mjs";

await runSuite("e2e", process.argv[2], ["--test-concurrency=1"]);
