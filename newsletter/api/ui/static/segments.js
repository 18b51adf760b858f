// The segment editor: CodeMirror (YAML) and a debounced live count and sample.
(function () {
  "use strict";
  var form = document.getElementById("segment");
  if (!form) return;
  var csrf = form.querySelector("[name=csrf_token]").value;
  var area = document.getElementById("definition");
  var result = document.getElementById("segment-result");
  var cm = null;
  if (window.CodeMirror) {
    cm = CodeMirror.fromTextArea(area, {
      mode: "yaml",
      lineNumbers: true,
      readOnly: area.readOnly,
      inputStyle: "textarea",
      screenReaderLabel: "Rule (YAML)"
    });
  }
  function text() { return cm ? cm.getValue() : area.value; }
  var timer = null;
  var sequence = 0;
  function cell(row, value, href) {
    var td = document.createElement("td");
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = value;
      td.appendChild(a);
    } else {
      td.textContent = value;
    }
    row.appendChild(td);
  }
  function show(data) {
    result.textContent = "";
    if (data.error) {
      var p = document.createElement("p");
      p.className = "error";
      p.id = "segment-error";
      p.textContent = data.error;
      result.appendChild(p);
      return;
    }
    var count = document.createElement("p");
    count.id = "segment-count";
    var strong = document.createElement("strong");
    strong.textContent = String(data.count);
    count.appendChild(strong);
    count.appendChild(document.createTextNode(" subscribers"));
    result.appendChild(count);
    if (!data.sample.length) return;
    var table = document.createElement("table");
    table.innerHTML = "<caption>A sample</caption><thead><tr><th scope=col>Id</th><th scope=col>Email</th><th scope=col>Status</th><th scope=col>Timezone</th></tr></thead>";
    var body = document.createElement("tbody");
    data.sample.forEach(function (s) {
      var row = document.createElement("tr");
      cell(row, String(s.id));
      cell(row, s.email, "/admin/subscribers/" + s.id);
      cell(row, s.status);
      cell(row, s.timezone);
      body.appendChild(row);
    });
    table.appendChild(body);
    result.appendChild(table);
  }
  function check() {
    var mine = ++sequence;
    fetch(form.dataset.check, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf, "Accept": "application/json" },
      body: JSON.stringify({ definition: text() })
    }).then(function (r) { return r.json(); }).then(function (data) {
      if (mine === sequence) show(data);
    });
  }
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  }
  if (cm) cm.on("change", schedule); else area.addEventListener("input", schedule);
  form.addEventListener("submit", function () { if (cm) cm.save(); });
})();
