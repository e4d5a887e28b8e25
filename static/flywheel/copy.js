/* Copy buttons: <button data-copy="#selector"> copies that element's text to the clipboard. */
(function () {
  "use strict";
  function copy(button) {
    var source = document.querySelector(button.getAttribute("data-copy"));
    var status = document.getElementById("copy-status");
    if (!source) return;
    var text = source.textContent.trim();
    function said(message) { if (status) status.textContent = message; }
    function fallback() {
      var range = document.createRange();
      range.selectNodeContents(source);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      said(document.execCommand && document.execCommand("copy") ? "Copied." : "Selected: press Ctrl+C to copy.");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { said("Copied."); }, fallback);
    } else {
      fallback();
    }
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () { copy(button); });
  });
})();
