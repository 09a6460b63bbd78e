// The count history as an inline SVG step chart (the count holds between points), with the
// same figures in a table for screen readers and anyone who wants the numbers.

import { formatCount, formatTime, h, svg } from "./dom.js";

const HEIGHT = 200;
const MAX_WIDTH = 640;
const MIN_WIDTH = 280;
const PAD = { left: 56, right: 12, top: 12, bottom: 28 };

function scale(domainMin, domainMax, rangeMin, rangeMax) {
  const span = domainMax - domainMin || 1;
  return (v) => rangeMin + ((v - domainMin) / span) * (rangeMax - rangeMin);
}

const shortDate = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

/** points: [{at, total_count, entered, left}] in time order; `until` ends the last step. */
export function historyChart(points, { since, until, label }) {
  // Drawn at the width it is shown at (its text stays legible on a phone).
  const width = Math.max(MIN_WIDTH, Math.min(MAX_WIDTH, document.documentElement.clientWidth - 32));
  const times = points.map((p) => new Date(p.at).getTime());
  const start = Math.min(new Date(since).getTime(), ...times);
  const end = Math.max(new Date(until).getTime(), ...times);
  const counts = points.map((p) => p.total_count);
  const top = Math.max(1, ...counts);
  const x = scale(start, end, PAD.left, width - PAD.right);
  const y = scale(0, top, HEIGHT - PAD.bottom, PAD.top);
  let d = "";
  points.forEach((p, i) => {
    const px = x(times[i]).toFixed(1);
    const py = y(p.total_count).toFixed(1);
    d += i === 0 ? `M${px},${py}` : `H${px}V${py}`;
  });
  if (points.length) d += `H${x(end).toFixed(1)}`;
  const first = points[0];
  const last = points.at(-1);
  const summary = points.length
    ? `From ${formatCount(first.total_count)} on ${formatTime(first.at)} to ${formatCount(
      last.total_count)} on ${formatTime(last.at)}; highest ${formatCount(top)}.`
    : "No changes of the count in this period.";
  const titleId = `chart-title-${Math.random().toString(36).slice(2)}`;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${HEIGHT}`, class: "chart", role: "img",
    "aria-labelledby": titleId },
    svg("title", { id: titleId }, `${label}. ${summary}`),
    svg("line", { x1: PAD.left, x2: width - PAD.right, y1: y(0), y2: y(0), class: "axis" }),
    svg("line", { x1: PAD.left, x2: PAD.left, y1: PAD.top, y2: y(0), class: "axis" }),
    svg("text", { x: PAD.left - 6, y: y(top) + 4, "text-anchor": "end", class: "tick" },
      formatCount(top)),
    svg("text", { x: PAD.left - 6, y: y(0), "text-anchor": "end", class: "tick" }, "0"),
    svg("text", { x: PAD.left, y: HEIGHT - 8, class: "tick" }, shortDate.format(start)),
    svg("text", { x: width - PAD.right, y: HEIGHT - 8, "text-anchor": "end", class: "tick" },
      shortDate.format(end)),
    d ? svg("path", { d, class: "line" }) : null,
    ...points.map((p, i) => svg("circle", { cx: x(times[i]), cy: y(p.total_count), r: 2.5,
      class: "dot" })));
  const rows = points.slice(-50).reverse().map((p) => h("tr", {},
    h("td", {}, formatTime(p.at)), h("td", { class: "num" }, formatCount(p.total_count)),
    h("td", { class: "num" }, `+${formatCount(p.entered)}`),
    h("td", { class: "num" }, `−${formatCount(p.left)}`)));
  const table = h("details", {}, h("summary", {}, "Show as a table (latest 50 points)"),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Minute", "Contacts", "Entered", "Left"].map((c) =>
        h("th", { scope: "col", text: c })))),
      h("tbody", {}, rows))));
  return h("figure", { class: "history" }, chart,
    h("figcaption", { class: "muted small" }, summary), points.length ? table : null);
}
