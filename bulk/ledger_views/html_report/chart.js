// The throughput chart of `bulk report`: rows/s and errors/s per time bucket, 429s as
// bars on their own scale, pauses and outages as shaded bands on the same time axis.
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
  var shades = { pause: "rgba(230, 140, 0, 0.22)", outage: "rgba(90, 90, 90, 0.28)" };
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
  var opts = {
    width: Math.max(600, Math.min(el.clientWidth || 960, 1200)),
    height: 320,
    scales: { x: { time: true, range: [d.start, d.start + d.seconds.length * d.width] }, n: { range: function (u, lo, hi) { return [0, Math.max(1, hi)]; } } },
    series: [
      {},
      { label: "rows/s", stroke: "#1f8a5b", fill: "rgba(31, 138, 91, 0.12)", width: 2 },
      { label: "errors/s", stroke: "#c62828", width: 1.5 },
      { label: "429s", stroke: "#8e24aa", fill: "rgba(142, 36, 170, 0.5)", scale: "n",
        paths: uPlot.paths.bars({ size: [0.5, 12] }), points: { show: false } }
    ],
    axes: [
      {},
      { label: "rows per second" },
      { scale: "n", side: 1, label: "429 answers", grid: { show: false } }
    ],
    hooks: { drawAxes: [bands] }
  };
  new uPlot(opts, [x, d.done, d.errors, d.hits_429], el);
})();
