/* The project switcher (<details>): close it with Escape or a click elsewhere. Works without JS. */
(function () {
  "use strict";
  function switcher() { return document.querySelector("details.switcher"); }
  document.addEventListener("keydown", function (ev) {
    var box = switcher();
    if (ev.key === "Escape" && box && box.open) {
      box.open = false;
      box.querySelector("summary").focus();
    }
  });
  document.addEventListener("click", function (ev) {
    var box = switcher();
    if (box && box.open && !box.contains(ev.target)) box.open = false;
  });
})();
