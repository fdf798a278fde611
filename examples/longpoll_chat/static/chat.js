// The page's side of the long-polling chat (Tornado's demos/chat, without
// jQuery): the page keeps one POST /a/message/updates open, which the
// server answers when a message is posted (or at once with those the page
// has not seen, after `cursor`), then polls again. Posting goes through
// POST /a/message/new, answered with the message and its HTML.
(function () {
  var inbox = document.getElementById("inbox");
  var form = document.getElementById("messageform");
  var cursor = null;
  var errorSleep = 500;

  function xsrf() {
    var m = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function show(message) {
    if (document.getElementById("m" + message.id)) {
      return;
    }
    var holder = document.createElement("div");
    holder.innerHTML = message.html;
    while (holder.firstChild) {
      inbox.appendChild(holder.firstChild);
    }
    inbox.scrollTop = inbox.scrollHeight;
  }

  function poll() {
    var args = new URLSearchParams();
    args.set("_xsrf", xsrf());
    if (cursor) {
      args.set("cursor", cursor);
    }
    document.body.dataset.state = "polling";
    fetch("/a/message/updates", { method: "POST", body: args })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        data.messages.forEach(show);
        if (data.messages.length) {
          cursor = data.messages[data.messages.length - 1].id;
        }
        errorSleep = 500;
        poll();
      })
      .catch(function () {
        document.body.dataset.state = "retrying";
        errorSleep = Math.min(errorSleep * 2, 30000);
        setTimeout(poll, errorSleep);
      });
  }

  form.onsubmit = function (event) {
    event.preventDefault();
    var input = document.getElementById("message");
    if (!input.value) {
      return;
    }
    var args = new URLSearchParams(new FormData(form));
    args.delete("next");
    fetch("/a/message/new", { method: "POST", body: args })
      .then(function (response) { return response.json(); })
      .then(show);
    input.value = "";
    input.focus();
  };

  var last = inbox.querySelector(".message:last-of-type");
  if (last) {
    cursor = last.id.slice(1);
  }
  poll();
})();
