/* Simulator: send the text with fetch (POST /simulator/send, JSON) and add the replies to the
   phone's screen. Without JavaScript the form posts and the page shows the conversation again. */
(function () {
  "use strict";
  var form = document.getElementById("sim-form");
  var screen = document.getElementById("sim-screen");
  if (!form || !screen || !window.fetch || !window.JSON) { return; }
  var from = document.getElementById("sim-from");
  var text = document.getElementById("sim-text");
  var send = document.getElementById("sim-send");
  var error = document.getElementById("sim-error");
  var tokenInput = form.querySelector("input[name=csrf_token]");
  var token = tokenInput ? tokenInput.value : "";
  var busy = false;

  function scrollDown() { screen.scrollTop = screen.scrollHeight; }

  function showError(message) {
    error.textContent = message || "";
    error.hidden = !message;
  }

  function add(mine, body, meta) {
    var empty = document.getElementById("sim-empty");
    if (empty) { empty.parentNode.removeChild(empty); }
    var last = document.getElementById("sim-last");
    if (last) { last.removeAttribute("id"); }
    var li = document.createElement("li");
    li.className = "msg " + (mine ? "mine" : "theirs");
    li.id = "sim-last";
    var span = document.createElement("span");
    span.className = "msg-body";
    span.textContent = body;
    var small = document.createElement("small");
    small.className = "msg-meta";
    small.textContent = meta || "";
    li.appendChild(span);
    li.appendChild(small);
    screen.appendChild(li);
  }

  function redraw(conversation) {
    while (screen.firstChild) { screen.removeChild(screen.firstChild); }
    (conversation || []).forEach(function (m) {
      var meta = m.at + (m.broadcast ? " · alert " + m.broadcast : "") + (m.note ? " · " + m.note : "");
      add(m.mine, m.body, meta);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = text.value;
    if (busy || !body.trim()) { return; }
    busy = true;
    send.disabled = true;
    showError("");
    fetch(form.getAttribute("action"), {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": token},
      body: JSON.stringify({from: from.value, text: body})
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok && !data.error) { throw new Error("HTTP " + response.status); }
        return data;
      });
    }).then(function (data) {
      if (data.error) { showError(data.error); return; }
      if (screen.getAttribute("data-number") !== data.from) {
        // Another number: show its whole conversation, as the page would.
        redraw(data.conversation);
        // A forgotten exchange (an anonymous report) is not in the stored conversation: show it
        // on this screen only, as the phone would, without it being kept anywhere.
        var mine = (data.conversation || []).filter(function (m) { return m.mine; });
        if (!mine.length || mine[mine.length - 1].body !== body) {
          add(true, body, "");
          (data.replies || []).forEach(function (reply) { add(false, reply, ""); });
        }
        screen.setAttribute("data-number", data.from);
        if (window.history && history.replaceState) {
          history.replaceState(null, "", "?from=" + encodeURIComponent(data.from));
        }
      } else {
        var conv = data.conversation || [];
        var at = conv.length ? conv[conv.length - 1].at : "";  // the server's clock, as on reload
        add(true, body, at);
        (data.replies || []).forEach(function (reply) { add(false, reply, at); });
      }
      text.value = "";
      scrollDown();
    }).catch(function () {
      showError(form.getAttribute("data-send-error") || "Could not send. Check the connection, reload the page and try again.");
    }).then(function () {
      busy = false;
      send.disabled = false;
      text.focus();
    });
  });

  scrollDown();
})();
