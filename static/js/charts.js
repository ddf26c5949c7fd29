// Tiny canvas charts served by the product itself (no CDN): bar and line charts with an optional marker.
// Charts.bar(canvas, {labels, values, color, format})
// Charts.line(canvas, {series: [{label, points: [[x, y], ...], color}], xLabel, yLabel, marker: {x, label}, yMin, yMax})
(function () {
  const palette = ["#3451d1", "#1f8a4c", "#c0392b", "#b7791f", "#7d3cc8", "#138496"];
  function setup(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 600, height = canvas.clientHeight || 260;
    canvas.width = width * ratio; canvas.height = height * ratio;
    const ctx = canvas.getContext("2d"); ctx.scale(ratio, ratio);
    ctx.font = "12px system-ui, sans-serif"; ctx.clearRect(0, 0, width, height);
    return { ctx, width, height };
  }
  const fmt = (v) => (Math.abs(v) >= 1000 ? v.toLocaleString(undefined, { maximumFractionDigits: 0 }) : +v.toFixed(3));
  function bar(canvas, opts) {
    const { ctx, width, height } = setup(canvas);
    const labels = opts.labels || [], values = opts.values || [];
    if (!values.length) { ctx.fillStyle = "#687085"; ctx.fillText("No data yet", 10, 20); return; }
    const left = 10, bottom = height - 60, top = 10, max = Math.max(...values, 1e-9);
    const step = (width - left - 10) / values.length, barWidth = Math.max(2, step * 0.75);
    values.forEach((value, i) => {
      const h = ((bottom - top) * value) / max, x = left + i * step;
      ctx.fillStyle = opts.color || palette[0]; ctx.fillRect(x, bottom - h, barWidth, h);
      if (values.length <= 40) {
        ctx.save(); ctx.translate(x + barWidth / 2, bottom + 4); ctx.rotate(Math.PI / 4);
        ctx.fillStyle = "#687085"; ctx.fillText(String(labels[i]).slice(0, 18), 0, 0); ctx.restore();
      }
    });
    canvas.title = labels.map((l, i) => `${l}: ${(opts.format || fmt)(values[i])}`).join("\n");
  }
  function line(canvas, opts) {
    const { ctx, width, height } = setup(canvas);
    const series = (opts.series || []).filter((s) => s.points && s.points.length);
    if (!series.length) { ctx.fillStyle = "#687085"; ctx.fillText("No data yet", 10, 20); return; }
    const all = series.flatMap((s) => s.points);
    const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
    const xMin = Math.min(...xs), xMax = Math.max(...xs, xMin + 1e-9);
    const yMin = opts.yMin ?? Math.min(...ys), yMax = opts.yMax ?? Math.max(...ys, yMin + 1e-9);
    const left = 48, right = 12, top = 12, bottom = height - 30;
    const X = (x) => left + ((x - xMin) / (xMax - xMin || 1)) * (width - left - right);
    const Y = (y) => bottom - ((y - yMin) / (yMax - yMin || 1)) * (bottom - top);
    ctx.strokeStyle = "#e3e6ee"; ctx.fillStyle = "#687085";
    for (let i = 0; i <= 4; i++) {
      const y = yMin + ((yMax - yMin) * i) / 4;
      ctx.beginPath(); ctx.moveTo(left, Y(y)); ctx.lineTo(width - right, Y(y)); ctx.stroke();
      ctx.fillText(fmt(y), 4, Y(y) + 4);
    }
    ctx.fillText(fmt(xMin), left, height - 12); ctx.fillText(fmt(xMax), width - right - 40, height - 12);
    if (opts.xLabel) ctx.fillText(opts.xLabel, width / 2 - 30, height - 12);
    series.forEach((s, i) => {
      ctx.strokeStyle = s.color || palette[i % palette.length]; ctx.lineWidth = 2; ctx.beginPath();
      s.points.forEach((p, j) => (j ? ctx.lineTo(X(p[0]), Y(p[1])) : ctx.moveTo(X(p[0]), Y(p[1]))));
      ctx.stroke();
      if (s.label) { ctx.fillStyle = ctx.strokeStyle; ctx.fillText(s.label, left + 8 + i * 130, top + 10); }
    });
    if (opts.marker && opts.marker.x != null) {
      ctx.strokeStyle = "#c0392b"; ctx.setLineDash([5, 4]); ctx.beginPath();
      ctx.moveTo(X(opts.marker.x), top); ctx.lineTo(X(opts.marker.x), bottom); ctx.stroke(); ctx.setLineDash([]);
      ctx.fillStyle = "#c0392b"; ctx.fillText(opts.marker.label || "", X(opts.marker.x) + 4, top + 24);
    }
  }
  // Declarative use: <canvas class="chart" data-chart='{"type": "bar", ...}'></canvas>
  function renderAll() {
    document.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      const spec = JSON.parse(canvas.dataset.chart);
      (spec.type === "line" ? line : bar)(canvas, spec);
    });
  }
  window.Charts = { bar, line, renderAll };
  document.addEventListener("DOMContentLoaded", renderAll);
})();
