// A server-rendered SVG line chart of an edge's sync lag (change-log entries behind the service's
// head) over time, from the capped lag samples of the device repo. No script, no library.
import type { LagSample } from '../store/device-repo.ts';
import { when } from './i18n.ts';

export interface ChartOptions {
  width?: number;
  height?: number;
  /** A sparkline: no axes or labels. */
  compact?: boolean;
  label?: string;
}

/** The points of the line, scaled into the plot box (pure, for tests). */
export function lagPoints(samples: LagSample[], box: { x: number; y: number; w: number; h: number }): { x: number; y: number }[] {
  if (samples.length === 0) return [];
  const t0 = samples[0].at;
  const t1 = samples[samples.length - 1].at;
  const max = Math.max(1, ...samples.map((s) => s.lag));
  const span = Math.max(1, t1 - t0);
  return samples.map((s) => ({
    x: +(box.x + (samples.length === 1 ? box.w : ((s.at - t0) / span) * box.w)).toFixed(1),
    y: +(box.y + box.h - (Math.max(0, s.lag) / max) * box.h).toFixed(1),
  }));
}

/** A "nice" upper bound for the axis: 1, 2, 5 times a power of ten. */
function niceMax(v: number): number {
  if (v <= 1) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 5, 10].map((k) => k * p).find((k) => k >= v)!;
}

export function LagChart({ samples, width = 640, height = 200, compact = false, label = 'lag' }: ChartOptions & { samples: LagSample[] }) {
  const pad = compact ? { l: 2, r: 2, t: 2, b: 2 } : { l: 44, r: 12, t: 12, b: 28 };
  const box = { x: pad.l, y: pad.t, w: width - pad.l - pad.r, h: height - pad.t - pad.b };
  const top = niceMax(Math.max(0, ...samples.map((s) => s.lag)));
  // Scale to the nice bound, not the raw max, so the gridlines mean round numbers.
  const scaled = samples.length ? [...samples, { at: samples[samples.length - 1].at, applied_seq: 0, lag: top }] : [];
  const pts = lagPoints(scaled, box).slice(0, samples.length);
  const line = pts.map((p, i) => `${i ? 'L' : 'M'}${p.x},${p.y}`).join(' ');
  const area = pts.length ? `${line} L${pts[pts.length - 1].x},${box.y + box.h} L${pts[0].x},${box.y + box.h} Z` : '';
  const last = samples[samples.length - 1];
  return (
    <svg class={compact ? 'chart spark' : 'chart'} viewBox={`0 0 ${width} ${height}`} width={width} height={height} role="img" aria-label={`${label}${last ? `: ${last.lag}` : ''}`}>
      {!compact &&
        [0, 0.5, 1].map((f) => {
          const y = box.y + box.h - f * box.h;
          return (
            <g>
              <line class="gridline" x1={box.x} x2={box.x + box.w} y1={y} y2={y} />
              <text class="axis" x={box.x - 6} y={y + 4} text-anchor="end">
                {String(Math.round(top * f))}
              </text>
            </g>
          );
        })}
      {area && <path class="area" d={area} />}
      {line && <path class="line" d={line} />}
      {pts.length > 0 && <circle class="dot" cx={pts[pts.length - 1].x} cy={pts[pts.length - 1].y} r={compact ? 2 : 3.5} />}
      {!compact && samples.length > 0 && (
        <g>
          <text class="axis" x={box.x} y={height - 8}>
            {when(samples[0].at)}
          </text>
          <text class="axis" x={box.x + box.w} y={height - 8} text-anchor="end">
            {when(last.at)}
          </text>
        </g>
      )}
    </svg>
  );
}
