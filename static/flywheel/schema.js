/* Schema editor (project settings): a live preview of the annotator form as the JSON is typed.
 * No framework, no CDN; textContent only (no HTML injection). The server checks the schema when
 * it is saved. */
(function () {
  "use strict";

  var el = window.flywheel.el;  // dom.js, loaded first

  // ---- schema editor: a live preview of the annotator form (textContent only: no HTML injection)
  function renderQuestion(q) {
    var box = el("div", { "class": "q", "data-key": String(q.key || "") });
    var title = el("div", {}, [el("strong", {}, [String(q.prompt || q.key || "(no prompt)")])]);
    if (q.required) title.appendChild(el("span", { "class": "badge" }, ["required"]));
    title.appendChild(el("span", { "class": "muted" }, ["  " + String(q.key || "?") + " · " + String(q.type || "?")]));
    box.appendChild(title);
    if (q.help) box.appendChild(el("p", { "class": "help" }, [String(q.help)]));
    var opts = el("div", { "class": "opts" });
    var items = [];
    if (q.type === "binary") items = [["yes", "1"], ["no", "2"]];
    else if (q.type === "pairwise") items = [["A is better", "a"], ["B is better", "b"], ["tie", "t"]];
    else if (q.type === "rating" && Array.isArray(q.scale)) items = q.scale.map(function (s, i) { return [String(s.value) + " " + String(s.label || ""), String(i + 1)]; });
    else if ((q.type === "single_choice" || q.type === "multi_choice") && Array.isArray(q.options))
      items = q.options.map(function (o, i) { return [String(typeof o === "object" && o ? (o.label || o.value) : o), i < 9 ? String(i + 1) : ""]; });
    if (q.type === "text") {
      box.appendChild(el("textarea", { rows: "2", disabled: "disabled", placeholder: q.prefill === "response" ? "prefilled with the response" : "" }));
    }
    items.forEach(function (pair) {
      var opt = el("span", { "class": "opt" }, [pair[0]]);
      if (pair[1]) opt.insertBefore(el("kbd", {}, [pair[1]]), opt.firstChild);
      opts.appendChild(opt);
    });
    if (items.length) box.appendChild(opts);
    var missing = { rating: "scale", single_choice: "options", multi_choice: "options" }[q.type];
    if (missing && !items.length) box.appendChild(el("p", { "class": "help error" }, ["add \"" + missing + "\" to show the choices"]));
    return box;
  }

  function schemaEditor() {
    var textarea = document.querySelector("#schema-form textarea");
    var preview = document.getElementById("schema-preview");
    var status = document.getElementById("schema-status");
    if (!textarea || !preview) return;
    function update() {
      var schema;
      try {
        schema = JSON.parse(textarea.value);
      } catch (e) {
        status.textContent = "Not valid JSON yet: " + e.message;
        status.className = "help error";
        return;
      }
      preview.textContent = "";
      var questions = (schema && Array.isArray(schema.questions)) ? schema.questions : [];
      if (!questions.length) {
        preview.appendChild(el("p", { "class": "empty" }, ["Add at least one question to \"questions\"."]));
      }
      questions.forEach(function (q) { preview.appendChild(renderQuestion(q || {})); });
      var target = schema && schema.target;
      if (target) {
        var good = Array.isArray(target.good) ? JSON.stringify(target.good) : "(add \"good\": the answers that count as good)";
        preview.appendChild(el("p", { "class": "help" }, ["Good = " + String(target.question) + " in " + good]));
      }
      status.textContent = "JSON parses; the server checks the rest when you save.";
      status.className = "help";
    }
    textarea.addEventListener("input", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", schemaEditor);
  if (document.readyState !== "loading") schemaEditor();
})();
