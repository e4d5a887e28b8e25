/* Sampling configuration page: the run / retrain / export buttons.
 * No framework, no CDN. Jobs are started through the JSON API (session auth + CSRF) and their
 * progress is polled from the same API the CLI and integrators use. */
(function () {
  "use strict";

  var el = window.flywheel.el;  // dom.js, loaded first

  // ---- jobs: sampling runs, retrains, exports
  function csrf(root) {
    var input = root.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function api(root, method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf(root) },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (resp) {
      return resp.text().then(function (text) {
        var data = {};
        try { data = text ? JSON.parse(text) : {}; } catch (e) { data = { detail: text.slice(0, 200) }; }
        if (!resp.ok) {
          var msg = data.detail || ("HTTP " + resp.status);
          if (data.errors && Object.keys(data.errors).length) msg += " " + JSON.stringify(data.errors);
          throw new Error(msg);
        }
        return data;
      });
    });
  }

  function poll(fetcher, onUpdate, done) {
    function tick() {
      fetcher().then(function (data) {
        onUpdate(data);
        if (data.status === "done" || data.status === "failed" || data.status === "ready") done(data);
        else window.setTimeout(tick, 1000);
      }).catch(function (err) { done({ status: "failed", error: err.message }); });
    }
    tick();
  }

  // The page renders the API's URLs with json_script; "/0/" in a URL stands for an id.
  function withId(template, id) {
    return template.replace("/0/", "/" + encodeURIComponent(id) + "/");
  }

  function jobs() {
    var root = document.getElementById("jobs");
    if (!root) return;
    var urls = JSON.parse(document.getElementById("jobs-config").textContent);
    var status = document.getElementById("job-status");
    function say(text, bad) { status.textContent = text; status.className = bad ? "help error" : "help"; }

    root.querySelectorAll(".js-run").forEach(function (button) {
      button.addEventListener("click", function () {
        button.disabled = true;
        say("Starting a sampling run…");
        api(root, "POST", urls.runsUrl, { strategy: Number(button.dataset.strategyId) }).then(function (run) {
          poll(function () { return api(root, "GET", withId(urls.runUrl, run.id)); }, function (r) {
            say("Run #" + r.id + ": " + r.status + (r.pool_size ? " — pool " + r.pool_size : "") +
              (r.selected_count ? ", selected " + r.selected_count : ""));
          }, function (r) {
            button.disabled = false;
            if (r.status === "failed") say("Run failed: " + (r.error || "see the run list"), true);
            else window.location.reload();
          });
        }).catch(function (err) { button.disabled = false; say("Could not start the run: " + err.message, true); });
      });
    });

    // A run or a retrain started elsewhere (another tab, the schedule, a retrain form post) is
    // still busy: refresh the page until it finishes, so its progress shows without a click.
    if (root.querySelector('[data-status="pending"], [data-status="running"], [data-status="training"]')) {
      say("Working… this page refreshes until the job finishes.");
      window.setTimeout(function () { window.location.reload(); }, 2000);
    }

    var exportButton = root.querySelector(".js-export");
    if (exportButton) exportButton.addEventListener("click", function () {
      var box = document.getElementById("export-progress");
      var bar = box.querySelector(".progress > span");
      var text = box.querySelector("p");
      box.hidden = false;
      exportButton.disabled = true;
      var kind = document.getElementById("export-kind").value;
      api(root, "POST", urls.exportsUrl, { kind: kind, filters: {}, options: {} }).then(function (exp) {
        poll(function () { return api(root, "GET", withId(urls.exportUrl, exp.id)); }, function (e) {
          var pct = Math.round(100 * (e.progress || 0));
          bar.style.width = pct + "%";
          text.textContent = "Export #" + e.id + " (" + kind + "): " + e.status + ", " + pct + "%, " + (e.rows || 0) + " rows";
        }, function (e) {
          exportButton.disabled = false;
          if (e.status === "failed") { text.textContent = "Export failed: " + (e.error || ""); text.className = "help error"; return; }
          bar.style.width = "100%";
          text.textContent = "";
          text.appendChild(document.createTextNode("Export #" + e.id + " done: " + (e.rows || 0) + " rows. "));
          text.appendChild(el("a", { href: e.download_url }, ["Download"]));
        });
      }).catch(function (err) { exportButton.disabled = false; text.textContent = "Could not start the export: " + err.message; text.className = "help error"; });
    });
  }

  document.addEventListener("DOMContentLoaded", jobs);
  if (document.readyState !== "loading") jobs();
})();
