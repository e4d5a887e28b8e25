/* Flywheel annotator page: keyboard-first labelling over the JSON queue API.
 *
 * Safety: everything from the server is inserted with textContent / createElement, never as HTML.
 * Keys: digits (or a question's own shortcuts) choose in the current question, j/k or arrows move
 * between questions, Enter submits, S skips, ? shows help, Esc leaves a text box or a dialog.
 * Nothing typed is lost on an error: the form stays as it is until the next item is loaded, and
 * a draft of the answers is kept in localStorage per assignment, so a reload restores them.
 * Messages and responses are rendered as Markdown by markdown.js (DOM nodes only, never HTML);
 * question order, shortcuts and choices come from questions.js (shared with the schema preview).
 */
(function () {
  "use strict";

  var cfg = JSON.parse(document.getElementById("annotate-config").textContent);
  var Q = window.FlywheelQuestions;
  var MD = window.FlywheelMarkdown;
  var DRAFT_PREFIX = "flywheel-draft:" + cfg.slug + ":";
  var DRAFT_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
  // A text longer than this is shown clamped with a "Show all" button (a 150,000-character
  // response would otherwise make the page tens of thousands of pixels tall).
  var CLAMP_CHARS = 600;
  // Earlier turns of a long conversation start folded: the last few and the response show first.
  var SHOWN_TURNS = 2;
  var byId = function (id) { return document.getElementById(id); };
  var ui = {
    item: byId("item"), conversation: byId("conversation"), responses: byId("responses"),
    meta: byId("item-meta"), questions: byId("questions"), form: byId("answers"),
    status: byId("status"), empty: byId("empty"), timer: byId("timer"), lease: byId("lease"),
    doneToday: byId("done-today"), left: byId("left"), help: byId("shortcuts"),
    helpBox: byId("shortcuts-box"), questionKeys: byId("question-keys"),
    skipDialog: byId("skip-dialog"), skipForm: byId("skip-form"), skipReason: byId("skip-reason"),
    skipCancel: byId("skip-cancel"), skipButton: byId("skip"), reload: byId("reload"),
    start: byId("start"), startButton: byId("start-button"), submitButton: byId("submit"),
    suggestion: byId("suggestion"), earlier: byId("earlier"), returned: byId("returned"), returnedCount: byId("returned-count"),
    returnedButton: byId("returned-button"), commentDialog: byId("comment-dialog"),
    commentForm: byId("comment-form"), commentBody: byId("comment-body"),
    commentFlag: byId("comment-flag"), commentCancel: byId("comment-cancel"),
    commentButton: byId("comment"),
  };

  // The item on screen: {assignment, questions (shown ones), sections, startedAt, leaseEnds, closed}
  var current = null;
  var busy = false;
  var active = 0;
  // Bumped on every local change of the counters: a progress answer requested before it is stale.
  var progressEpoch = 0;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "className") node.className = attrs[k];
        else node.setAttribute(k, attrs[k]);
      });
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function say(message, kind) {
    ui.status.hidden = !message;
    ui.status.className = "status" + (kind ? " " + kind : "");
    ui.status.textContent = message || "";
    scheduleFit();
  }

  function call(method, url, body) {
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "X-CSRFToken": cfg.csrfToken,
      },
      body: method === "GET" ? undefined : JSON.stringify(body || {}),
    }).then(function (response) {
      if (response.status === 204) return { status: 204, data: null };
      return response.json().then(
        function (data) { return { status: response.status, data: data }; },
        function () { return { status: response.status, data: null }; }
      );
    });
  }

  function assignmentUrl(template, id) {
    return template.replace("/0/", "/" + encodeURIComponent(id) + "/");
  }

  function clock(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var m = Math.floor(s / 60);
    s = s % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function tick() {
    if (!current) return;
    var now = Date.now();
    ui.timer.textContent = clock(now - current.startedAt);
    if (current.mode === "edit") { ui.lease.textContent = "editing"; ui.lease.className = ""; return; }
    var left = current.leaseEnds - now;
    if (current.closed) return;
    if (left > 0) {
      ui.lease.textContent = clock(left) + " left";
      ui.lease.className = left < 60000 ? "warn" : "";
    } else if (!current.leaseWarned) {
      current.leaseWarned = true;
      ui.lease.textContent = "expired";
      ui.lease.className = "bad";
      say("Your lease on this item expired. You can still submit, unless it has gone to someone else meanwhile.", "warn");
    }
  }
  setInterval(tick, 1000);

  function refreshProgress() {
    var epoch = progressEpoch;
    return call("GET", cfg.progressUrl).then(function (r) {
      // A submit finished while this was in flight: its answer predates the submit.
      if (epoch !== progressEpoch) return;
      if (r.status === 200 && r.data) {
        ui.doneToday.textContent = r.data.done_today;
        ui.left.textContent = r.data.left;
        showReturned(r.data.returned || 0);
      }
    }).catch(function () { /* progress is informative only */ });
  }

  // Labels a reviewer rejected go back to their annotator: a banner offers them (R opens one).
  function showReturned(count) {
    if (!ui.returned) return;
    ui.returned.hidden = !count;
    ui.returnedCount.textContent = count === 1 ? "1 of your labels was" : count + " of your labels were";
    scheduleFit();
  }

  function openReturned() {
    if (busy) return;
    draftSave();
    openLabel("&returned=1", "No label is waiting for you to revise.");
  }

  // Suggestions (off by default, a project setting): the primary judge's score, shown as such.
  function renderSuggestion(suggestion) {
    ui.suggestion.replaceChildren();
    ui.suggestion.hidden = !suggestion;
    if (!suggestion) return;
    ui.suggestion.appendChild(el("strong", null, "Suggestion: "));
    ui.suggestion.appendChild(document.createTextNode(
      "the automatic judge " + suggestion.name + " scored this response " +
      Number(suggestion.score).toFixed(2) + ". Judges are often wrong: label what you see."));
  }

  // An open queue shows later annotators the earlier answers (blind queues never do).
  function renderEarlier(answers, schema) {
    ui.earlier.replaceChildren();
    ui.earlier.hidden = !(answers && answers.length);
    if (ui.earlier.hidden) return;
    var prompts = {};
    ((schema && schema.questions) || []).forEach(function (q) { prompts[q.key] = q.prompt || q.key; });
    ui.earlier.appendChild(el("h2", null, "Earlier answers (open review)"));
    var list = el("ul");
    answers.forEach(function (a) {
      var li = el("li");
      li.appendChild(el("strong", null, a.annotator + ": "));
      li.appendChild(document.createTextNode(Object.keys(a.values || {}).map(function (k) {
        var v = a.values[k];
        var shown = Array.isArray(v) ? v.join(", ") : (typeof v === "string" && v.length > 80 ? v.slice(0, 80) + "…" : String(v));
        if (v && typeof v === "object" && !Array.isArray(v)) {
          shown = (v.spans || []).map(function (sp) { return sp.label + " “" + (sp.text || "") + "”"; }).join(", ") || "nothing marked";
        }
        return (prompts[k] || k) + " " + shown;
      }).join(" · ")));
      list.appendChild(li);
    });
    ui.earlier.appendChild(list);
  }

  // ---- span highlights ----------------------------------------------------------------------
  // A spans question shows its text in a box that refuses edits: the annotator selects with Shift+arrows
  // (or the mouse) and presses a label's key. Offsets are sent in Unicode code points of the
  // exact text the server sent (its sha256 comes with the item), so the browser's UTF-16 indexes
  // and a textarea's newline normalisation ("\r\n" -> "\n") are mapped back here.
  function spanText(original) {
    var shown = "";
    var map = [];
    var cp = 0;
    for (var i = 0; i < original.length;) {
      var code = original.codePointAt(i);
      var ch = String.fromCodePoint(code);
      i += ch.length;
      if (ch === "\r") {
        if (original.charAt(i) === "\n") { cp += 1; continue; } // "\r\n" shows as "\n"
        ch = "\n";
      }
      for (var k = 0; k < ch.length; k += 1) map.push(cp);
      shown += ch;
      cp += 1;
    }
    map.push(cp);
    return { shown: shown, map: map, chars: Array.from(original) };
  }

  function renderSpans(state) {
    state.preview.replaceChildren();
    state.list.replaceChildren();
    var marks = state.chars.map(function () { return []; });
    state.spans.forEach(function (sp) {
      for (var i = sp.start; i < sp.end && i < marks.length; i += 1) marks[i].push(sp.label);
    });
    var run = "";
    var runLabels = null;
    function flush() {
      if (!run) return;
      if (runLabels && runLabels.length) {
        var mark = el("mark", { "data-label": runLabels.join(" "), title: runLabels.join(", ") }, run);
        state.preview.appendChild(mark);
      } else {
        state.preview.appendChild(document.createTextNode(run));
      }
      run = "";
    }
    state.chars.forEach(function (ch, i) {
      var key = marks[i].join(" ");
      if (runLabels === null || key !== runLabels.join(" ")) { flush(); runLabels = marks[i]; }
      run += ch;
    });
    flush();
    state.preview.hidden = !state.spans.length;
    state.spans.forEach(function (sp, index) {
      var li = el("li");
      var button = el("button", { type: "button", className: "link-button span-remove", "aria-label": "Remove " + sp.label + " span" }, "×");
      button.addEventListener("click", function () {
        state.spans.splice(index, 1);
        renderSpans(state);
        draftSave();
        state.area.focus();
      });
      li.appendChild(button);
      li.appendChild(el("span", { className: "badge" }, sp.label));
      li.appendChild(document.createTextNode(" “" + state.chars.slice(sp.start, sp.end).join("") + "”"));
      state.list.appendChild(li);
    });
  }

  function addSpan(state, labelIndex) {
    var a = state.area.selectionStart;
    var b = state.area.selectionEnd;
    if (a === b) { say("Select some text in the box first (Shift+arrows or the mouse), then press a label's key.", "warn"); return; }
    var sp = { start: state.mapped.map[a], end: state.mapped.map[b], label: state.labels[labelIndex] };
    var exists = state.spans.some(function (x) { return x.start === sp.start && x.end === sp.end && x.label === sp.label; });
    if (!exists) state.spans.push(sp);
    state.spans.sort(function (x, y) { return x.start - y.start || x.end - y.end || (x.label < y.label ? -1 : 1); });
    renderSpans(state);
    state.area.setSelectionRange(b, b);
    say("Marked “" + state.chars.slice(sp.start, sp.end).join("") + "” as " + sp.label + ".", "info");
    draftSave();
  }

  function spanValue(state) {
    return { text_sha256: state.sha, spans: state.spans.map(function (x) { return { start: x.start, end: x.end, label: x.label }; }) };
  }

  // ---- rendering ----------------------------------------------------------------------------

  function messageText(content) {
    if (typeof content === "string") return content;
    if (Array.isArray(content)) {
      return content.map(function (part) {
        return part && typeof part === "object" ? (part.text || "[" + (part.type || "part") + "]") : String(part);
      }).join("\n");
    }
    return content === null || content === undefined ? "" : JSON.stringify(content);
  }

  // A text block rendered as Markdown; long ones are clamped with a button to show them whole.
  function textBlock(text, label) {
    var wrap = el("div", { className: "text-wrap" });
    var body = el("div", { className: "text md" });
    MD.render(body, text);
    wrap.appendChild(body);
    var length = String(text || "").length;
    if (length > CLAMP_CHARS) {
      body.classList.add("clamped");
      var more = el("button", { type: "button", className: "link-button more", "aria-expanded": "false" },
        "Show all of " + label + " (" + length.toLocaleString("en") + " characters)");
      more.addEventListener("click", function () {
        var open = body.classList.toggle("clamped") === false;
        more.setAttribute("aria-expanded", String(open));
        more.textContent = open ? "Show less" : "Show all of " + label + " (" + length.toLocaleString("en") + " characters)";
      });
      wrap.appendChild(more);
    }
    return wrap;
  }

  // A clamped text that fits in its clamp after all (short lines, wide window) loses its button.
  function unclampShort() {
    Array.prototype.forEach.call(ui.item.querySelectorAll(".text.clamped"), function (body) {
      if (body.offsetParent === null || body.scrollHeight > body.clientHeight + 4) return;
      body.classList.remove("clamped");
      var more = body.parentNode.querySelector(".more");
      if (more) more.remove();
    });
  }

  function messageItem(m) {
    var role = (m && m.role) || "unknown";
    var li = el("li", { className: "msg role-" + String(role).replace(/[^a-z_]/gi, "") });
    li.appendChild(el("span", { className: "role" }, role));
    li.appendChild(textBlock(messageText(m && m.content), "this message"));
    return li;
  }

  function renderConversation(interaction) {
    ui.conversation.replaceChildren();
    var messages = interaction.messages || [];
    var folded = Math.max(0, messages.length - SHOWN_TURNS);
    if (folded > 0) {
      var holder = el("li", { className: "earlier" });
      var details = el("details");
      details.appendChild(el("summary", null, folded + " earlier message" + (folded === 1 ? "" : "s")));
      var list = el("ol", { className: "conversation" });
      messages.slice(0, folded).forEach(function (m) { list.appendChild(messageItem(m)); });
      details.appendChild(list);
      holder.appendChild(details);
      ui.conversation.appendChild(holder);
    }
    messages.slice(folded).forEach(function (m) { ui.conversation.appendChild(messageItem(m)); });
    var bits = [interaction.external_id];
    if (interaction.model_version) bits.push(interaction.model_version);
    Object.keys(interaction.segment || {}).forEach(function (k) { bits.push(k + "=" + interaction.segment[k]); });
    ui.meta.textContent = "· " + bits.join(" · ");
  }

  function renderResponses(interaction) {
    ui.responses.replaceChildren();
    var pair = !!interaction.alt_response;
    ui.responses.className = "responses" + (pair ? " pair" : "");
    var blocks = pair
      ? [["A", interaction.response, interaction.model_version], ["B", interaction.alt_response, interaction.alt_model_version]]
      : [["Response", interaction.response, null]];
    blocks.forEach(function (b) {
      var box = el("article", { className: "response", "aria-label": pair ? "Response " + b[0] : "Response" });
      var h = el("h2", null, pair ? "Response " + b[0] : "Response");
      box.appendChild(h);
      box.appendChild(textBlock(b[1], pair ? "response " + b[0] : "the response"));
      ui.responses.appendChild(box);
    });
  }

  function renderQuestions(schema, interaction) {
    ui.questions.replaceChildren();
    var shown = [];
    var sections = [];
    var pair = !!interaction.alt_response;
    Q.order(schema.questions, pair).forEach(function (q) {
      var index = shown.length;
      var choices = Q.choices(q);
      var keys = Q.shortcuts(q);
      var section = el("fieldset", { className: "q", "data-key": q.key, "data-index": String(index), tabindex: "-1" });
      var legend = el("legend", null, q.prompt || q.key);
      if (q.required) legend.appendChild(el("span", { className: "req", title: "required" }, " *"));
      var about = Q.about(q, pair);
      if (about) legend.appendChild(el("span", { className: "about" }, "about " + about));
      section.appendChild(legend);
      if (q.help) section.appendChild(el("p", { className: "help" }, q.help));
      var name = "q-" + q.key;
      var spans = null;
      if (q.type === "spans") {
        var field = q.field || "response";
        var source = String(interaction[field] || "");
        var mapped = spanText(source);
        // Not `readonly`: Chromium moves no caret in a read-only box, so Shift+arrows could not
        // select. Every edit is refused instead (beforeinput), so the text stays exactly as sent.
        var box = el("textarea", { name: name, id: name, rows: "6", "aria-readonly": "true", spellcheck: "false", className: "span-source", "aria-label": "Text to mark for " + (q.prompt || q.key) });
        box.value = mapped.shown;
        box.addEventListener("beforeinput", function (ev) { ev.preventDefault(); });
        box.addEventListener("drop", function (ev) { ev.preventDefault(); });
        section.appendChild(box);
        var keysLine = el("div", { className: "span-labels" });
        choices.forEach(function (c, i) {
          var chip = el("span", { className: "span-label" });
          if (keys[i]) chip.appendChild(el("kbd", null, keys[i]));
          chip.appendChild(document.createTextNode(" " + c.label));
          keysLine.appendChild(chip);
        });
        section.appendChild(keysLine);
        spans = {
          area: box, mapped: mapped, chars: mapped.chars, spans: [],
          labels: choices.map(function (c) { return c.value; }),
          sha: (interaction.text_sha256 || {})[field] || "",
          preview: el("div", { className: "span-preview text" }), list: el("ul", { className: "span-list" }),
        };
        spans.preview.hidden = true;
        section.appendChild(spans.preview);
        section.appendChild(spans.list);
        section.appendChild(el("p", { className: "help" }, "Select with Shift+arrows or the mouse, then press a label's key · × removes · Esc leaves the box · Enter submits"));
      } else if (q.type === "text") {
        var prefill = q.prefill ? (interaction[q.prefill] || "") : "";
        var area = el("textarea", { name: name, id: name, rows: "6", "aria-label": q.prompt || q.key });
        area.value = prefill;
        section.appendChild(area);
        section.appendChild(el("p", { className: "help" }, "Esc leaves the box · Ctrl+Enter submits"));
      } else {
        var list = el("div", { className: "choices", role: "presentation" });
        choices.forEach(function (c, i) {
          var id = name + "-" + i;
          var label = el("label", { for: id, className: "choice" });
          var input = el("input", { type: q.type === "multi_choice" ? "checkbox" : "radio", name: name, id: id, value: String(i) });
          label.appendChild(input);
          if (keys[i]) label.appendChild(el("kbd", null, keys[i]));
          label.appendChild(el("span", null, c.label));
          list.appendChild(label);
        });
        section.appendChild(list);
      }
      section.appendChild(el("p", { className: "q-error", role: "alert" }));
      ui.questions.appendChild(section);
      shown.push({ q: q, choices: choices, keys: keys, spans: spans, prefill: q.type === "text" && q.prefill ? (interaction[q.prefill] || "") : null });
      sections.push(section);
    });
    renderQuestionKeys(shown);
    return { shown: shown, sections: sections };
  }

  function renderQuestionKeys(shown) {
    ui.questionKeys.replaceChildren();
    shown.forEach(function (s) {
      if (!s.choices.length) return;
      var p = el("p", null);
      p.appendChild(el("strong", null, (s.q.prompt || s.q.key) + ": "));
      s.choices.forEach(function (c, i) {
        if (!s.keys[i]) return;
        p.appendChild(el("kbd", null, s.keys[i]));
        p.appendChild(document.createTextNode(" " + c.label + "  "));
      });
      ui.questionKeys.appendChild(p);
    });
  }

  // The answer form never runs below the fold: on wide screens it is a sticky column whose
  // height is what is left of the window under its top edge, and its Submit bar sticks to the
  // bottom of it (annotate.css). On narrow screens it follows the item.
  var fitPending = false;
  function fitAnswers() {
    fitPending = false;
    if (window.innerWidth <= 900) { ui.form.style.maxHeight = ""; return; }
    var top = Math.max(8, ui.form.getBoundingClientRect().top);
    ui.form.style.maxHeight = Math.max(240, window.innerHeight - top - 8) + "px";
  }
  function scheduleFit() {
    if (fitPending) return;
    fitPending = true;
    window.requestAnimationFrame(fitAnswers);
  }
  window.addEventListener("resize", scheduleFit);
  window.addEventListener("scroll", scheduleFit, { passive: true });

  // ---- focus and choosing -------------------------------------------------------------------

  function setActive(index, focus) {
    if (!current || !current.sections.length) return;
    active = Math.max(0, Math.min(index, current.sections.length - 1));
    current.sections.forEach(function (s, i) { s.classList.toggle("active", i === active); });
    if (focus) {
      var section = current.sections[active];
      var area = section.querySelector("textarea");
      if (area) area.focus();
      else section.focus();
      section.scrollIntoView({ block: "nearest" });
    }
  }

  function choose(index) {
    var shown = current.shown[active];
    var inputs = current.sections[active].querySelectorAll("input");
    if (!inputs[index]) return;
    if (shown.q.type === "multi_choice") {
      inputs[index].checked = !inputs[index].checked;
    } else {
      inputs[index].checked = true;
      clearError(active);
      if (active < current.sections.length - 1) setActive(active + 1, true);
    }
    draftSave();
  }

  function clearError(index) {
    var section = current.sections[index];
    section.classList.remove("invalid");
    section.querySelector(".q-error").textContent = "";
  }

  // ---- drafts: the answers chosen so far survive a reload ------------------------------------

  function draftKey(assignmentId) { return DRAFT_PREFIX + assignmentId; }

  function draftRead() {
    // What the form holds now: choice indexes per question, text per text question.
    var draft = { savedAt: Date.now(), answers: {} };
    current.shown.forEach(function (s, i) {
      var section = current.sections[i];
      if (s.spans) {
        draft.answers[s.q.key] = { spans: s.spans.spans.slice() };
      } else if (s.q.type === "text") {
        draft.answers[s.q.key] = { text: section.querySelector("textarea").value };
      } else {
        draft.answers[s.q.key] = {
          checked: Array.prototype.filter.call(section.querySelectorAll("input"), function (x) { return x.checked; })
            .map(function (x) { return Number(x.value); }),
        };
      }
    });
    return draft;
  }

  function draftSave() {
    if (!current || current.closed || current.mode === "edit") return;
    try { window.localStorage.setItem(draftKey(current.assignment.id), JSON.stringify(draftRead())); }
    catch (e) { /* storage full or disabled: drafts are a convenience */ }
  }

  function draftDrop(assignmentId) {
    try { window.localStorage.removeItem(draftKey(assignmentId)); } catch (e) { /* ignore */ }
  }

  function draftRestore() {
    var raw = null;
    try { raw = window.localStorage.getItem(draftKey(current.assignment.id)); } catch (e) { return false; }
    if (!raw) return false;
    var draft;
    try { draft = JSON.parse(raw); } catch (e) { return false; }
    var restored = false;
    current.shown.forEach(function (s, i) {
      var saved = draft && draft.answers && draft.answers[s.q.key];
      if (!saved) return;
      var section = current.sections[i];
      if (s.spans) {
        if (Array.isArray(saved.spans) && saved.spans.length) { s.spans.spans = saved.spans.slice(); renderSpans(s.spans); restored = true; }
        return;
      }
      if (s.q.type === "text") {
        if (typeof saved.text === "string") { section.querySelector("textarea").value = saved.text; restored = true; }
        return;
      }
      var inputs = section.querySelectorAll("input");
      (saved.checked || []).forEach(function (index) {
        if (inputs[index]) { inputs[index].checked = true; restored = true; }
      });
    });
    return restored;
  }

  function draftsPrune() {
    // Drafts of assignments that ended elsewhere (another tab, an expired lease) are dropped after a week.
    try {
      var now = Date.now();
      for (var i = window.localStorage.length - 1; i >= 0; i -= 1) {
        var key = window.localStorage.key(i);
        if (!key || key.indexOf("flywheel-draft:") !== 0) continue;
        var saved = null;
        try { saved = JSON.parse(window.localStorage.getItem(key)); } catch (e) { saved = null; }
        if (!saved || !(now - saved.savedAt < DRAFT_MAX_AGE_MS)) window.localStorage.removeItem(key);
      }
    } catch (e) { /* ignore */ }
  }

  // ---- values, submit, skip -----------------------------------------------------------------

  function collect() {
    var values = {};
    current.shown.forEach(function (s, i) {
      var section = current.sections[i];
      var key = s.q.key;
      if (s.spans) {
        values[key] = spanValue(s.spans);
        return;
      }
      if (s.q.type === "text") {
        var text = section.querySelector("textarea").value;
        // An untouched prefill is not a correction; say nothing unless the question is required.
        if (text.trim() === "" || (s.prefill !== null && text === s.prefill && !s.q.required)) return;
        values[key] = text;
        return;
      }
      var checked = Array.prototype.filter.call(section.querySelectorAll("input"), function (x) { return x.checked; })
        .map(function (x) { return s.choices[Number(x.value)].value; });
      if (s.q.type === "multi_choice") {
        if (checked.length) values[key] = checked;
      } else if (checked.length) {
        values[key] = checked[0];
      }
    });
    return values;
  }

  function showErrors(errors) {
    var first = null;
    current.shown.forEach(function (s, i) {
      var message = errors && errors[s.q.key];
      var section = current.sections[i];
      section.classList.toggle("invalid", !!message);
      section.querySelector(".q-error").textContent = message ? String(message) : "";
      if (message && first === null) first = i;
    });
    var unknown = Object.keys(errors || {}).filter(function (k) {
      return !current.shown.some(function (s) { return s.q.key === k; });
    });
    if (first !== null) setActive(first, true);
    return unknown.map(function (k) { return k + ": " + errors[k]; }).join("; ");
  }

  function closeItem(message) {
    current.closed = true;
    current.leaseWarned = true;
    current.leaseEnds = 0;
    ui.lease.textContent = "closed";
    ui.lease.className = "bad";
    say(message, "bad");
    var next = el("button", { type: "button", className: "next-item" }, "Load the next item");
    next.addEventListener("click", loadNext);
    ui.status.appendChild(document.createTextNode(" "));
    ui.status.appendChild(next);
    next.focus();
  }

  function submit() {
    if (!current || busy) return;
    if (current.mode === "edit") { saveEdit(); return; }
    if (current.closed) { loadNext(); return; }
    var values = collect();
    var missing = current.shown.filter(function (s) { return s.q.required && values[s.q.key] === undefined; });
    if (missing.length) {
      var errors = {};
      missing.forEach(function (s) { errors[s.q.key] = "this question is required"; });
      showErrors(errors);
      say("Answer the required questions (marked *) first.", "bad");
      return;
    }
    busy = true;
    say("Saving…", "info");
    var body = { values: values, time_spent_ms: Date.now() - current.startedAt };
    // One round trip: the submit answer carries the next item (?next=1), so it appears at once.
    var url = assignmentUrl(cfg.submitUrl, current.assignment.id) + "?next=1" +
      (cfg.queue ? "&queue=" + encodeURIComponent(cfg.queue) : "");
    call("POST", url, body).then(function (r) {
      busy = false;
      if (r.status === 201) {
        say("Saved.", "ok");
        draftDrop(current.assignment.id);
        progressEpoch += 1;
        ui.doneToday.textContent = String(Number(ui.doneToday.textContent || 0) + 1);
        if (r.data && r.data.next !== undefined) showNext({ status: r.data.next ? 200 : 204, data: r.data.next });
        else loadNext();
      } else if (r.status === 400) {
        var extra = showErrors((r.data && r.data.errors && r.data.errors.values) || {});
        say(((r.data && r.data.detail) || "The submission is invalid.") + (extra ? " " + extra : ""), "bad");
      } else if (r.status === 409) {
        draftDrop(current.assignment.id);
        closeItem((r.data && r.data.detail) || "This item is closed.");
      } else if (r.status === 404) {
        draftDrop(current.assignment.id);
        closeItem("This assignment is no longer yours. Your answers are still shown; copy what you need.");
      } else if (r.status === 403) {
        say("You are not allowed to label in this project any more (or your session ended: log in again in another tab, then press Enter).", "bad");
      } else {
        say("The server could not save this (HTTP " + r.status + "). Your answers are still here: press Enter to retry.", "bad");
      }
    }).catch(function () {
      busy = false;
      say("Could not reach the server. Your answers are still here: press Enter to retry.", "bad");
    });
  }

  // ---- history: go back to a submitted item and change the answer -------------------------

  function valueIndex(choices, value) {
    for (var i = 0; i < choices.length; i += 1) {
      if (choices[i].value === value || (typeof value === "number" && choices[i].value === value)) return i;
    }
    return -1;
  }

  function prefill(values) {
    current.shown.forEach(function (s, i) {
      var value = values[s.q.key];
      var section = current.sections[i];
      if (s.spans) {
        s.spans.spans = ((value && value.spans) || []).map(function (x) { return { start: x.start, end: x.end, label: x.label }; });
        renderSpans(s.spans);
        return;
      }
      if (s.q.type === "text") {
        section.querySelector("textarea").value = typeof value === "string" ? value : (s.prefill || "");
        return;
      }
      var inputs = section.querySelectorAll("input");
      Array.prototype.forEach.call(inputs, function (x) { x.checked = false; });
      var wanted = s.q.type === "multi_choice" ? (Array.isArray(value) ? value : []) : (value === undefined ? [] : [value]);
      wanted.forEach(function (v) {
        var index = valueIndex(s.choices, v);
        if (index !== -1 && inputs[index]) inputs[index].checked = true;
      });
    });
  }

  function showEdit(row) {
    showItem({
      id: "edit-" + row.annotation_id,
      interaction: row.interaction,
      schema: row.schema,
      lease_expires_at: null,
    }, row);
  }

  // Backspace: the previous submitted item (Prodigy-style undo); again goes further back.
  function goBack() {
    if (busy) return;
    draftSave();
    var before = current && current.mode === "edit" ? current.row.annotation_id : null;
    openLabel(before === null ? "" : "&before=" + before, "Nothing earlier to go back to.");
  }

  function openLabel(query, emptyMessage) {
    busy = true;
    call("GET", cfg.myLabelsUrl + "?period=all&limit=1" + query).then(function (r) {
      busy = false;
      var row = r.status === 200 && r.data && r.data.results && r.data.results[0];
      if (!row) { say(emptyMessage, "info"); return; }
      if (ui.start) ui.start.hidden = true;
      showEdit(row);
    }).catch(function () {
      busy = false;
      say("Could not reach the server to open your earlier answer.", "bad");
    });
  }

  function saveEdit() {
    if (!current.row.editable) {
      say("A reviewer has adjudicated this item; your answer can no longer be changed. Esc returns to your current item.", "bad");
      return;
    }
    var values = collect();
    busy = true;
    say("Saving your change…", "info");
    var url = assignmentUrl(cfg.editUrl, current.row.annotation_id);
    call("POST", url, { values: values, time_spent_ms: Date.now() - current.startedAt }).then(function (r) {
      busy = false;
      if (r.status === 201) {
        say("Changed your answer to " + current.row.interaction.external_id + ".", "ok");
        loadNext();
      } else if (r.status === 400) {
        var extra = showErrors((r.data && r.data.errors && r.data.errors.values) || {});
        say(((r.data && r.data.detail) || "The change is invalid.") + (extra ? " " + extra : ""), "bad");
      } else {
        say((r.data && r.data.detail) || "Could not save the change (HTTP " + r.status + ").", "bad");
      }
    }).catch(function () {
      busy = false;
      say("Could not reach the server. Your change is still here: press Enter to retry.", "bad");
    });
  }

  // C: a comment (optionally a flag for a reviewer) on the item on screen.
  function openComment() {
    if (!current || busy || !current.itemId) return;
    ui.commentDialog.hidden = false;
    ui.commentBody.value = "";
    ui.commentFlag.checked = false;
    ui.commentBody.focus();
  }

  function closeComment() {
    ui.commentDialog.hidden = true;
    setActive(active, true);
  }

  function sendComment() {
    if (!current || busy) return;
    var body = { body: ui.commentBody.value, flag: ui.commentFlag.checked };
    if (!body.body.trim() && !body.flag) { say("Write a comment, or tick “Flag for a reviewer”.", "bad"); return; }
    busy = true;
    call("POST", assignmentUrl(cfg.commentsUrl, current.itemId), body).then(function (r) {
      busy = false;
      if (r.status === 201) {
        closeComment();
        say(body.flag ? "Flagged for a reviewer." : "Comment saved for the reviewers.", "ok");
      } else {
        var detail = (r.data && (r.data.errors && r.data.errors.body)) || (r.data && r.data.detail);
        say("Could not save the comment: " + (detail || "HTTP " + r.status) + ".", "bad");
      }
    }).catch(function () {
      busy = false;
      say("Could not reach the server; the comment was not saved.", "bad");
    });
  }

  function openSkip() {
    if (!current || current.closed || busy || current.mode === "edit") return;
    ui.skipDialog.hidden = false;
    ui.skipReason.value = "";
    ui.skipReason.focus();
  }

  function closeSkip() {
    ui.skipDialog.hidden = true;
    setActive(active, true);
  }

  function skip(reason) {
    if (!current || busy) return;
    busy = true;
    call("POST", assignmentUrl(cfg.skipUrl, current.assignment.id), { reason: reason }).then(function (r) {
      busy = false;
      ui.skipDialog.hidden = true;
      if (r.status === 200) {
        draftDrop(current.assignment.id);
        say("Skipped.", "info");
        loadNext();
      } else {
        closeItem((r.data && r.data.detail) || "Could not skip (HTTP " + r.status + ").");
      }
    }).catch(function () {
      busy = false;
      ui.skipDialog.hidden = true;
      say("Could not reach the server; the item was not skipped.", "bad");
    });
  }

  function toggleHelp(show) {
    var open = show === undefined ? ui.help.hidden : show;
    ui.help.hidden = !open;
    if (open) ui.helpBox.focus();
    else setActive(active, true);
  }

  // ---- loading ------------------------------------------------------------------------------

  function showItem(data, editRow) {
    var interaction = data.interaction;
    renderConversation(interaction);
    renderResponses(interaction);
    var rendered = renderQuestions(data.schema || { questions: [] }, interaction);
    renderSuggestion(editRow ? null : data.suggestion);
    renderEarlier(editRow ? null : data.earlier_answers, data.schema);
    current = {
      itemId: editRow ? editRow.queue_item_id : data.queue_item_id,
      assignment: data,
      shown: rendered.shown,
      sections: rendered.sections,
      startedAt: Date.now(),
      leaseEnds: editRow ? NaN : Date.parse(data.lease_expires_at),
      leaseWarned: false,
      closed: false,
      mode: editRow ? "edit" : "label",
      row: editRow || null,
    };
    ui.empty.hidden = true;
    ui.item.hidden = false;
    ui.item.setAttribute("data-assignment", String(data.id));
    ui.item.setAttribute("data-external-id", interaction.external_id);
    ui.item.setAttribute("data-queue", data.queue ? data.queue.slug : "main");
    if (data.queue) ui.meta.textContent += " · queue " + data.queue.name;
    ui.item.setAttribute("data-mode", current.mode);
    ui.submitButton.firstChild.textContent = editRow ? "Save change " : "Submit ";
    ui.skipButton.hidden = !!editRow;
    unclampShort();
    fitAnswers();
    var review = editRow && editRow.review;
    if (review && review.status === "rejected") {
      prefill(editRow.values || {});
      say("Sent back by " + (review.reviewer || "a reviewer") + ": “" + review.note + "” Change your answer to " +
        interaction.external_id + " and press Enter to save it; Esc returns to your current item.", "warn");
      ui.item.setAttribute("data-mode", "revise");
    } else if (editRow) {
      prefill(editRow.values || {});
      var when = editRow.submitted_at ? new Date(editRow.submitted_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
      say(editRow.editable
        ? "Editing your answer to " + interaction.external_id + (when ? " (submitted " + when + ")" : "") + ". Enter saves the change, Backspace goes further back, Esc returns to your current item."
        : "Your answer to " + interaction.external_id + " (adjudicated by a reviewer: it can no longer be changed). Esc returns to your current item.", "info");
    } else if (draftRestore()) say("Restored the answers you had chosen before the page was reloaded.", "info");
    tick();
    setActive(0, true);
  }

  function loadNext() {
    if (busy) return;
    busy = true;
    if (ui.start) ui.start.hidden = true;
    call("POST", cfg.nextUrl).then(function (r) {
      busy = false;
      showNext(r);
    }).catch(function () {
      busy = false;
      say("Could not reach the server to load the next item. Press Enter to try again.", "bad");
    });
  }

  // Show a queue/next answer (from queue/next itself or carried by a submit's answer).
  function showNext(r) {
    if (r.status === 200) {
      if (ui.status.className.indexOf("bad") !== -1 || ui.status.className.indexOf("warn") !== -1) say("");
      showItem(r.data);
    } else if (r.status === 204) {
      current = null;
      ui.item.hidden = true;
      ui.empty.hidden = false;
      ui.timer.textContent = "–";
      ui.lease.textContent = "–";
      say("");
      ui.reload.focus();
    } else {
      say((r.data && r.data.detail) || "Could not load the next item (HTTP " + r.status + ").", "bad");
    }
    refreshProgress();
  }

  // ---- events -------------------------------------------------------------------------------

  ui.form.addEventListener("submit", function (ev) { ev.preventDefault(); submit(); });
  ui.skipButton.addEventListener("click", openSkip);
  ui.skipForm.addEventListener("submit", function (ev) { ev.preventDefault(); skip(ui.skipReason.value); });
  ui.skipCancel.addEventListener("click", closeSkip);
  ui.reload.addEventListener("click", loadNext);
  ui.commentButton.addEventListener("click", openComment);
  ui.commentForm.addEventListener("submit", function (ev) { ev.preventDefault(); sendComment(); });
  ui.commentCancel.addEventListener("click", closeComment);
  ui.returnedButton.addEventListener("click", openReturned);
  if (ui.startButton) ui.startButton.addEventListener("click", loadNext);
  ui.questions.addEventListener("input", draftSave);

  ui.questions.addEventListener("focusin", function (ev) {
    var section = ev.target.closest && ev.target.closest(".q");
    if (section && current) setActive(Number(section.getAttribute("data-index")), false);
  });
  ui.questions.addEventListener("change", function (ev) {
    var section = ev.target.closest && ev.target.closest(".q");
    if (section && current) clearError(Number(section.getAttribute("data-index")));
    draftSave();
  });

  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.isComposing) return;
    var target = ev.target;
    if (!ui.skipDialog.hidden) {
      if (ev.key === "Escape") { ev.preventDefault(); closeSkip(); }
      return; // typing the reason; Enter submits the skip form
    }
    if (!ui.commentDialog.hidden) {
      if (ev.key === "Escape") { ev.preventDefault(); closeComment(); }
      else if (ev.key === "Enter" && !ev.shiftKey && target && target.tagName !== "BUTTON") { ev.preventDefault(); sendComment(); }
      return; // typing the comment; Shift+Enter is a new line
    }
    if (!ui.help.hidden) {
      if (ev.key === "Escape" || ev.key === "?") { ev.preventDefault(); toggleHelp(false); }
      return;
    }
    var typing = target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"));
    var spanBox = typing && target.classList.contains("span-source") && current ? current.shown[active] : null;
    if (spanBox && spanBox.spans && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
      var labelIndex = spanBox.keys.indexOf(ev.key);
      if (labelIndex !== -1) { ev.preventDefault(); addSpan(spanBox.spans, labelIndex); return; }
      if (ev.key === "Enter") { ev.preventDefault(); submit(); return; }
      if (ev.key === "Backspace" && !spanBox.spans.spans.length) { ev.preventDefault(); goBack(); return; }
    }
    if (typing) {
      if (ev.key === "Escape") {
        ev.preventDefault();
        var section = target.closest(".q");
        if (section) section.focus();
        else target.blur();
      } else if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        submit();
      }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.key === "?") { ev.preventDefault(); toggleHelp(true); return; }
    if (ev.key === "Enter") {
      // A focused button or link (e.g. "Load the next item") does its own thing.
      if (target && (target.tagName === "BUTTON" || target.tagName === "A" || target.tagName === "SUMMARY")) return;
      ev.preventDefault();
      if (current) submit();
      else loadNext();
      return;
    }
    if (ev.key === "Backspace") { ev.preventDefault(); goBack(); return; }
    if (ev.key === "R") { ev.preventDefault(); openReturned(); return; }
    if (current && current.mode === "edit" && ev.key === "Escape") { ev.preventDefault(); say(""); loadNext(); return; }
    if (!current || current.closed) return;
    if (ev.key === "s" || ev.key === "S") { ev.preventDefault(); openSkip(); return; }
    if (ev.key === "C") { ev.preventDefault(); openComment(); return; }
    var onChoice = target && target.tagName === "INPUT";
    if (ev.key === "j" || (ev.key === "ArrowDown" && !onChoice)) { ev.preventDefault(); setActive(active + 1, true); return; }
    if (ev.key === "k" || (ev.key === "ArrowUp" && !onChoice)) { ev.preventDefault(); setActive(active - 1, true); return; }
    var shown = current.shown[active];
    if (!shown) return;
    var index = shown.keys.indexOf(ev.key);
    if (index !== -1) { ev.preventDefault(); choose(index); }
  });

  draftsPrune();
  showReturned(cfg.returned || 0);
  // Annotators get their next item at once. Reviewers and admins who open the page only to look
  // take no lease until they press Start (a look must not take work away from annotators).
  if (cfg.editAnnotation) openLabel("&id=" + encodeURIComponent(cfg.editAnnotation), "That answer is not yours or no longer current.");
  else if (cfg.autoStart) loadNext();
  else if (ui.startButton) ui.startButton.focus();
})();
