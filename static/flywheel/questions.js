/* How a label-schema question is shown: its choices, its keyboard shortcuts, its order on an item
 * and which response it is about. One copy, used by the labelling page (annotate.js) and by the
 * schema editor's preview (config.js), so the keys the preview shows are the keys that work.
 *
 * Shortcuts: the server stores each question's normalised "shortcuts" (labeling/schema.py, default
 * 1..9, 0 in option order); a schema typed into the editor and not saved yet has none, so the same
 * default is applied here.
 */
(function () {
  "use strict";

  var DIGITS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"];

  function choices(q) {
    if (q.type === "binary") return [{ value: true, label: "Yes" }, { value: false, label: "No" }];
    if (q.type === "rating") {
      return (Array.isArray(q.scale) ? q.scale : []).map(function (s) {
        return { value: s.value, label: String(s.value) + " · " + String(s.label || "") };
      });
    }
    if (q.type === "pairwise") {
      var c = [{ value: "a", label: "A is better" }, { value: "b", label: "B is better" }];
      if (q.allow_tie !== false) c.push({ value: "tie", label: "Tie" });
      return c;
    }
    if (q.type === "spans") {
      return (Array.isArray(q.labels) ? q.labels : []).map(function (o) { return { value: o, label: String(o) }; });
    }
    if (q.type === "single_choice" || q.type === "multi_choice") {
      return (Array.isArray(q.options) ? q.options : []).map(function (o) { return { value: o, label: String(o) }; });
    }
    return [];
  }

  function shortcuts(q) {
    if (q.type === "text") return [];
    if (Array.isArray(q.shortcuts) && q.shortcuts.length) return q.shortcuts.map(String);
    return DIGITS.slice(0, choices(q).length);
  }

  // A pairwise question decides what the item is for: on an item with two responses it comes
  // first; without a second response it does not apply and is not shown.
  function order(questions, isPair) {
    var list = Array.isArray(questions) ? questions.filter(Boolean) : [];
    if (!isPair) return list.filter(function (q) { return q.type !== "pairwise"; });
    return list.filter(function (q) { return q.type === "pairwise"; })
      .concat(list.filter(function (q) { return q.type !== "pairwise"; }));
  }

  // On an item with two responses, every question other than the preference is about one of
  // them: ratings and choices about the judged response (A), a prefilled text about its source.
  function about(q, isPair) {
    if (!isPair || q.type === "pairwise") return "";
    if (q.type === "spans") return q.field === "alt_response" ? "Response B" : "Response A";
    if (q.type === "text") {
      if (q.prefill === "alt_response") return "Response B";
      if (q.prefill === "response") return "Response A";
      return "";
    }
    return "Response A";
  }

  window.FlywheelQuestions = { choices: choices, shortcuts: shortcuts, order: order, about: about };
})();
