// The page's side of the chat demo: every message is sent as JSON
// {"body": "..."} over /chatsocket; every message received carries its
// HTML, rendered by the server with message.html, appended once.
(function () {
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  var socket = new WebSocket(scheme + location.host + "/chatsocket");
  var inbox = document.getElementById("inbox");
  socket.onopen = function () {
    document.body.dataset.state = "open";
  };
  socket.onmessage = function (event) {
    var chat = JSON.parse(event.data);
    if (document.getElementById("m" + chat.id)) {
      return;
    }
    var holder = document.createElement("div");
    holder.innerHTML = chat.html;
    while (holder.firstChild) {
      inbox.appendChild(holder.firstChild);
    }
    inbox.scrollTop = inbox.scrollHeight;
  };
  document.getElementById("messageform").onsubmit = function (event) {
    event.preventDefault();
    var input = document.getElementById("message");
    if (input.value && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ body: input.value }));
      input.value = "";
    }
    input.focus();
  };
})();
