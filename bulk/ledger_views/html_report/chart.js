// The throughput chart of `bulk report`: rows/s and errors/s per time bucket, 429s as
// bars on their own (whole-number) scale, pauses and outages as shaded bands, and each
// stop of the job (with its resume) as a marked line, all on one UTC time axis: the
// page's other times are UTC, 24-hour, and the chart's must read the same.
(function () {
  "use strict";
  var d = JSON.parse(document.getElementById("chart-data").textContent);
  var el = document.getElementById("chart");
  if (!d.seconds.length) {
    el.textContent = "No finished rows to chart yet.";
    return;
  }
  // Each bucket is drawn at its middle, where its events are on average.
  var x = d.seconds.map(function (s) { return d.start + s + d.width / 2; });
  var runs = d.runs || [];
  // While the job stood still (a stop, until its resume) there is no rate to draw: a
  // gap in the lines, not a fall to zero.
  function stood(s) {
    return runs.some(function (run, i) {
      var next = runs[i + 1];
      return next && run[1] != null && s > run[1] && s + d.width < next[0];
    });
  }
  var done = d.done.map(function (v, i) { return stood(d.seconds[i]) ? null : v; });
  var errors = d.errors.map(function (v, i) { return stood(d.seconds[i]) ? null : v; });
  var shades = { pause: "rgba(230, 140, 0, 0.22)", outage: "rgba(90, 90, 90, 0.28)" };

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function utcTime(ts, seconds) {
    var t = new Date(ts * 1000);
    return pad(t.getUTCHours()) + ":" + pad(t.getUTCMinutes()) +
      (seconds ? ":" + pad(t.getUTCSeconds()) : "");
  }
  function utcStamp(ts) {
    return new Date(ts * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }
  var span = d.seconds.length * d.width;
  var manyDays = span > 86400;
  function sum(values) {
    return values.reduce(function (a, b) { return a + b; }, 0);
  }
  function fmt(n) { return Math.round(n).toLocaleString("en-US"); }
  // Until the pointer is over the chart, the legend gives the whole job's totals.
  var totals = {
    rows: fmt(sum(d.done) * d.width) + " rows",
    errors: fmt(sum(d.errors) * d.width) + " rows",
    hits: fmt(sum(d.hits_429)) + " in all"
  };
  function legend(total, digits) {
    return function (u, v, si, idx) {
      if (idx == null) return total;
      return v == null ? "-" : v.toFixed(digits);
    };
  }

  function bands(u) {
    var ctx = u.ctx;
    ctx.save();
    d.bands.forEach(function (b) {
      var x0 = u.valToPos(d.start + b[1], "x", true);
      var x1 = u.valToPos(d.start + b[1] + b[2], "x", true);
      ctx.fillStyle = shades[b[0]] || "rgba(60, 60, 200, 0.2)";
      ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
    });
    ctx.restore();
  }

  // A stop: a dashed line where a run ended (not by finishing), the time it stood
  // still hatched, and a solid line where the next run resumed.
  function stops(u) {
    var ctx = u.ctx, top = u.bbox.top, height = u.bbox.height, px = devicePixelRatio || 1;
    var lastLabel = -1e9;
    ctx.save();
    ctx.font = (11 * px) + "px system-ui, sans-serif";
    ctx.textBaseline = "top";
    runs.forEach(function (run, i) {
      var end = run[1], how = run[2], next = runs[i + 1];
      if (end == null || how === "finished") return;
      var x0 = u.valToPos(d.start + end, "x", true);
      var x1 = next ? u.valToPos(d.start + next[0], "x", true) : null;
      if (x1 != null && x1 > x0) {
        ctx.fillStyle = "rgba(120, 120, 140, 0.12)";
        ctx.fillRect(x0, top, x1 - x0, height);
      }
      ctx.strokeStyle = "#37474f";
      ctx.lineWidth = 1.5 * px;
      ctx.setLineDash([5 * px, 4 * px]);
      ctx.beginPath(); ctx.moveTo(x0, top); ctx.lineTo(x0, top + height); ctx.stroke();
      if (x1 != null) {
        ctx.setLineDash([]);
        ctx.beginPath(); ctx.moveTo(x1, top); ctx.lineTo(x1, top + height); ctx.stroke();
      }
      // Labels never sit on one another: one too close to the last is left out (the
      // runs table above the chart names every stop).
      if (x0 - lastLabel > 90 * px) {
        var text = "stop: " + how + (next ? ", resumed" : "");
        var w = ctx.measureText(text).width + 8 * px;
        var lx = Math.min(x0 + 4 * px, u.bbox.left + u.bbox.width - w);
        ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
        ctx.fillRect(lx, top + 2 * px, w, 15 * px);
        ctx.fillStyle = "#37474f";
        ctx.fillText(text, lx + 4 * px, top + 4 * px);
        lastLabel = x0;
      }
    });
    ctx.restore();
  }

  function size() {
    return { width: Math.max(280, el.clientWidth || 960), height: el.clientWidth < 600 ? 260 : 320 };
  }
  var first = size();
  var opts = {
    width: first.width,
    height: first.height,
    // Splits on whole UTC minutes and hours, like the times in the rest of the page.
    tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
    scales: {
      x: { time: true, range: [d.start, d.start + span] },
      n: { range: function (u, lo, hi) { return [0, Math.max(1, Math.ceil(hi))]; } }
    },
    series: [
      { label: "time (UTC)", value: function (u, v, si, idx) {
          return idx == null ? "whole job" : utcStamp(v); } },
      { label: "rows/s", stroke: "#1f8a5b", fill: "rgba(31, 138, 91, 0.12)", width: 2,
        value: legend(totals.rows, 1) },
      { label: "errors/s", stroke: "#d50000", fill: "rgba(213, 0, 0, 0.10)", width: 2.5,
        dash: [6, 3], points: { show: true, size: 4, stroke: "#d50000", fill: "#d50000" },
        value: legend(totals.errors, 1) },
      { label: "429s", stroke: "#8e24aa", fill: "rgba(142, 36, 170, 0.5)", scale: "n",
        paths: uPlot.paths.bars({ size: [0.5, 12] }), points: { show: false },
        value: legend(totals.hits, 0) }
    ],
    axes: [
      { space: 70, values: function (u, splits) {
          return splits.map(function (ts) {
            var t = utcTime(ts, span < 600);
            return manyDays ? new Date(ts * 1000).toISOString().slice(5, 10) + " " + t : t;
          }); } },
      { label: "rows per second" },
      { scale: "n", side: 1, label: "429 answers", grid: { show: false },
        // A count: whole numbers only, never 0.2, 0.4...
        incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000],
        values: function (u, splits) {
          return splits.map(function (v) { return v % 1 === 0 ? String(v) : ""; }); } }
    ],
    hooks: { drawAxes: [bands, stops] }
  };
  // A bucket without a 429 has no bar at all (a zero-height bar still draws its edge).
  var hits = d.hits_429.map(function (v) { return v ? v : null; });
  var plot = new uPlot(opts, [x, done, errors, hits], el);
  window.addEventListener("resize", function () { plot.setSize(size()); });
})();
