// Refresh the page's content from the server every 2 s (one request per open page), unless the
// user is typing in a form field; the server sends only the content block (X-Partial: 1).
(function () {
  var main = document.querySelector("main[data-live]");
  if (!main) return;
  setInterval(function () {
    if (document.hidden || (document.activeElement && document.activeElement.tagName === "INPUT")) return;
    fetch(location.href, {headers: {"X-Partial": "1"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) main.innerHTML = html; })
      .catch(function () {});
  }, 2000);
})();
