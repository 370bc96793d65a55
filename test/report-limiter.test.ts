import assert from "node:assert/strict";
import { test } from "node:test";
import { ReportLimiter } from "../src/report.js";

test("a report limiter lets `max` reports of a kind through per interval, then counts what it held back", (t) => {
  t.mock.timers.enable({ apis: ["Date"], now: 1_000_000 });
  const reports = new ReportLimiter(2, 5000);
  assert.equal(reports.allow("EMFILE"), 0);
  assert.equal(reports.allow("EMFILE"), 0);
  assert.equal(reports.allow("EMFILE"), false);
  assert.equal(reports.allow("EMFILE"), false);
  t.mock.timers.tick(4999);
  assert.equal(reports.allow("EMFILE"), false, "still the same window");
  t.mock.timers.tick(1);
  assert.equal(reports.allow("EMFILE"), 3, "a new window says how many were held back");
  assert.equal(reports.allow("EMFILE"), 0);
  assert.equal(reports.allow("EMFILE"), false);
  assert.equal(reports.allow("ENFILE"), 1, "a new kind is let through at once");
  assert.equal(reports.allow(), 0, "no kind is a kind of its own");
});
