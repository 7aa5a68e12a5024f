// The console's behaviour: the incident list keeps itself up to date by polling its rows,
// and phase clocks count down. Everything works without it; it only saves reloads.
(function () {
  "use strict";

  function pollRows() {
    var body = document.getElementById("incident-rows");
    if (!body) return;
    var url = body.getAttribute("data-poll");
    var every = Math.max(2, parseInt(body.getAttribute("data-every") || "5", 10)) * 1000;
    var status = document.getElementById("live-status");
    var known = ids(body);
    var failures = 0;

    function ids(node) {
      var out = {};
      node.querySelectorAll("tr[data-id]").forEach(function (tr) {
        out[tr.getAttribute("data-id")] = true;
      });
      return out;
    }

    function tick() {
      if (document.hidden) return schedule();
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          if (response.redirected || response.status === 401 || response.status === 403) {
            window.location.reload();  // signed out: the sign-in page says so
            return null;
          }
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) {
          if (html === null) return;
          failures = 0;
          var holder = document.createElement("tbody");
          holder.innerHTML = html;
          var fresh = 0;
          holder.querySelectorAll("tr[data-id]").forEach(function (tr) {
            if (!known[tr.getAttribute("data-id")]) {
              tr.classList.add("fresh");
              fresh += 1;
            }
          });
          if (body.innerHTML.trim() !== holder.innerHTML.trim()) {
            body.replaceChildren.apply(body, Array.prototype.slice.call(holder.childNodes));
          }
          known = ids(body);
          if (fresh && status) {
            status.textContent = (status.getAttribute("data-template") || "{count}").replace("{count}", String(fresh));
          }
        })
        .catch(function () {
          failures += 1;
        })
        .then(schedule);
    }

    function schedule() {
      window.setTimeout(tick, every * Math.min(6, 1 + failures));
    }

    schedule();
  }

  function countdowns() {
    var clocks = document.querySelectorAll(".countdown[data-deadline]");
    if (!clocks.length) return;

    function span(ms) {
      var s = Math.floor(Math.abs(ms) / 1000);
      var d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
      var m = Math.floor((s % 3600) / 60), r = s % 60;
      if (d) return d + "d " + h + "h";
      if (h) return h + "h " + m + "m";
      return m + "m " + (r < 10 ? "0" : "") + r + "s";
    }

    function update() {
      var now = Date.now();
      clocks.forEach(function (el) {
        var left = Date.parse(el.getAttribute("data-deadline")) - now;
        var template = el.getAttribute(left >= 0 ? "data-left" : "data-over") || "{time}";
        el.textContent = template.replace("{time}", span(left));
        el.classList.toggle("overdue", left < 0);
      });
    }

    update();
    window.setInterval(update, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    pollRows();
    countdowns();
  });
})();
