/* Broadcast page: poll progress.json every 2 s and update the numbers and bars in place.
   Stops once the broadcast is done or cancelled. Without JavaScript, reload the page to update. */
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box || !window.fetch || !window.JSON) { return; }
  var url = box.getAttribute("data-url");
  var EVERY = 2000;
  var MAX_WAIT = 30000;
  var wait = EVERY;
  // Words in the page's language, from the template (the console is translated on the server).
  var OF = box.getAttribute("data-of") || "of";
  var FINISHED = box.getAttribute("data-finished") || "Finished.";
  var WORDS = {};
  try { WORDS = JSON.parse(box.getAttribute("data-words") || "{}"); } catch (e) { WORDS = {}; }

  function finished(status) { return status === "done" || status === "cancelled"; }

  function setText(id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = value; }
  }

  function setBar(id, value, max) {
    var el = document.getElementById(id);
    if (el) {
      el.max = max;
      el.value = value;
      el.textContent = value + " " + OF + " " + max;
    }
  }

  function update(p) {
    var counts = p.counts || {};
    var recipients = p.recipients || 0;
    var max = recipients || 1;
    var handled = recipients - (counts.queued || 0) - (counts.sending || 0);
    Object.keys(counts).forEach(function (key) {
      setText("count-" + key, counts[key]);
      setBar("bar-" + key, counts[key], max);
    });
    setText("count-pledges", p.pledges || 0);
    setBar("bar-pledges", p.pledges || 0, max);
    setText("progress-handled", handled);
    setText("progress-recipients", recipients);
    setBar("progress-overall", handled, max);
    var status = document.getElementById("broadcast-status");
    if (status) {
      status.textContent = WORDS[p.status] || p.status;
      status.className = "status status-" + p.status;
    }
    box.setAttribute("data-status", p.status);
    if (finished(p.status)) {
      setText("progress-note", FINISHED);
      var cancel = document.getElementById("cancel-form");
      if (cancel) { cancel.hidden = true; }
    }
  }

  function poll() {
    if (document.hidden) { setTimeout(poll, EVERY); return; }  // no traffic from a tab nobody looks at
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}, cache: "no-store"})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (p) {
        wait = EVERY;
        update(p);
        if (!finished(p.status)) { setTimeout(poll, EVERY); }
      })
      .catch(function () {
        wait = Math.min(wait * 2, MAX_WAIT);  // a slow or broken connection: ask less often
        setTimeout(poll, wait);
      });
  }

  if (!finished(box.getAttribute("data-status"))) { setTimeout(poll, EVERY); }
})();
