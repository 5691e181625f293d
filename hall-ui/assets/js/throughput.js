// The hall view's throughput chart: passports dispatched per hour over the last 24 hours, as
// bars (uPlot draws on a canvas). The y-axis is as wide as its widest label: with a fixed
// width, a busy hall's "1,000" showed as ".000".

import uPlot from '../vendor/uplot/uPlot.esm.js';

/** The chart's height, in CSS pixels. */
export const HEIGHT = 130;

/** A count as the y-axis writes it: `950`, `1k`, `1.5k`, `12k`. */
export function countLabel(v) {
  if (Math.abs(v) < 1000) return String(Math.round(v));
  const k = v / 1000;
  return `${Number.isInteger(k) || Math.abs(k) >= 10 ? Math.round(k) : k.toFixed(1)}k`;
}

/** The width the y-axis needs for its labels (uPlot's `size` hook), in CSS pixels. */
function axisWidth(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  // uPlot asks again while it settles the axes; the first answer holds.
  if (cycleNum > 1 && axis._size) return axis._size;
  let widest = 0;
  u.ctx.font = axis.font[0];
  for (const v of values || []) widest = Math.max(widest, u.ctx.measureText(String(v)).width / devicePixelRatio);
  return Math.ceil(axis.ticks.size + axis.gap + widest + 2);
}

/** The chart's data from the snapshot's `throughput.hourly`. */
export function chartData(hourly) {
  return [hourly.map((x) => Date.parse(x.hour) / 1000), hourly.map((x) => x.completed)];
}

/** Draws the chart of `hourly` into `box` (emptied first); returns the uPlot instance. */
export function throughputChart(box, hourly) {
  box.replaceChildren();
  return new uPlot({
    width: Math.max(280, box.clientWidth || 400),
    height: HEIGHT,
    legend: { show: false },
    cursor: { show: false },
    // Half an hour of margin each side: the first and the current hour's bars show whole.
    scales: {
      x: { time: true, range: (u, min, max) => [min - 1800, max + 1800] },
      y: { range: (u, min, max) => [0, Math.max(4, max)] },
    },
    axes: [
      { stroke: '#1f2933', grid: { show: false }, values: (u, v) => v.map((t) => `${new Date(t * 1000).getHours()}h`) },
      {
        stroke: '#1f2933',
        grid: { stroke: '#d9dee3' },
        // Whole passports only.
        incrs: [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000, 50000],
        values: (u, v) => v.map(countLabel),
        size: axisWidth,
      },
    ],
    series: [{}, {
      label: 'dispatched',
      stroke: '#0b5394',
      fill: 'rgba(11, 83, 148, 0.35)',
      paths: uPlot.paths.bars({ size: [0.8, 40] }),
      points: { show: false },
    }],
  }, chartData(hourly), box);
}
