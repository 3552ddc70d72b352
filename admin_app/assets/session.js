// When the session has expired, the server answers Dash's requests with 401: send the
// person to the sign-in page (and back here afterwards) instead of leaving a dead page.
(function () {
  var original = window.fetch;
  window.fetch = function () {
    return original.apply(this, arguments).then(function (response) {
      if (response.status === 401 && response.url.indexOf("/_dash-") !== -1) {
        var here = window.location.pathname + window.location.search;
        window.location.assign("/login?next=" + encodeURIComponent(here));
      }
      return response;
    });
  };
})();
