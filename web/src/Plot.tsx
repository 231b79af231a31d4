// Plot.tsx: a time-series plot drawn by uPlot. x: seconds since the epoch.
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series { label: string; color: string; points: boolean }

export function Plot(props: { testid: string; title: string; unit: string; series: Series[]; data: uPlot.AlignedData }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const key = props.series.map((s) => s.label).join('|');

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const opts: uPlot.Options = {
      width: Math.max(280, el.clientWidth),
      height: 220,
      legend: { show: true },
      scales: { x: { time: true } },
      axes: [{}, { label: props.unit, size: 60 }],
      series: [
        {},
        ...props.series.map((s) => ({
          label: s.label, stroke: s.color, width: 2, spanGaps: true,
          points: { show: s.points, size: 6, fill: s.color },
          paths: s.points ? () => null : undefined,
        })),
      ],
    };
    const p = new uPlot(opts, props.data, el);
    plot.current = p;
    const ro = new ResizeObserver(() => p.setSize({ width: Math.max(280, el.clientWidth), height: 220 }));
    ro.observe(el);
    return () => { ro.disconnect(); p.destroy(); plot.current = null; };
    // the plot is rebuilt only when its series change; data updates go through setData below
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, props.unit]);

  useEffect(() => { plot.current?.setData(props.data); }, [props.data]);

  const empty = props.data[0].length === 0;
  return (
    <section className="card plot" data-testid={props.testid}>
      <h3>{props.title}</h3>
      {empty && <p className="muted">No data yet: finished generations appear here.</p>}
      <div ref={host} className={empty ? 'plot-host hidden' : 'plot-host'} />
    </section>
  );
}
