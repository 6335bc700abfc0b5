// The WebAuthn ceremonies of our pages, with @simplewebauthn/browser (served from /static/webauthn.js). A form
// marked data-passkey carries the server's options; the browser's response goes back through that form's plain
// POST as its `code`, so the server's checks (challenge, origin, counter) are the same as for any other factor.
(function () {
  var lib = window.SimpleWebAuthnBrowser;
  var forms = document.querySelectorAll('form[data-passkey]');
  if (!lib || !lib.browserSupportsWebAuthn()) {
    forms.forEach(function (form) {
      var unsupported = form.querySelector('[data-passkey-unsupported]');
      if (unsupported) unsupported.hidden = false;
    });
    return;
  }

  function run(form, autofill) {
    var options = JSON.parse(form.getAttribute('data-passkey-options'));
    var ceremony = form.getAttribute('data-passkey') === 'create'
      ? lib.startRegistration({ optionsJSON: options })
      : lib.startAuthentication({ optionsJSON: options, useBrowserAutofill: autofill });
    return ceremony.then(function (response) {
      form.querySelector('input[name="code"]').value = JSON.stringify(response);
      form.submit();
    }, function () {
      // Autofill waits in the background and is cancelled when the button starts a ceremony of its own.
      if (autofill) return;
      var message = form.querySelector('[data-passkey-error]');
      if (message) message.hidden = false;
    });
  }

  forms.forEach(function (form) {
    var button = form.querySelector('[data-passkey-start]');
    if (button) {
      button.hidden = false;
      button.addEventListener('click', function () { run(form, false); });
    }
    // Conditional UI: passkeys offered in the email field's autofill (autocomplete="username webauthn").
    if (form.hasAttribute('data-passkey-autofill')) {
      lib.browserSupportsWebAuthnAutofill().then(function (supported) { if (supported) run(form, true); });
    }
  });
})();
