// SMSGate dashboard: small enhancements on top of pages that work without them.
//  - data-count="ID": a live character / encoding / segment count of a textarea, shown in #ID
//  - data-live="URL" data-every="S": the element's content is reloaded from URL every S seconds
//    (an HTML fragment); the server answers "X-Live-Final: 1" when nothing will change any more
//  - data-copy="SELECTOR": a button that copies the text of SELECTOR to the clipboard
//  - data-confirm="QUESTION" on a form: asked before it is sent (destructive actions)
(function () {
  "use strict";
  var GSM = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡" +
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var GSM_EXTENDED = "^{}\\[~]|€";

  function segments(text) {
    var units = 0;
    var gsm = true;
    for (var ch of text) {
      if (GSM.indexOf(ch) >= 0) { units += 1; }
      else if (GSM_EXTENDED.indexOf(ch) >= 0) { units += 2; }
      else { gsm = false; break; }
    }
    if (!gsm) { units = text.length; }  // UTF-16 code units
    var one = gsm ? 160 : 70;
    var each = gsm ? 153 : 67;
    var count = units === 0 ? 0 : (units <= one ? 1 : Math.ceil(units / each));
    return { encoding: gsm ? "GSM-7" : "UCS-2", units: units, segments: count };
  }

  function counters() {
    document.querySelectorAll("textarea[data-count]").forEach(function (area) {
      var out = document.getElementById(area.getAttribute("data-count"));
      if (!out) { return; }
      var show = function () {
        var info = segments(area.value);
        out.textContent = info.units + " · " + info.encoding + " · " + info.segments + " SMS";
      };
      area.addEventListener("input", show);
      show();
    });
  }

  function live() {
    document.querySelectorAll("[data-live]").forEach(function (element) {
      var url = element.getAttribute("data-live");
      var every = Math.max(1, Number(element.getAttribute("data-every") || "5")) * 1000;
      var timer = setInterval(function () {
        if (document.hidden) { return; }
        fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
          .then(function (response) {
            if (!response.ok) { clearInterval(timer); return null; }
            if (response.headers.get("X-Live-Final") === "1") { clearInterval(timer); }
            return response.text();
          })
          .then(function (html) { if (html !== null) { element.innerHTML = html; } })
          .catch(function () { /* offline for a moment: try again on the next tick */ });
      }, every);
    });
  }

  function copies() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute("data-copy"));
        if (!source || !navigator.clipboard) { return; }
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          var label = button.textContent;
          button.textContent = "✓";
          setTimeout(function () { button.textContent = label; }, 1500);
        });
      });
    });
  }

  function confirms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    counters(); live(); copies(); confirms();
  });
})();
