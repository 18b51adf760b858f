// The template editor: CodeMirror on the four parts, a debounced live preview in a sandboxed
// iframe (no scripts), lint problems marked on their lines, a subscriber picker.
(function () {
  "use strict";
  var form = document.getElementById("editor");
  if (!form) return;
  var csrf = form.querySelector("[name=csrf_token]").value;
  var readOnly = form.dataset.readonly === "yes";
  var frame = document.getElementById("preview-frame");
  var issuesList = document.getElementById("issues");
  var noIssues = document.getElementById("no-issues");
  var picker = document.getElementById("preview-subscriber");
  var options = document.getElementById("subscriber-options");
  var labels = { mjml: "MJML", subject: "Subject", preheader: "Preheader", text: "Text part" };
  var editors = {};
  var DELAY = 250;

  if (window.CodeMirror) {
    CodeMirror.defineMode("mjml-jinja", function (config) {
      return CodeMirror.overlayMode(CodeMirror.getMode(config, "xml"), CodeMirror.getMode(config, "jinja2"));
    });
    form.querySelectorAll("textarea[data-part]").forEach(function (area) {
      var part = area.dataset.part;
      var label = form.querySelector("label[for=" + area.id + "]").textContent;
      var cm = CodeMirror.fromTextArea(area, {
        mode: part === "mjml" ? "mjml-jinja" : "jinja2",
        lineNumbers: part === "mjml" || part === "text",
        lineWrapping: true,
        readOnly: readOnly,
        inputStyle: "textarea",
        screenReaderLabel: label,
        gutters: ["lint-gutter", "CodeMirror-linenumbers"],
        viewportMargin: part === "mjml" ? 10 : Infinity
      });
      cm.on("change", schedule);
      editors[part] = cm;
    });
  } else {
    form.querySelectorAll("textarea[data-part]").forEach(function (area) {
      area.addEventListener("input", schedule);
    });
  }

  function value(part) {
    if (editors[part]) return editors[part].getValue();
    return form.querySelector("[name=" + part + "]").value;
  }

  var timer = null;
  var sequence = 0;
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, DELAY);
  }

  function clearMarks() {
    Object.keys(editors).forEach(function (part) {
      var cm = editors[part];
      cm.clearGutter("lint-gutter");
      for (var i = 0; i < cm.lineCount(); i++) cm.removeLineClass(i, "background", "cm-lint-line");
    });
  }

  function showIssues(issues) {
    clearMarks();
    issuesList.textContent = "";
    issues.forEach(function (issue) {
      var item = document.createElement("li");
      item.className = issue.severity;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "issue";
      button.dataset.part = issue.part;
      button.dataset.line = issue.line;
      button.textContent = (labels[issue.part] || issue.path || issue.part) + ", line " + issue.line + ": " + issue.severity + ": " + issue.message;
      item.appendChild(button);
      issuesList.appendChild(item);
      var cm = editors[issue.part];
      if (cm) {
        var line = Math.max(0, Math.min(cm.lineCount() - 1, issue.line - 1));
        cm.addLineClass(line, "background", "cm-lint-line");
        var marker = document.createElement("span");
        marker.className = "lint-marker";
        marker.title = issue.message;
        marker.textContent = "●";
        cm.setGutterMarker(line, "lint-gutter", marker);
      }
    });
    noIssues.hidden = issues.length > 0;
  }

  issuesList.addEventListener("click", function (event) {
    var button = event.target.closest("button.issue");
    if (!button) return;
    var cm = editors[button.dataset.part];
    if (cm) {
      cm.focus();
      cm.setCursor({ line: Number(button.dataset.line) - 1, ch: 0 });
    }
  });

  function setText(id, text) {
    document.getElementById(id).textContent = text;
  }

  function refresh() {
    var mine = ++sequence;
    var body = { subscriber: picker.value };
    ["mjml", "subject", "preheader", "text"].forEach(function (part) { body[part] = value(part); });
    fetch(form.dataset.preview, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    }).then(function (answer) {
      if (mine !== sequence) return; // a newer preview is on its way
      var data = answer.data;
      if (!answer.ok) {
        setText("preview-data", data.error || "The preview failed.");
        return;
      }
      showIssues(data.issues);
      setText("preview-data", "Data: " + data.data);
      if (data.html !== null) {
        frame.srcdoc = data.html;
        setText("preview-subject", data.subject);
        setText("preview-preheader", data.preheader);
        setText("preview-text", data.text);
        setText("preview-time", "Rendered in " + data.ms + " ms.");
      } else {
        setText("preview-time", "Fix the problems to update the preview.");
      }
      document.body.dataset.previews = String(mine);
    }).catch(function () {
      if (mine === sequence) setText("preview-data", "The preview could not be reached.");
    });
  }

  document.querySelectorAll("input[name=width]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      frame.className = "frame " + radio.value;
    });
  });

  var searchTimer = null;
  picker.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () {
      var q = picker.value.trim();
      if (q.length >= 2) {
        fetch("/admin/api/subscribers?q=" + encodeURIComponent(q), { credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (data) {
            options.textContent = "";
            (data.subscribers || []).forEach(function (s) {
              var option = document.createElement("option");
              option.value = s.email;
              option.label = (s.name ? s.name + " · " : "") + (s.key ? "key " + s.key + " · " : "") + "id " + s.id;
              options.appendChild(option);
            });
          });
      }
      schedule();
    }, DELAY);
  });

  form.addEventListener("submit", function () {
    Object.keys(editors).forEach(function (part) { editors[part].save(); });
  });

  refresh();
})();
