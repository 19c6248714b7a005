/** A dependency-free SVG bar chart: one panel per payload size, median bar + min–max whisker per contender. */
export interface BarPanel {
  title: string;
  bars: Array<{ label: string; median: number; min: number; max: number; color: string; note?: string }>;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (n: number) => (n >= 1000 ? `${+(n / 1000).toFixed(n >= 100_000 ? 0 : 1)}k` : `${Math.round(n)}`);

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p;
}

export function barChart(title: string, subtitle: string, panels: BarPanel[], unit: string): string {
  const width = 860;
  const labelW = 300;
  const chartW = width - labelW - 200;
  const barH = 22;
  const gap = 8;
  const panelHead = 34;
  let y = 62;
  const parts: string[] = [];
  for (const panel of panels) {
    const step = niceStep(Math.max(...panel.bars.map((b) => b.max)) / 5);
    const scaleMax = Math.ceil((Math.max(...panel.bars.map((b) => b.max)) * 1.02) / step) * step || 1;
    const ticks = Math.round(scaleMax / step);
    const x = (v: number) => labelW + (v / scaleMax) * chartW;
    parts.push(`<text x="12" y="${y + 18}" class="panel">${esc(panel.title)}</text>`);
    y += panelHead;
    // grid
    for (let i = 0; i <= ticks; i++) {
      const v = step * i;
      const gx = x(v);
      const h = panel.bars.length * (barH + gap);
      parts.push(`<line x1="${gx.toFixed(1)}" y1="${y - 4}" x2="${gx.toFixed(1)}" y2="${y + h - gap + 4}" class="grid"/>`);
      parts.push(`<text x="${gx.toFixed(1)}" y="${y + h + 10}" class="tick" text-anchor="middle">${fmt(v)}</text>`);
    }
    for (const bar of panel.bars) {
      const w = Math.max(1, x(bar.median) - labelW);
      const cy = y + barH / 2;
      parts.push(`<text x="${labelW - 10}" y="${cy + 4}" class="label" text-anchor="end">${esc(bar.label)}</text>`);
      parts.push(`<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" rx="3" fill="${bar.color}"/>`);
      // min-max whisker
      parts.push(
        `<line x1="${x(bar.min).toFixed(1)}" y1="${cy}" x2="${x(bar.max).toFixed(1)}" y2="${cy}" class="whisker"/>` +
          `<line x1="${x(bar.min).toFixed(1)}" y1="${cy - 6}" x2="${x(bar.min).toFixed(1)}" y2="${cy + 6}" class="whisker"/>` +
          `<line x1="${x(bar.max).toFixed(1)}" y1="${cy - 6}" x2="${x(bar.max).toFixed(1)}" y2="${cy + 6}" class="whisker"/>`,
      );
      const text = `${fmt(bar.median)} ${unit}${bar.note ? `  ${bar.note}` : ''}`;
      parts.push(`<text x="${(x(bar.max) + 8).toFixed(1)}" y="${cy + 4}" class="value">${esc(text)}</text>`);
      y += barH + gap;
    }
    y += 26;
  }
  const height = y + 4;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="-apple-system, Segoe UI, Helvetica, Arial, sans-serif">`,
    '<style>',
    '.title{font-size:17px;font-weight:600;fill:#1f2328}.sub{font-size:12px;fill:#57606a}.panel{font-size:14px;font-weight:600;fill:#1f2328}',
    '.label{font-size:13px;fill:#1f2328}.value{font-size:12px;fill:#1f2328}.tick{font-size:11px;fill:#57606a}',
    '.grid{stroke:#d0d7de;stroke-width:1}.whisker{stroke:#1f2328;stroke-width:1.4}',
    '</style>',
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="12" y="24" class="title">${esc(title)}</text>`,
    `<text x="12" y="44" class="sub">${esc(subtitle)}</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}
