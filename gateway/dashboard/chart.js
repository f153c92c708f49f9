// Line charts for the pulse dashboard on a <canvas>, and the number and time
// formats it shows: no dependencies, loaded before dashboard.js, which takes
// them from window.PulseChart.
"use strict";

window.PulseChart = (() => {
  /** A value in at most a few significant digits, for axes and legends. */
  function formatNumber(value) {
    const magnitude = Math.abs(value);
    if (magnitude >= 1e6) return value.toExponential(2);
    if (magnitude >= 100) return value.toFixed(0);
    if (magnitude >= 1) return value.toFixed(2);
    return value.toPrecision(3);
  }

  /** Epoch ms as a local 24-hour clock time. */
  function formatTime(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  }

  /**
   * Draws `series` ([{ color, points: [{ t, v }] }]) on `canvas` with value and time axes;
   * `extras.bands` ([{ color, points: [{ t, yhat, lower, upper }] }]) are forecasts drawn as a
   * shaded interval around a dashed line (ahead of the live line), and `extras.marks`
   * ([{ t }]) anomalies drawn as red markers at their time.
   */
  function draw(canvas, series, extras = {}) {
    const bands = extras.bands || [];
    const marks = extras.marks || [];
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 600;
    const height = canvas.clientHeight || 260;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const all = series.flatMap((s) => s.points);
    const ahead = bands.flatMap((b) => b.points.flatMap((p) => [{ t: p.t, v: p.lower }, { t: p.t, v: p.upper }]));
    const style = getComputedStyle(document.documentElement);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = style.getPropertyValue("--muted");
    if (all.length === 0) {
      g.fillText("no windows of this metric yet", 12, height / 2);
      return;
    }
    const pad = { left: 52, right: 12, top: 10, bottom: 22 };
    const scaled = all.concat(ahead.filter((p) => Number.isFinite(p.v)));
    let [t0, t1] = [Math.min(...scaled.map((p) => p.t)), Math.max(...scaled.map((p) => p.t))];
    let [v0, v1] = [Math.min(...scaled.map((p) => p.v)), Math.max(...scaled.map((p) => p.v))];
    if (t0 === t1) [t0, t1] = [t0 - 5000, t1 + 5000];
    const span = v1 - v0 || Math.abs(v1) || 1;
    [v0, v1] = [v0 - span * 0.08, v1 + span * 0.08];
    const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
    const y = (v) => height - pad.bottom - ((v - v0) / (v1 - v0)) * (height - pad.top - pad.bottom);
    g.strokeStyle = style.getPropertyValue("--line");
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let i = 0; i <= 4; i += 1) {
      const v = v0 + ((v1 - v0) * i) / 4;
      g.beginPath();
      g.moveTo(pad.left, y(v));
      g.lineTo(width - pad.right, y(v));
      g.stroke();
      g.fillText(formatNumber(v), pad.left - 6, y(v));
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    for (let i = 0; i <= 3; i += 1) {
      const t = t0 + ((t1 - t0) * i) / 3;
      g.fillText(formatTime(t), Math.min(Math.max(x(t), pad.left + 24), width - pad.right - 24), height - pad.bottom + 6);
    }
    for (const band of bands) {
      const points = band.points.filter((p) => p.t >= t0 && p.t <= t1);
      if (points.length === 0) continue;
      g.globalAlpha = 0.18;
      g.fillStyle = band.color;
      g.beginPath();
      points.forEach((p, i) => (i === 0 ? g.moveTo(x(p.t), y(p.upper)) : g.lineTo(x(p.t), y(p.upper))));
      for (let i = points.length - 1; i >= 0; i -= 1) g.lineTo(x(points[i].t), y(points[i].lower));
      g.closePath();
      g.fill();
      g.globalAlpha = 1;
      g.strokeStyle = band.color;
      g.setLineDash([4, 3]);
      g.lineWidth = 1.4;
      g.beginPath();
      points.forEach((p, i) => (i === 0 ? g.moveTo(x(p.t), y(p.yhat)) : g.lineTo(x(p.t), y(p.yhat))));
      g.stroke();
      g.setLineDash([]);
    }
    const alarm = style.getPropertyValue("--alarm") || "#ef4b4b";
    for (const mark of marks) {
      if (mark.t < t0 || mark.t > t1) continue;
      g.strokeStyle = alarm;
      g.fillStyle = alarm;
      g.lineWidth = 1.2;
      g.beginPath();
      g.moveTo(x(mark.t), pad.top);
      g.lineTo(x(mark.t), height - pad.bottom);
      g.stroke();
      g.beginPath();
      g.moveTo(x(mark.t) - 4, pad.top);
      g.lineTo(x(mark.t) + 4, pad.top);
      g.lineTo(x(mark.t), pad.top + 7);
      g.closePath();
      g.fill();
    }
    for (const s of series) {
      g.strokeStyle = s.color;
      g.fillStyle = s.color;
      g.lineWidth = 1.6;
      g.beginPath();
      s.points.forEach((p, i) => (i === 0 ? g.moveTo(x(p.t), y(p.v)) : g.lineTo(x(p.t), y(p.v))));
      g.stroke();
      if (s.points.length < 40) {
        for (const p of s.points) {
          g.beginPath();
          g.arc(x(p.t), y(p.v), 2.2, 0, Math.PI * 2);
          g.fill();
        }
      }
    }
  }

  return { draw, formatNumber, formatTime };
})();
