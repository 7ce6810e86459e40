/**
 * soak.svg: stacked panels sharing one time axis (seconds since the load started), each with
 * one or more lines; `marks` are vertical lines (the restart), `bands` shaded spans (the time
 * the API was down, the warm-up left out of the verdicts).
 *
 *   panels: [{ title, unit, lines: [{ label, color, dash?, points: [[t, v], ...] }] }]
 *   marks:  [{ t, label, color }]     bands: [{ from, to, color, label? }]
 */
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function soakChart({ title, seconds, panels, marks = [], bands = [] }) {
  const W = 820;
  const PH = 170;
  const pad = { l: 64, r: 170, t: 50, gap: 34, b: 60 };
  const H = pad.t + panels.length * PH + (panels.length - 1) * pad.gap + pad.b;
  const x = (t) => pad.l + (t / seconds) * (W - pad.l - pad.r);
  const parts = [];
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${pad.l}" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`);
  panels.forEach((panel, i) => {
    const top = pad.t + i * (PH + pad.gap);
    const bottom = top + PH;
    const values = panel.lines.flatMap((l) => l.points.map((p) => p[1])).filter((v) => Number.isFinite(v));
    const ymax = niceMax(Math.max(0, ...values) * 1.1);
    const y = (v) => bottom - (v / ymax) * PH;
    parts.push(`<text x="${pad.l}" y="${top - 8}" font-size="12">${esc(panel.title)}</text>`);
    for (const b of bands) {
      parts.push(`<rect x="${x(b.from).toFixed(1)}" y="${top}" width="${Math.max(1, x(b.to) - x(b.from)).toFixed(1)}" height="${PH}" fill="${b.color}"/>`);
    }
    for (let k = 0; k <= 4; k++) {
      const v = (ymax * k) / 4;
      parts.push(`<line x1="${pad.l}" x2="${W - pad.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e2e2e2"/>`);
      parts.push(`<text x="${pad.l - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" font-size="10">${+v.toPrecision(3)}</text>`);
    }
    const step = seconds > 300 ? 60 : seconds > 60 ? 30 : 10;
    for (let t = 0; t <= seconds; t += step) {
      parts.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${bottom}" y2="${bottom + 4}" stroke="#888"/>`);
      parts.push(`<text x="${x(t).toFixed(1)}" y="${bottom + 15}" text-anchor="middle" font-size="10">${t}</text>`);
    }
    parts.push(`<rect x="${pad.l}" y="${top}" width="${W - pad.l - pad.r}" height="${PH}" fill="none" stroke="#888"/>`);
    parts.push(`<text x="14" y="${(top + bottom) / 2}" text-anchor="middle" font-size="11" transform="rotate(-90 14 ${(top + bottom) / 2})">${esc(panel.unit)}</text>`);
    for (const m of marks) {
      parts.push(`<line x1="${x(m.t).toFixed(1)}" x2="${x(m.t).toFixed(1)}" y1="${top}" y2="${bottom}" stroke="${m.color}" stroke-width="1.5" stroke-dasharray="5,3"/>`);
      if (i === 0) parts.push(`<text x="${(x(m.t) + 4).toFixed(1)}" y="${top + 12}" font-size="10" fill="${m.color}">${esc(m.label)}</text>`);
    }
    panel.lines.forEach((line, j) => {
      // A gap in the data (the restart) breaks the line instead of bridging it.
      let d = '';
      let prev = null;
      for (const [t, v] of line.points) {
        if (!Number.isFinite(v)) {
          prev = null;
          continue;
        }
        d += `${prev === null || t - prev > 12 ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
        prev = t;
      }
      parts.push(`<path d="${d.trim()}" fill="none" stroke="${line.color}" stroke-width="1.6"${line.dash ? ` stroke-dasharray="${line.dash}"` : ''}/>`);
      const ly = top + 12 + j * 16;
      parts.push(`<line x1="${W - pad.r + 12}" x2="${W - pad.r + 36}" y1="${ly}" y2="${ly}" stroke="${line.color}" stroke-width="2"${line.dash ? ` stroke-dasharray="${line.dash}"` : ''}/>`);
      parts.push(`<text x="${W - pad.r + 40}" y="${ly + 4}" font-size="10">${esc(line.label)}</text>`);
    });
  });
  const lastBottom = pad.t + panels.length * PH + (panels.length - 1) * pad.gap;
  parts.push(`<text x="${(pad.l + W - pad.r) / 2}" y="${lastBottom + 32}" text-anchor="middle" font-size="11">seconds since the load started</text>`);
  let ly = H - pad.b + 4;
  for (const b of bands.filter((b) => b.label)) {
    parts.push(`<rect x="${W - pad.r + 12}" y="${ly - 8}" width="24" height="10" fill="${b.color}"/><text x="${W - pad.r + 40}" y="${ly + 1}" font-size="10">${esc(b.label)}</text>`);
    ly += 14;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">\n${parts.join('\n')}\n</svg>\n`;
}
