// Small inline-SVG time charts for the dashboard: no library, no build step,
// nothing from another origin, nothing the strict CSP forbids (no inline
// styles: every colour comes from classes in app.css).
//
// A chart is drawn into a <figure> whose `data-series` attribute holds the
// plotted data as JSON ({name: [[t, value], ...]}) and `data-marks` the
// marks: what the page shows can be read back exactly, by people with
// assistive technology (a text summary goes into the figure's caption) and
// by the browser tests.

const SVG = 'http://www.w3.org/2000/svg';
const HEIGHT = 200;
const PAD = { right: 10, top: 10, bottom: 24 };
// Average glyph width of the 11 px axis font, for the left margin.
const GLYPH_PX = 6.6;

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/** "Nice" upper bound and step for an axis from 0 to `max`. */
function niceScale(max) {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const rough = max / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough);
  return { top: Math.ceil(max / step) * step, step };
}

function clock(t) {
  const d = new Date(t * 1000);
  return String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
}

/**
 * Draws series over [from, to] (unix seconds) into `figure`.
 *   series: [{ name, points: [[t, value]], cls }]   (value: Number)
 *   marks:  [{ t, label, cls }]                      (vertical lines)
 *   format: value → axis label text
 *   step:   true to draw each point as a flat step until the next point
 */
export function drawChart(figure, { series, marks = [], from, to, format = String, step = false, empty = 'No data yet.' }) {
  // Drawn at the figure's own width in CSS pixels (text never scaled);
  // the page redraws on resize.
  const WIDTH = Math.max(260, Math.round(figure.clientWidth || 640));
  figure.chartArgs = arguments[1];
  const span = Math.max(1, to - from);
  const max = Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const { top, step: yStep } = niceScale(max);
  const ticks = [];
  for (let v = 0; v <= top + yStep / 2; v += yStep) ticks.push([v, format(v)]);
  // Room for the longest y label.
  const left = Math.ceil(10 + GLYPH_PX * Math.max(...ticks.map(([, t]) => t.length)));
  const plotW = WIDTH - left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (t) => left + ((t - from) / span) * plotW;
  const y = (v) => PAD.top + plotH - (v / top) * plotH;

  const root = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, class: 'chart', role: 'img' });
  for (const [v, text] of ticks) {
    root.append(svg('line', { x1: left, x2: WIDTH - PAD.right, y1: y(v), y2: y(v), class: 'grid' }));
    const label = svg('text', { x: left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' });
    label.textContent = text;
    root.append(label);
  }
  // Time labels every 6 h (or every 15 min for spans of an hour or two).
  const tick = span > 3 * 3600 ? (WIDTH < 400 ? 12 : 6) * 3600 : 15 * 60;
  for (let t = Math.ceil(from / tick) * tick; t <= to; t += tick) {
    const label = svg('text', { x: x(t), y: HEIGHT - 6, class: 'axis', 'text-anchor': 'middle' });
    label.textContent = clock(t);
    root.append(label);
  }
  for (const m of marks) {
    const line = svg('line', { x1: x(m.t), x2: x(m.t), y1: PAD.top, y2: PAD.top + plotH, class: 'mark ' + (m.cls || '') });
    const title = svg('title');
    title.textContent = m.label;
    line.append(title);
    root.append(line);
  }
  series.forEach((s, i) => {
    if (!s.points.length) return;
    const coords = [];
    s.points.forEach(([t, v], j) => {
      coords.push(`${x(t).toFixed(1)},${y(v).toFixed(1)}`);
      if (step) {
        const next = j + 1 < s.points.length ? s.points[j + 1][0] : to;
        coords.push(`${x(next).toFixed(1)},${y(v).toFixed(1)}`);
      }
    });
    root.append(svg('polyline', { points: coords.join(' '), class: 'line ' + (s.cls || 'c' + (i % 6)) }));
  });

  const data = {};
  for (const s of series) data[s.name] = s.points;
  figure.dataset.series = JSON.stringify(data);
  figure.dataset.marks = JSON.stringify(marks.map((m) => [m.t, m.label]));
  figure.dataset.points = String(series.reduce((n, s) => n + s.points.length, 0));
  const legend = document.createElement('p');
  legend.className = 'legend small';
  series.forEach((s, i) => {
    const key = document.createElement('span');
    key.className = 'key ' + (s.cls || 'c' + (i % 6));
    key.textContent = s.name;
    legend.append(key);
  });
  const hasData = series.some((s) => s.points.some((p) => p[1] > 0));
  const note = document.createElement('p');
  note.className = 'small muted' + (hasData ? ' hidden' : '');
  note.textContent = empty;
  const caption = figure.querySelector('figcaption');
  figure.replaceChildren(...(caption ? [caption] : []), root, legend, note);
}

/** Redraws every chart at its figure's current width (after a resize). */
export function redrawAll() {
  for (const figure of document.querySelectorAll('figure.chart-box')) {
    if (figure.chartArgs) drawChart(figure, figure.chartArgs);
  }
}
