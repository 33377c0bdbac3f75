// The report's one script: a crosshair with the values under the pointer on
// every line chart, and, on a page served for a run in progress, its progress
// kept current. The charts are complete without it.
(function () {
  "use strict";
  var tooltip = document.getElementById("tooltip");

  function number(text) { return parseFloat(text); }

  function formatY(value, format) {
    if (!isFinite(value)) { return "–"; }
    if (format === "percent") { return (value * 100).toFixed(1) + "%"; }
    if (format === "times") { return value.toFixed(3) + "×"; }
    return Math.abs(value) >= 100 ? value.toFixed(1) : value.toFixed(4);
  }

  function formatX(value, kind) {
    if (kind === "time") { return new Date(value / 1000).toISOString().slice(0, 10); }
    return "generation " + Math.round(value);
  }

  function setUp(svg) {
    var frame = {
      xMin: number(svg.dataset.xMin), xMax: number(svg.dataset.xMax),
      yMin: number(svg.dataset.yMin), yMax: number(svg.dataset.yMax),
      left: number(svg.dataset.left), top: number(svg.dataset.top),
      width: number(svg.dataset.width), height: number(svg.dataset.height)
    };
    var series = [];
    svg.querySelectorAll("polyline[data-series]").forEach(function (line) {
      var points = line.getAttribute("points").trim().split(/\s+/).map(function (pair) {
        var xy = pair.split(",");
        return [number(xy[0]), number(xy[1])];
      });
      series.push({ label: line.dataset.label, color: line.getAttribute("stroke"), points: points });
    });
    var crosshair = svg.querySelector(".crosshair");
    function nearest(points, x) {
      var low = 0, high = points.length - 1;
      while (high - low > 1) {
        var middle = (low + high) >> 1;
        if (points[middle][0] < x) { low = middle; } else { high = middle; }
      }
      return Math.abs(points[low][0] - x) <= Math.abs(points[high][0] - x) ? points[low] : points[high];
    }
    svg.addEventListener("mousemove", function (event) {
      var matrix = svg.getScreenCTM();
      if (!matrix || series.length === 0) { return; }
      var point = svg.createSVGPoint();
      point.x = event.clientX; point.y = event.clientY;
      var at = point.matrixTransform(matrix.inverse());
      if (at.x < frame.left || at.x > frame.left + frame.width) { hide(); return; }
      var rows = [];
      var snapped = at.x;
      series.forEach(function (one) {
        if (one.points.length === 0) { return; }
        var found = nearest(one.points, at.x);
        snapped = found[0];
        var value = frame.yMin + (frame.top + frame.height - found[1]) / frame.height * (frame.yMax - frame.yMin);
        rows.push('<div class="row"><i class="dot" style="background:' + one.color + '"></i>' +
          escapeHtml(one.label) + ": <b>" + formatY(value, svg.dataset.yFormat) + "</b></div>");
      });
      var xValue = frame.xMin + (snapped - frame.left) / frame.width * (frame.xMax - frame.xMin);
      crosshair.setAttribute("x1", snapped); crosshair.setAttribute("x2", snapped);
      crosshair.setAttribute("visibility", "visible");
      tooltip.innerHTML = '<div class="head">' + formatX(xValue, svg.dataset.xKind) + "</div>" + rows.join("");
      tooltip.hidden = false;
      var left = event.clientX + 14;
      if (left + tooltip.offsetWidth > window.innerWidth - 8) { left = event.clientX - tooltip.offsetWidth - 14; }
      tooltip.style.left = left + "px";
      tooltip.style.top = (event.clientY + 12) + "px";
    });
    function hide() { crosshair.setAttribute("visibility", "hidden"); tooltip.hidden = true; }
    svg.addEventListener("mouseleave", hide);
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }

  document.querySelectorAll("svg.chart:not(.histogram)").forEach(setUp);

  // A served report of a run in progress: its status and generation, polled.
  var live = document.body.dataset.live;
  if (live) {
    var status = document.getElementById("live-status");
    var shown = document.body.dataset.generation;
    var poll = function () {
      fetch(live, { cache: "no-store" }).then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      }).then(function (document_) {
        var run = (document_.runs || []).filter(function (r) { return r.run === document.body.dataset.run; })[0];
        if (!run) { return; }
        var text = run.status + ", generation " + run.generation + "/" + run.generations +
          " (" + run.done + " done, " + run.leased + " leased, " + run.pending + " pending)";
        if (String(run.evaluated) !== shown) { text += " · newer results: reload the page"; }
        status.textContent = text;
        if (run.active) { setTimeout(poll, 2000); }
      }).catch(function (error) {
        status.textContent = "cannot read progress: " + error.message;
        setTimeout(poll, 5000);
      });
    };
    poll();
  }
  document.body.dataset.ready = "1";
})();
