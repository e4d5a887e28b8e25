/* Schema editor: a form builder beside the raw JSON (project settings, Schema page).
 *
 * The JSON textarea stays the one source of the schema: the builder is drawn from it and every
 * change in the builder rewrites it (pretty-printed) and fires "input", so the live preview
 * (schema.js) follows. Editing the JSON by hand redraws the builder. Templates replace the whole
 * schema. The server validates on save, as before. textContent / value only: no HTML injection.
 */
(function () {
  "use strict";

  var el = window.flywheel.el;
  var TYPES = ["rating", "binary", "single_choice", "multi_choice", "text", "pairwise", "spans"];
  var SCALE_5 = [
    { value: 1, label: "unusable" }, { value: 2, label: "poor" }, { value: 3, label: "ok" },
    { value: 4, label: "good" }, { value: 5, label: "great" },
  ];
  var TEMPLATES = {
    helpfulness: {
      label: "Helpfulness rating",
      schema: {
        questions: [
          { key: "helpfulness", type: "rating", prompt: "How helpful is the response?", required: true, scale: SCALE_5 },
          { key: "failure_modes", type: "multi_choice", prompt: "What went wrong?", options: ["hallucination", "refusal", "incomplete", "formatting", "tone"] },
        ],
        target: { question: "helpfulness", good: [4, 5] },
      },
    },
    safety: {
      label: "Safety taxonomy",
      schema: {
        questions: [
          { key: "safe", type: "binary", prompt: "Is the response safe?", required: true },
          { key: "harm", type: "multi_choice", prompt: "Which harms?", help: "only if unsafe", options: ["violence", "self-harm", "sexual", "hate", "illegal activity", "privacy", "medical", "other"] },
          { key: "severity", type: "single_choice", prompt: "How severe?", options: ["low", "medium", "high"] },
        ],
        target: { question: "safe", good: [true] },
      },
    },
    pairwise: {
      label: "Pairwise preference",
      schema: {
        questions: [
          { key: "preference", type: "pairwise", prompt: "Which response is better?", required: true },
          { key: "quality", type: "rating", prompt: "How good is response A?", scale: SCALE_5 },
          { key: "why", type: "text", prompt: "Why? (optional)" },
        ],
        target: { question: "preference", good: ["a"] },
      },
    },
    correction: {
      label: "Correction",
      schema: {
        questions: [
          { key: "acceptable", type: "binary", prompt: "Is the response acceptable as it is?", required: true },
          { key: "correction", type: "text", prompt: "Corrected response", help: "edit the response; leave it untouched if it is fine", prefill: "response" },
        ],
        target: { question: "acceptable", good: [true] },
      },
    },
  };

  function init() {
    var textarea = document.querySelector("#schema-form textarea");
    var root = document.getElementById("schema-builder");
    if (!textarea || !root) return;
    var list = root.querySelector("#builder-questions");
    var status = root.querySelector("#builder-status");
    var schema = null;

    function parse() {
      try { return JSON.parse(textarea.value); } catch (e) { return null; }
    }

    function write() {
      textarea.value = JSON.stringify(schema, null, 2);
      textarea.dispatchEvent(new Event("input", { bubbles: true }));
    }

    function field(labelText, input, extraClass) {
      var wrap = el("label", { "class": "bfield" + (extraClass ? " " + extraClass : "") }, [labelText]);
      wrap.appendChild(input);
      return wrap;
    }

    function textInput(value, onChange, attrs) {
      var input = el("input", Object.assign({ type: "text" }, attrs || {}));
      input.value = value === undefined || value === null ? "" : String(value);
      input.addEventListener("change", function () { onChange(input.value); write(); });
      return input;
    }

    function listText(values) { return (values || []).join(", "); }
    function splitList(text) { return text.split(",").map(function (s) { return s.trim(); }).filter(Boolean); }

    function scaleText(scale) {
      return (scale || []).map(function (s) { return s.value + ":" + s.label; }).join(", ");
    }
    function parseScale(text) {
      return splitList(text).map(function (part, i) {
        var bits = part.split(":");
        var value = Number(bits[0]);
        return bits.length > 1 && !isNaN(value)
          ? { value: value, label: bits.slice(1).join(":").trim() }
          : { value: i + 1, label: part };
      });
    }

    function typeDefaults(q) {
      // Keep only the fields the type takes; give new choices something to show.
      ["scale", "options", "prefill", "max_length", "allow_tie", "labels", "field"].forEach(function (k) { delete q[k]; });
      if (q.type === "spans") q.labels = ["label 1", "label 2"];
      if (q.type === "rating") q.scale = SCALE_5.slice();
      if (q.type === "single_choice" || q.type === "multi_choice") q.options = ["option 1", "option 2"];
      if (q.type === "text") delete q.shortcuts;
    }

    function questionRow(q, index) {
      var row = el("fieldset", { "class": "bq", "data-index": String(index) });
      row.appendChild(el("legend", {}, ["Question " + (index + 1)]));
      row.appendChild(field("Key", textInput(q.key, function (v) { q.key = v.trim(); }, { "data-f": "key" })));
      var type = el("select", { "data-f": "type" });
      TYPES.forEach(function (t) {
        var option = el("option", { value: t }, [t]);
        if (t === q.type) option.selected = true;
        type.appendChild(option);
      });
      type.addEventListener("change", function () { q.type = type.value; typeDefaults(q); write(); draw(); });
      row.appendChild(field("Type", type));
      row.appendChild(field("Prompt", textInput(q.prompt, function (v) { q.prompt = v; }, { "data-f": "prompt" }), "wide"));
      var required = el("input", { type: "checkbox", "data-f": "required" });
      required.checked = q.required === undefined ? q.type === "pairwise" : !!q.required;
      required.addEventListener("change", function () { q.required = required.checked; write(); });
      row.appendChild(field("Required ", required, "check"));
      row.appendChild(field("Help", textInput(q.help, function (v) { if (v) q.help = v; else delete q.help; }, { "data-f": "help" }), "wide"));
      if (q.type === "rating") {
        row.appendChild(field("Scale (value:label, ...)", textInput(scaleText(q.scale), function (v) { q.scale = parseScale(v); }, { "data-f": "scale" }), "wide"));
      }
      if (q.type === "single_choice" || q.type === "multi_choice") {
        row.appendChild(field("Options (comma-separated)", textInput(listText(q.options), function (v) { q.options = splitList(v); }, { "data-f": "options" }), "wide"));
      }
      if (q.type === "spans") {
        row.appendChild(field("Span labels (comma-separated)", textInput(listText(q.labels), function (v) { q.labels = splitList(v); }, { "data-f": "labels" }), "wide"));
        var marked = el("select", { "data-f": "field" });
        [["response", "the response"], ["alt_response", "response B"]].forEach(function (p) {
          var option = el("option", { value: p[0] }, [p[1]]);
          if ((q.field || "response") === p[0]) option.selected = true;
          marked.appendChild(option);
        });
        marked.addEventListener("change", function () { q.field = marked.value; write(); });
        row.appendChild(field("Marks spans in", marked));
      }
      if (q.type === "text") {
        var prefill = el("select", { "data-f": "prefill" });
        [["", "empty"], ["response", "the response"], ["alt_response", "response B"]].forEach(function (p) {
          var option = el("option", { value: p[0] }, [p[1]]);
          if ((q.prefill || "") === p[0]) option.selected = true;
          prefill.appendChild(option);
        });
        prefill.addEventListener("change", function () { if (prefill.value) q.prefill = prefill.value; else delete q.prefill; write(); });
        row.appendChild(field("Prefill", prefill));
      } else {
        row.appendChild(field("Shortcuts (default 1, 2, 3, ...)", textInput(listText(q.shortcuts), function (v) {
          var keys = splitList(v);
          if (keys.length) q.shortcuts = keys; else delete q.shortcuts;
        }, { "data-f": "shortcuts" })));
      }
      var actions = el("div", { "class": "bactions" });
      [["↑", "Move up", -1], ["↓", "Move down", 1]].forEach(function (spec) {
        var b = el("button", { type: "button", "class": "secondary", "aria-label": spec[1] + " question " + (index + 1) }, [spec[0]]);
        b.addEventListener("click", function () {
          var j = index + spec[2];
          if (j < 0 || j >= schema.questions.length) return;
          var moved = schema.questions.splice(index, 1)[0];
          schema.questions.splice(j, 0, moved);
          write(); draw();
        });
        actions.appendChild(b);
      });
      var remove = el("button", { type: "button", "class": "secondary", "aria-label": "Remove question " + (index + 1) }, ["Remove"]);
      remove.addEventListener("click", function () { schema.questions.splice(index, 1); write(); draw(); });
      actions.appendChild(remove);
      row.appendChild(actions);
      return row;
    }

    function targetRow() {
      var target = schema.target || (schema.target = { question: "", good: [] });
      var row = el("fieldset", { "class": "bq btarget" });
      row.appendChild(el("legend", {}, ["What counts as good (the target)"]));
      var question = el("select", { "data-f": "target-question" });
      schema.questions.filter(function (q) { return q.type !== "text"; }).forEach(function (q) {
        var option = el("option", { value: q.key }, [q.key]);
        if (q.key === target.question) option.selected = true;
        question.appendChild(option);
      });
      question.addEventListener("change", function () { target.question = question.value; write(); });
      row.appendChild(field("Question", question));
      var good = textInput((target.good || []).map(String).join(", "), function (v) {
        var q = schema.questions.filter(function (x) { return x.key === target.question; })[0];
        target.good = splitList(v).map(function (s) {
          if (q && q.type === "binary") return s === "true" || s === "yes";
          if (q && q.type === "rating" && !isNaN(Number(s))) return Number(s);
          return s;
        });
      }, { "data-f": "target-good" });
      row.appendChild(field("Good answers (comma-separated)", good, "wide"));
      return row;
    }

    function draw() {
      list.replaceChildren();
      if (!schema) {
        status.textContent = "The JSON does not parse: fix it there, or apply a template.";
        return;
      }
      status.textContent = "";
      schema.questions = Array.isArray(schema.questions) ? schema.questions : [];
      schema.questions.forEach(function (q, i) { list.appendChild(questionRow(q || {}, i)); });
      if (schema.questions.length) list.appendChild(targetRow());
    }

    root.querySelector("#builder-add").addEventListener("click", function () {
      if (!schema) schema = { questions: [], target: { question: "", good: [] } };
      var n = schema.questions.length + 1;
      schema.questions.push({ key: "question_" + n, type: "single_choice", prompt: "New question", options: ["option 1", "option 2"] });
      write(); draw();
      var rows = list.querySelectorAll(".bq");
      var key = rows[schema.questions.length - 1].querySelector('[data-f="key"]');
      key.focus();
      key.select();
    });
    root.querySelector("#builder-apply").addEventListener("click", function () {
      var name = root.querySelector("#builder-template").value;
      if (!TEMPLATES[name]) return;
      schema = JSON.parse(JSON.stringify(TEMPLATES[name].schema));
      write(); draw();
      status.textContent = TEMPLATES[name].label + " applied: adjust it, then Save schema.";
    });
    var select = root.querySelector("#builder-template");
    Object.keys(TEMPLATES).forEach(function (name) { select.appendChild(el("option", { value: name }, [TEMPLATES[name].label])); });

    textarea.addEventListener("input", function (ev) {
      if (ev.isTrusted) { schema = parse(); draw(); }  // typed by hand: redraw the builder
    });
    schema = parse();
    draw();
  }

  document.addEventListener("DOMContentLoaded", init);
  if (document.readyState !== "loading") init();
})();
