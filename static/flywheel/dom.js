/* Small DOM helpers shared by the page scripts (schema.js, config.js). Text goes in as text nodes
 * only: no HTML injection. */
(function () {
  "use strict";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  window.flywheel = window.flywheel || {};
  window.flywheel.el = el;
})();
