/* Dashboard plots: the page answers with its numbers first; each plot is then drawn by the server
 * (GET .../dashboard/plots/<section>/<name>.svg, same filters) and put in place as inline SVG, so
 * its text stays text. A plot that fails to load says so in its box. */
(function () {
  "use strict";
  document.querySelectorAll("[data-plot-src]").forEach(function (box) {
    fetch(box.getAttribute("data-plot-src"), { credentials: "same-origin" })
      .then(function (response) {
        if (response.status === 204) return "";
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (svg) {
        if (!svg) { box.remove(); return; }
        var doc = new DOMParser().parseFromString(svg, "image/svg+xml");
        var root = doc.documentElement;
        if (!root || root.nodeName.toLowerCase() !== "svg") throw new Error("not an SVG");
        box.replaceChildren(document.importNode(root, true));
        box.setAttribute("data-loaded", "1");
      })
      .catch(function (err) {
        box.replaceChildren();
        var p = document.createElement("p");
        p.className = "muted";
        p.textContent = "This plot could not be drawn (" + err.message + "); reload the page.";
        box.appendChild(p);
      });
  });
})();
