// @ts-check
// Draws the chart models from logic.js as inline SVG. Colours come from
// style.css classes (so dark mode applies); nothing here is inline style
// in markup, which the page's CSP forbids.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * An SVG element with attributes and, optionally, text.
 *
 * @param {string} name
 * @param {Record<string, string | number>} [attrs]
 * @param {string} [text]
 * @returns {SVGElement}
 */
function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** @param {number} v pixels, to a tenth */
const round = (v) => Math.round(v * 10) / 10;

/**
 * Replaces the contents of `container` with an SVG drawing of `model`.
 *
 * @template {{x: number, width: number, title: string}} Bar
 * @param {HTMLElement} container
 * @param {import('./logic.js').ChartModel<Bar>} model from timelineChart or histogramChart
 * @param {{id: string, title: string, desc: string, width: number, height: number,
 *   series: (bar: Bar) => Array<{cls: string, y: number, height: number}>}} opts
 *   `series`: the rectangles of one bar, each with its class
 */
export function drawBarChart(container, model, opts) {
  const { id, title, desc, width, height, series } = opts;
  const svg = el('svg', {
    class: 'chart',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img',
    'aria-labelledby': `${id}-title ${id}-desc`,
  });
  svg.append(el('title', { id: `${id}-title` }, title), el('desc', { id: `${id}-desc` }, desc));

  const { plot } = model;
  const grid = el('g', { class: 'chart-grid', 'aria-hidden': 'true' });
  for (const t of model.yTicks) {
    const y = round(t.y) + 0.5;
    grid.append(
      el('line', { x1: plot.left, x2: plot.left + plot.width, y1: y, y2: y }),
      el('text', { x: plot.left - 6, y, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, t.text),
    );
  }
  for (const l of model.xLabels) {
    grid.append(el('text', {
      x: round(l.x),
      y: plot.top + plot.height + 16,
      'text-anchor': 'middle',
    }, l.text));
  }
  svg.append(grid);

  const bars = el('g', { class: 'chart-bars' });
  for (const bar of model.bars) {
    const g = el('g');
    // A <title> per bar gives a hover tooltip; the text alternative for
    // assistive technology is the chart's <desc> and the data table.
    g.append(el('title', {}, bar.title));
    for (const part of series(bar)) {
      if (!(part.height > 0)) continue;
      g.append(el('rect', {
        class: part.cls,
        x: round(bar.x),
        y: round(part.y),
        width: round(bar.width),
        height: Math.max(0.5, round(part.height)),
      }));
    }
    bars.append(g);
  }
  svg.append(bars);

  if (model.empty) {
    svg.append(el('text', {
      class: 'chart-empty',
      x: plot.left + plot.width / 2,
      y: plot.top + plot.height / 2,
      'text-anchor': 'middle',
      'aria-hidden': 'true',
    }, 'No data yet'));
  }

  svg.append(el('line', {
    class: 'chart-axis',
    x1: plot.left,
    x2: plot.left + plot.width,
    y1: plot.top + plot.height + 0.5,
    y2: plot.top + plot.height + 0.5,
    'aria-hidden': 'true',
  }));

  container.replaceChildren(svg);
}
