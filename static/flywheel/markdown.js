/* A small, safe Markdown renderer for conversation messages and responses.
 *
 * It builds DOM nodes with createElement/textContent only: no innerHTML anywhere, so raw HTML in
 * the text stays visible text and can never run. Supported: fenced code blocks (```), headings (#),
 * bullet and numbered lists, block quotes (>), horizontal rules, paragraphs with hard line breaks,
 * inline `code`, **bold**, *italic* / _italic_, and [links](https://...) and bare http(s) URLs.
 * Links are limited to http, https and mailto, and open with rel="noopener noreferrer nofollow".
 */
(function () {
  "use strict";

  var SAFE_URL = /^(https?:\/\/|mailto:)/i;

  function el(tag, className) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  function link(href, text) {
    var a = el("a");
    a.setAttribute("href", href);
    a.setAttribute("rel", "noopener noreferrer nofollow");
    a.setAttribute("target", "_blank");
    a.textContent = text;
    return a;
  }

  // Inline spans: code first (nothing inside code is formatted), then links, bold, italic, URLs.
  var INLINE = /(`+)([^\n]*?[^`])\1(?!`)|\[([^\]\n]{1,500})\]\(([^)\s]{1,2000})\)|\*\*([^*\n][^\n]*?)\*\*|(?<!\w)__([^_\n][^\n]*?)__(?!\w)|\*([^*\s][^*\n]*?)\*|\b_([^_\s][^_\n]*?)_\b|(https?:\/\/[^\s<>()]{1,2000}[^\s<>().,;:!?'"])/g;

  function inline(parent, text) {
    var last = 0;
    var m;
    var re = new RegExp(INLINE.source, "g"); // own state: bold and italic recurse into inline()
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      if (m[2] !== undefined) {
        var code = el("code");
        code.textContent = m[2].replace(/^ (.*) $/, "$1");
        parent.appendChild(code);
      } else if (m[3] !== undefined) {
        if (SAFE_URL.test(m[4])) parent.appendChild(link(m[4], m[3]));
        else parent.appendChild(document.createTextNode(m[0]));
      } else if (m[5] !== undefined || m[6] !== undefined) {
        var strong = el("strong");
        inline(strong, m[5] !== undefined ? m[5] : m[6]);
        parent.appendChild(strong);
      } else if (m[7] !== undefined || m[8] !== undefined) {
        var em = el("em");
        inline(em, m[7] !== undefined ? m[7] : m[8]);
        parent.appendChild(em);
      } else if (m[9] !== undefined) {
        parent.appendChild(link(m[9], m[9]));
      }
      last = re.lastIndex;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function paragraph(parent, lines) {
    var p = el("p");
    lines.forEach(function (line, i) {
      if (i) p.appendChild(el("br"));
      inline(p, line);
    });
    parent.appendChild(p);
  }

  var FENCE = /^\s{0,3}(```+|~~~+)\s*([\w+#.-]*)\s*$/;
  var HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  var BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
  var NUMBERED = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;
  var QUOTE = /^\s{0,3}>\s?(.*)$/;
  var RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;

  function blocks(parent, lines, depth) {
    var i = 0;
    var para = [];
    function flush() {
      if (para.length) paragraph(parent, para);
      para = [];
    }
    while (i < lines.length) {
      var line = lines[i];
      var m;
      if ((m = FENCE.exec(line))) {
        flush();
        var fence = m[1];
        var body = [];
        i += 1;
        while (i < lines.length && lines[i].trim().indexOf(fence) !== 0) { body.push(lines[i]); i += 1; }
        i += 1; // the closing fence (or the end of the text)
        var pre = el("pre");
        var code = el("code");
        if (m[2]) code.setAttribute("data-lang", m[2]);
        code.textContent = body.join("\n");
        pre.appendChild(code);
        parent.appendChild(pre);
        continue;
      }
      if (!line.trim()) { flush(); i += 1; continue; }
      if (RULE.test(line)) { flush(); parent.appendChild(el("hr")); i += 1; continue; }
      if ((m = HEADING.exec(line))) {
        flush();
        // Headings inside a message are shown small: the page's own headings stay the outline.
        var h = el("p", "md-h md-h" + m[1].length);
        inline(h, m[2]);
        parent.appendChild(h);
        i += 1;
        continue;
      }
      if ((m = QUOTE.exec(line)) && depth < 4) {
        flush();
        var quoted = [];
        while (i < lines.length && (m = QUOTE.exec(lines[i]))) { quoted.push(m[1]); i += 1; }
        var bq = el("blockquote");
        blocks(bq, quoted, depth + 1);
        parent.appendChild(bq);
        continue;
      }
      var bullet = BULLET.exec(line);
      var numbered = bullet ? null : NUMBERED.exec(line);
      if (bullet || numbered) {
        flush();
        var list = el(bullet ? "ul" : "ol");
        if (numbered && numbered[1] !== "1") list.setAttribute("start", String(Number(numbered[1])));
        var pattern = bullet ? BULLET : NUMBERED;
        var li = null;
        while (i < lines.length) {
          var item = pattern.exec(lines[i]);
          if (item) {
            li = el("li");
            inline(li, bullet ? item[1] : item[2]);
            list.appendChild(li);
          } else if (li && /^\s{2,}\S/.test(lines[i])) {
            li.appendChild(el("br"));
            inline(li, lines[i].trim());
          } else {
            break;
          }
          i += 1;
        }
        parent.appendChild(list);
        continue;
      }
      para.push(line);
      i += 1;
    }
    flush();
  }

  // Render ``text`` as Markdown into ``target`` (its old children are removed).
  function render(target, text) {
    target.replaceChildren();
    blocks(target, String(text === null || text === undefined ? "" : text).replace(/\r\n?/g, "\n").split("\n"), 0);
    return target;
  }

  window.FlywheelMarkdown = { render: render };
})();
