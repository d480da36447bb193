// @ts-check
// The event's report (`GET .../report`): a table, and the CSV download (`?format=csv`).
import { paths } from "../lib/api.js";
import { el } from "../lib/dom.js";

const COLUMNS = [
  ["candidate_id", "Candidate"],
  ["name", "Name"],
  ["expected_minutes", "Expected min"],
  ["recorded_minutes", "Recorded min"],
  ["coverage_pct", "Coverage %"],
  ["gaps", "Gaps"],
  ["flags", "Flags"],
  ["recordings_expected", "Recordings expected"],
  ["recordings_arrived", "Arrived"],
  ["recordings_missing", "Missing"],
  ["recordings_failed", "Failed"],
];

const cell = (value) => {
  if (Array.isArray(value)) return String(value.length);
  if (typeof value === "number" && !Number.isInteger(value)) return value.toFixed(1);
  return value == null ? "" : String(value);
};

export function reportTable(report) {
  const head = el("tr", {}, ...COLUMNS.map(([, label]) => el("th", { text: label })));
  const rows = (report.candidates || []).map((c) =>
    el("tr", { data: { candidate: c.candidate_id } }, ...COLUMNS.map(([key]) => el("td", { text: cell(c[key]) }))),
  );
  return el("table", { class: "report" }, el("thead", {}, head), el("tbody", {}, ...rows));
}

/** Fetch the CSV with the page's credential and hand it to the browser as a download. */
export async function downloadCsv(api, eventId) {
  const blob = await api.blob(paths.report(eventId, "csv"));
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: `report-${eventId}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}
