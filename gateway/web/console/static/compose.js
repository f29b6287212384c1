/* Compose page: live SMS counters and the live recipient count.
   The server does the counting (POST /broadcasts/measure, /broadcasts/audience); this file only
   asks and shows. Without JavaScript the form still works and the preview page shows the counts. */
(function () {
  "use strict";
  var form = document.getElementById("compose-form");
  if (!form || !window.fetch || !window.JSON) { return; }
  var tokenInput = form.querySelector("input[name=csrf_token]");
  var token = tokenInput ? tokenInput.value : "";
  var DELAY = 300;
  // Words in the page's language, from the template (the console is translated on the server).
  var SEGMENTS = form.getAttribute("data-segments-word") || "segment(s)";
  var COUNT_ERROR = form.getAttribute("data-count-error") || "Could not count just now; the preview will.";

  function post(url, data) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": token},
      body: JSON.stringify(data)
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.json();
    });
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      if (timer) { clearTimeout(timer); }
      timer = setTimeout(function () { timer = null; fn(); }, ms);
    };
  }

  function byId(id) { return document.getElementById(id); }

  function setHidden(el, hidden) { if (el) { el.hidden = hidden; } }

  /* ---- counters, one per textarea ---- */
  function setupCounter(area) {
    var lang = area.getAttribute("data-lang");
    var counter = byId("counter-" + lang);
    var fix = byId("fix-" + lang);
    var suggestion = null;
    var asked = 0;
    var lastText = null;

    function show(m) {
      byId("chars-" + lang).textContent = m.characters;
      byId("encoding-" + lang).textContent = m.encoding;
      byId("segments-" + lang).textContent = m.segments;
      counter.className = "counter" + (m.encoding === "UCS-2" ? " ucs2" : "");
      setHidden(byId("merge-" + lang), !m.merge_fields);
      setHidden(byId("toolong-" + lang), !m.too_long);
      var chars = byId("ucs2chars-" + lang);
      while (chars.firstChild) { chars.removeChild(chars.firstChild); }
      (m.ucs2_labels || []).forEach(function (label) {
        var code = document.createElement("code");
        code.textContent = label;
        chars.appendChild(code);
        chars.appendChild(document.createTextNode(" "));
      });
      setHidden(byId("ucs2-" + lang), !(m.ucs2_chars && m.ucs2_chars.length));
      suggestion = m.suggestion;
      var info = byId("fixinfo-" + lang);
      if (suggestion) {
        var pairs = (m.replacements || []).map(function (p) { return p[0] + " → " + p[1]; }).join(", ");
        info.textContent = "(" + (pairs ? pairs + ": " : "") + m.suggestion_segments + " " + SEGMENTS + ")";
      } else {
        info.textContent = "";
      }
      setHidden(byId("suggest-" + lang), !suggestion);
      counter.removeAttribute("data-error");
    }

    function measure() {
      var text = area.value;
      if (text === lastText) { return; }
      var mine = ++asked;
      post(form.getAttribute("data-measure-url"), {text: text}).then(function (m) {
        if (mine !== asked) { return; }  // an older answer arriving late
        lastText = text;
        show(m);
      }).catch(function () {
        if (mine === asked) { counter.setAttribute("data-error", COUNT_ERROR); }
      });
    }

    var later = debounce(measure, DELAY);
    area.addEventListener("input", later);
    if (fix) {
      fix.addEventListener("click", function () {
        if (suggestion === null || suggestion === undefined) { return; }
        area.value = suggestion;
        area.focus();
        measure();
      });
    }
    if (area.value) { measure(); }  // a value the browser restored after going back
  }

  var areas = form.querySelectorAll("textarea[data-lang]");
  for (var i = 0; i < areas.length; i++) { setupCounter(areas[i]); }

  /* ---- live recipient count ---- */
  var place = byId("place");
  var language = byId("audience-language");
  var tag = byId("tag");
  var count = byId("audience-count");
  var askedAudience = 0;

  function audience() {
    var mine = ++askedAudience;
    var data = {place: place ? place.value : "", language: language ? language.value : "", tag: tag ? tag.value : ""};
    post(form.getAttribute("data-audience-url"), data).then(function (r) {
      if (mine === askedAudience) { count.textContent = r.recipients; }
    }).catch(function () {
      if (mine === askedAudience) { count.textContent = "?"; }
    });
  }

  if (count) {
    var laterAudience = debounce(audience, DELAY);
    if (place) { place.addEventListener("change", laterAudience); }
    if (language) { language.addEventListener("change", laterAudience); }
    if (tag) { tag.addEventListener("input", laterAudience); tag.addEventListener("change", laterAudience); }
  }
})();
