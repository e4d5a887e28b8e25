/* Schema editor (project settings): a live preview of the annotator form as the JSON is typed.
 * No framework, no CDN; textContent only (no HTML injection). The server checks the schema when
 * it is saved. */
(function () {
  "use strict";

  var el = window.flywheel.el;  // dom.js, loaded first
  var Q = window.FlywheelQuestions;  // questions.js: the labelling page's own choices and keys

  // ---- schema editor: a live preview of the annotator form (textContent only: no HTML injection)
  function renderQuestion(q, isPair) {
    var box = el("div", { "class": "q", "data-key": String(q.key || "") });
    var title = el("div", {}, [el("strong", {}, [String(q.prompt || q.key || "(no prompt)")])]);
    // The server's default: a pairwise question is required unless it says "required": false.
    var required = q.required === undefined ? q.type === "pairwise" : q.required;
    if (required) title.appendChild(el("span", { "class": "badge" }, ["required"]));
    title.appendChild(el("span", { "class": "muted" }, ["  " + String(q.key || "?") + " · " + String(q.type || "?")]));
    var about = Q.about(q, isPair);
    if (about) title.appendChild(el("span", { "class": "muted" }, [" · about " + about]));
    box.appendChild(title);
    if (q.help) box.appendChild(el("p", { "class": "help" }, [String(q.help)]));
    var opts = el("div", { "class": "opts" });
    var keys = Q.shortcuts(q);
    var items = Q.choices(q).map(function (c, i) { return [c.label, keys[i] || ""]; });
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
      // Shown as an item with two responses when the schema asks a preference (it comes first there).
      var isPair = questions.some(function (q) { return q && q.type === "pairwise"; });
      if (isPair) preview.appendChild(el("p", { "class": "help" }, ["As on an item with two responses (A = response, B = alt_response); items with one response skip the preference."]));
      Q.order(questions, isPair).forEach(function (q) { preview.appendChild(renderQuestion(q || {}, isPair)); });
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
