// The runs index of `strata serve`: the table of runs is redrawn from
// runs.json every second, so a run in progress moves without a reload.
(function () {
  "use strict";
  var body = document.getElementById("runs-body");
  var stamp = document.getElementById("updated");
  var failure = document.getElementById("poll-error");
  var interval = Number(document.body.dataset.pollMs) || 1000;
  var polls = 0;

  function escapeHtml(text) {
    return String(text).replace(/[&<>"]/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c];
    });
  }

  function fixed(value, digits) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  }

  function row(run) {
    var total = Math.max(run.generations, 1);
    var evaluated = Math.min(run.evaluated, total);
    var share = Math.round(evaluated / total * 100);
    var tasks = run.done + run.leased + run.pending + run.parked;
    return '<tr data-run="' + escapeHtml(run.run) + '" data-status="' + escapeHtml(run.status) +
      '" data-generation="' + run.generation + '" data-evaluated="' + run.evaluated + '">' +
      '<td><a href="runs/' + encodeURIComponent(run.run) + '">' + escapeHtml(run.run) + "</a></td>" +
      '<td><span class="status status-' + escapeHtml(run.status) + '">' + escapeHtml(run.status) + "</span></td>" +
      "<td>" + escapeHtml(run.strategy) + "</td>" +
      '<td><div class="progress" title="' + evaluated + "/" + total + ' generations evaluated"><i style="width:' +
      share + '%"></i></div></td>' +
      '<td class="num">' + evaluated + "/" + run.generations + "</td>" +
      '<td class="num">' + (tasks ? run.done + "/" + tasks : "–") + "</td>" +
      '<td class="num">' + fixed(run.best, 4) + "</td>" +
      '<td class="num">' + fixed(run.mean, 4) + "</td>" +
      '<td class="num">' + run.population + "</td>" +
      '<td class="muted">' + escapeHtml(run.updated_at) + "</td></tr>";
  }

  function render(document_) {
    var runs = document_.runs || [];
    body.innerHTML = runs.length ? runs.map(row).join("") :
      '<tr class="empty"><td colspan="10" class="muted">No runs yet: start one with <code>strata evolve</code>.</td></tr>';
    stamp.textContent = "updated " + new Date().toLocaleTimeString();
  }

  function poll() {
    fetch("runs.json", { cache: "no-store" }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    }).then(function (document_) {
      render(document_);
      failure.hidden = true;
      polls += 1;
      document.body.dataset.polls = String(polls);
    }).catch(function (error) {
      failure.hidden = false;
      failure.textContent = "Cannot refresh the runs (" + error.message + "); retrying.";
    }).then(function () { setTimeout(poll, interval); });
  }

  poll();
  document.body.dataset.ready = "1";
})();
