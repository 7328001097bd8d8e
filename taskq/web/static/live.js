// Live pages without polling: the server pushes every job transition as a server-sent event
// (/api/v1/events); a page that hears one reloads its content block (X-Partial: 1) at most once a
// second, however many events arrive. A hidden tab closes its stream and catches up once when
// shown again. Instants (<time datetime>) read "3 min ago", the ISO time in their title.
(function () {
  "use strict";
  var MIN_GAP = 1000; // ms between two refreshes of the page, at least

  function ago(iso) {
    var s = Math.round((Date.now() - Date.parse(iso)) / 1000), future = s < 0, a = Math.abs(s), said;
    if (isNaN(s)) return iso;
    if (a < 5) return future ? "in a moment" : "just now";
    if (a < 60) said = a + " s";
    else if (a < 3600) said = Math.round(a / 60) + " min";
    else if (a < 86400) said = Math.round(a / 3600) + " h";
    else said = Math.round(a / 86400) + " d";
    return future ? "in " + said : said + " ago";
  }

  function relativize(root) {
    var times = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var iso = times[i].getAttribute("datetime");
      times[i].textContent = ago(iso);
      times[i].title = iso;
    }
  }

  // the queue page's rows by age (enqueued), this page's rows; kept across refreshes
  var sortOldestFirst = null;
  function applySort(root) {
    var table = root.querySelector("#jobs");
    if (!table || sortOldestFirst === null) return;
    var rows = Array.prototype.slice.call(table.querySelectorAll("tr[data-enqueued]"));
    rows.sort(function (a, b) {
      var x = a.getAttribute("data-enqueued"), y = b.getAttribute("data-enqueued");
      return sortOldestFirst ? (x < y ? -1 : x > y ? 1 : 0) : (x < y ? 1 : x > y ? -1 : 0);
    });
    var body = rows.length ? rows[0].parentNode : null;
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("button[data-sort=age]");
    if (!button) return;
    sortOldestFirst = sortOldestFirst === null ? true : !sortOldestFirst;
    applySort(document);
  });
  document.addEventListener("change", function (e) { // the dead letters page's "select all"
    if (e.target.id !== "select-all") return;
    var boxes = document.querySelectorAll("#dead input[name=id]");
    for (var i = 0; i < boxes.length; i++) boxes[i].checked = e.target.checked;
  });

  relativize(document);
  applySort(document);
  setInterval(function () { if (document.visibilityState === "visible") relativize(document); }, 15000);

  var main = document.querySelector("main[data-live]");
  var url = document.body.getAttribute("data-events");
  if (!main || !url || !window.EventSource) return;
  var source = null, timer = null, last = 0;

  function busy() { // the user is typing, or has ticked rows to act on: do not replace them
    var a = document.activeElement;
    return (a && (a.tagName === "INPUT" || a.tagName === "SELECT" || a.tagName === "TEXTAREA")) ||
      main.querySelector("input[type=checkbox]:checked") !== null;
  }

  function refresh() {
    last = Date.now();
    fetch(location.href, {headers: {"X-Partial": "1"}, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) return;
        main.innerHTML = html;
        relativize(main);
        applySort(main);
        main.setAttribute("data-refreshed", String(Date.now()));
      })
      .catch(function () {});
  }

  function soon(wait) { // one refresh, no sooner than MIN_GAP after the last
    if (timer !== null) return;
    timer = setTimeout(function () {
      timer = null;
      if (document.visibilityState !== "visible") return;
      if (busy()) { soon(MIN_GAP); return; } // try again later: the event is not lost
      refresh();
    }, Math.max(wait || 0, MIN_GAP - (Date.now() - last)));
  }

  function open() {
    if (source !== null) return;
    source = new EventSource(url);
    source.addEventListener("job", function () { soon(0); });
  }

  function close() {
    if (source !== null) { source.close(); source = null; }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") { open(); soon(0); } else close();
  });
  if (document.visibilityState === "visible") open();
})();
