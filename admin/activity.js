// @ts-check
// The activity panel: challenge counts, solve times and the two charts from
// GET /api/admin/stats, refreshed every REFRESH_MS while the page is
// visible. Each answer is announced as `powgate:stats` (the solve-time and
// adaptive panels use it too); a failed refresh as `powgate:notice`.

import { formatInt, formatMs } from '../shared/format.js';
import { isSessionEnd, messageOf } from './api.js';
import { drawBarChart } from './charts.js';
import { announce, byId, make, updateScrollStops } from './dom.js';
import {
  formatDateTime, histogramChart, histogramLabels, summarizeSolveTimes, summarizeTimeline, timelineChart,
} from './logic.js';

/** @typedef {import('../shared/wire.js').AdminStats} AdminStats */

/** How often the activity refreshes while the page is visible. */
const REFRESH_MS = 10000;
const CHART_HEIGHT = 200;
/** Below this the charts would be unreadable; the box scrolls instead. */
const MIN_CHART_WIDTH = 280;

/**
 * @param {HTMLElement} root the #stats-card section
 * @param {import('./api.js').Api} api
 */
export function mount(root, api) {
  const autoRefresh = /** @type {HTMLInputElement} */ (byId(root, 'auto-refresh'));
  const refreshButton = byId(root, 'stats-refresh');
  const updated = byId(root, 'stats-updated');
  const timelineBox = byId(root, 'timeline-chart');
  const timelineRows = byId(root, 'timeline-rows');
  const histogramBox = byId(root, 'histogram-chart');
  const histogramRows = byId(root, 'histogram-rows');

  /** The last answer. @type {AdminStats | null} */
  let stats = null;
  /** Between start() and stop(): while the dashboard is shown. */
  let running = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  let inFlight = false;
  /** A refresh was asked for while one was running (say, after a change). */
  let again = false;

  function timelineRange() {
    const checked = root.querySelector('input[name="timeline-range"]:checked');
    return checked instanceof HTMLInputElement && checked.value === 'minutes' ? 'minutes' : 'hours';
  }

  /** @param {HTMLElement} box */
  const chartWidth = (box) => Math.max(MIN_CHART_WIDTH, Math.floor(box.clientWidth || 0));

  /** @param {AdminStats} st */
  function shownTimeline(st) {
    const minutes = timelineRange() === 'minutes';
    return (minutes ? st.timeline_minutes : st.timeline) || { bucket_seconds: 0, buckets: [] };
  }

  function renderCharts() {
    if (!stats || !running) return;
    const minutes = timelineRange() === 'minutes';
    const timeline = shownTimeline(stats);
    const span = minutes ? '60 minutes' : '24 hours';
    let width = chartWidth(timelineBox);
    drawBarChart(timelineBox, timelineChart(timeline, { width, height: CHART_HEIGHT }), {
      id: 'timeline-svg',
      title: `Challenges issued, solved and failed over the last ${span}, per ${minutes ? 'minute' : 'hour'}`,
      desc: summarizeTimeline(timeline, span),
      width,
      height: CHART_HEIGHT,
      series: (bar) => [
        { cls: 'bar-issued', ...bar.issued },
        { cls: 'bar-solved', ...bar.solved },
        { cls: 'bar-failed', ...bar.failed },
      ],
    });

    const solveTime = stats.solve_time || { samples: 0, p50_ms: null, p95_ms: null, histogram: [] };
    width = chartWidth(histogramBox);
    drawBarChart(histogramBox, histogramChart(solveTime.histogram, { width, height: CHART_HEIGHT }), {
      id: 'histogram-svg',
      title: 'How long recent solves took',
      desc: summarizeSolveTimes(solveTime),
      width,
      height: CHART_HEIGHT,
      series: (bar) => [{ cls: 'bar-histogram', y: bar.y, height: bar.height }],
    });
  }

  function renderTables() {
    if (!stats) return;
    const buckets = Array.isArray(shownTimeline(stats).buckets) ? shownTimeline(stats).buckets : [];
    // Newest first: the table is read from the top.
    timelineRows.replaceChildren(...buckets.slice().reverse().map((b) => make('tr', {}, [
      make('th', { attrs: { scope: 'row' }, text: formatDateTime(b.start) }),
      make('td', { cls: 'num', text: formatInt(b.issued) }),
      make('td', { cls: 'num', text: formatInt(b.solved) }),
      make('td', { cls: 'num', text: formatInt(b.failed) }),
    ])));

    const histogram = (stats.solve_time && stats.solve_time.histogram) || [];
    const labels = histogramLabels(histogram);
    histogramRows.replaceChildren(...histogram.map((h, i) => make('tr', {}, [
      make('th', { attrs: { scope: 'row' }, text: labels[i] }),
      make('td', { cls: 'num', text: formatInt(h.count) }),
    ])));
    updateScrollStops();
  }

  /** @param {AdminStats} st */
  function render(st) {
    stats = st;
    const c = st.challenges;
    for (const kind of /** @type {const} */ (['issued', 'solved', 'failed'])) {
      const k = (c && c[kind]) || { hour: NaN, day: NaN };
      byId(root, `stat-${kind}-hour`).textContent = formatInt(k.hour);
      byId(root, `stat-${kind}-day`).textContent = formatInt(k.day);
    }
    byId(root, 'stat-active-tokens').textContent = formatInt(st.active_tokens);
    const t = st.solve_time || { samples: NaN, p50_ms: null, p95_ms: null };
    byId(root, 'stat-p50').textContent = t.p50_ms == null ? '–' : formatMs(t.p50_ms);
    byId(root, 'stat-p95').textContent = t.p95_ms == null ? '–' : formatMs(t.p95_ms);
    byId(root, 'stat-samples').textContent = formatInt(t.samples);
    updated.textContent = `Updated at ${new Date().toLocaleTimeString()}.`;
    renderCharts();
    renderTables();
    updateScrollStops();
  }

  function schedule() {
    clearTimeout(timer);
    timer = undefined;
    if (!running || !autoRefresh.checked || document.visibilityState !== 'visible') return;
    timer = setTimeout(refresh, REFRESH_MS);
  }

  /** Fetches the stats now; reschedules itself while auto-refresh is on. */
  async function refresh() {
    if (!running) return;
    if (inFlight) {
      again = true;
      return;
    }
    clearTimeout(timer);
    inFlight = true;
    try {
      /** @type {AdminStats} */
      const st = await api('GET', 'stats');
      if (!running) return;
      render(st);
      announce(root, 'stats', st);
      announce(root, 'notice', { from: 'stats', text: '' });
    } catch (err) {
      if (!isSessionEnd(err)) {
        announce(root, 'notice', {
          from: 'stats',
          text: `Could not refresh the activity: ${messageOf(err)} The figures shown may be out of date.`,
        });
      }
    } finally {
      inFlight = false;
      if (again) {
        again = false;
        refresh();
      } else {
        schedule();
      }
    }
  }

  function watchChartWidth() {
    if (typeof ResizeObserver !== 'function') {
      window.addEventListener('resize', () => renderCharts());
      return;
    }
    let queued = false;
    let lastWidth = 0;
    const observer = new ResizeObserver(() => {
      const w = timelineBox.clientWidth;
      if (queued || w === lastWidth) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        lastWidth = timelineBox.clientWidth;
        renderCharts();
      });
    });
    observer.observe(timelineBox);
  }

  refreshButton.addEventListener('click', () => refresh());
  autoRefresh.addEventListener('change', () => {
    if (autoRefresh.checked) refresh();
    else clearTimeout(timer);
  });
  for (const radio of root.querySelectorAll('input[name="timeline-range"]')) {
    radio.addEventListener('change', () => {
      renderCharts();
      renderTables();
    });
  }
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') {
      if (running && autoRefresh.checked) refresh();
    } else {
      clearTimeout(timer);
    }
  });
  watchChartWidth();

  return {
    /** Shows and refreshes the activity from now on; resolves after the first load. */
    start() {
      running = true;
      updated.textContent = 'Loading…';
      return refresh();
    },
    refresh,
    /** Stops refreshing and forgets the figures (signed out). */
    stop() {
      running = false;
      again = false;
      clearTimeout(timer);
      timer = undefined;
      stats = null;
    },
  };
}
