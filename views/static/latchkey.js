// Progressive enhancement only: every page works without this script.
(function () {
  // Tell the server the browser's time zone, so that dates show in local time until the account names one.
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf('lk_tz=' + encodeURIComponent(zone)) === -1) {
      document.cookie = 'lk_tz=' + encodeURIComponent(zone) + '; path=/; max-age=31536000; samesite=lax';
    }
  } catch (e) { /* an old browser: dates stay in UTC */ }
  // Dangerous buttons ask first (the server asks again where it matters).
  document.addEventListener('submit', function (event) {
    var question = event.target.getAttribute && event.target.getAttribute('data-confirm');
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
