// Runs test/unit/*.test.ts with Node's test runner.
//   node scripts/test-unit.mjs [FILTER]   only the files whose name contains FILTER
import { runSuite } from "./run-tests.mjs";

await runSuite("unit", process.argv[2]);
